"""Poster frames and durations of stored clips, with the ffmpeg that imageio-ffmpeg ships."""

import subprocess
from pathlib import Path

import imageio_ffmpeg


class ArchiveError(Exception):
    """The downloaded file is not a video ffmpeg can read."""


def probe_duration(video: Path) -> float:
    """Seconds of video, read by decoding (no ffprobe in imageio-ffmpeg)."""
    try:
        _frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    except (RuntimeError, OSError) as exc:
        raise ArchiveError(f"not a readable video: {exc}") from exc
    return float(seconds)


def extract_poster(video: Path, poster: Path, *, at_seconds: float = 0.5) -> None:
    """Write one JPEG frame of `video` to `poster` (the first frame if the clip is shorter)."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for offset in (at_seconds, 0.0):
        result = subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-ss",
                str(offset),
                "-i",
                str(video),
                "-frames:v",
                "1",
                "-q:v",
                "3",
                str(poster),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if result.returncode == 0 and poster.exists() and poster.stat().st_size > 0:
            return
    raise ArchiveError(f"ffmpeg could not extract a frame: {result.stderr.decode()[-300:]}")

"""Storing a finished clip: claim, download, poster, then the row says succeeded."""

import logging
import os
import random
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, close_old_connections, connection

from ..kling import CometAPIError
from ..models import Generation, Status
from . import archive
from .base import (
    ARCHIVE_GIVE_UP,
    ARCHIVE_RETRY,
    STORE_IDLE_SLEEP,
    event,
    fail,
    member_message,
    now,
    scaled,
    speed,
)
from .claims import claim_fields, holding
from .keys import download_client

log = logging.getLogger(__name__)

# Downloads wait on the network and run STORE_THREADS at once; decoding (ffmpeg) uses the
# CPU, so no more of it runs at once than there are cores.
_decoding = threading.BoundedSemaphore(os.cpu_count() or 2)

# Set when a read in this process finds a clip finished upstream: this process's StoreLoop
# starts on it at once instead of at its next look.
clip_finished = threading.Event()


def store_clip(gen_id: int) -> bool:
    """Copy the finished clip into our storage, make a poster, then mark it succeeded.
    Returns False if there was nothing to claim (not finished, or another worker has it)."""
    t = now()
    claimed = Generation.objects.to_store().unclaimed(t).filter(pk=gen_id).update(**claim_fields(t))
    if claimed != 1:
        return False
    try:
        with holding(gen_id):
            _store_clip(Generation.objects.get(pk=gen_id))
    except Exception:
        # Anything unforeseen (the database busy past its timeout, a full disk): give the
        # claim back so the clip is tried again in a minute. If the database itself is
        # down, the claim runs out by itself once the heartbeat stops renewing it.
        with suppress(DatabaseError):
            Generation.objects.to_store().filter(pk=gen_id).update(
                claimed_until=None, claimed_by="", next_attempt_at=now() + scaled(ARCHIVE_RETRY)
            )
        raise
    return True


def _store_clip(gen: Generation) -> None:
    """The claimed half of store_clip: download, poster, then the row says finished."""
    if not gen.remote_video_url:
        fail(gen, "no_video", "Kling reported success but sent no video.")
        return
    with tempfile.TemporaryDirectory(prefix="kling-archive-") as tmp:
        video_path, poster_path = Path(tmp) / "clip.mp4", Path(tmp) / "poster.jpg"
        try:
            with download_client() as client, video_path.open("wb") as out:
                client.download(gen.remote_video_url, out, max_bytes=settings.KLING_MAX_VIDEO_BYTES)
            # The poster proves the file decodes. Kling states the clip's duration; only
            # without it is the file decoded end to end to measure it (a full decode is the
            # costliest step of an archive, and a burst of finished clips is CPU-bound).
            with _decoding:
                archive.extract_poster(video_path, poster_path)
                duration = gen.video_duration or archive.probe_duration(video_path)
        except CometAPIError as exc:
            _archive_failed(gen, exc)
            return
        except archive.ArchiveError as exc:
            fail(gen, "download", f"The clip from Kling could not be read: {exc}")
            return
        name = f"{gen.public_id}"
        with video_path.open("rb") as v, poster_path.open("rb") as p:
            gen.video.save(f"{name}.mp4", File(v), save=False)
            gen.poster.save(f"{name}.jpg", File(p), save=False)
    changed = Generation.objects.filter(pk=gen.pk).move(
        Status.STORING,
        Status.SUCCEEDED,
        video=gen.video.name,
        poster=gen.poster.name,
        video_duration=duration or gen.video_duration,
        finished_at=now(),
        claimed_until=None,
        claimed_by="",
    )
    if not changed:  # cancelled or finished meanwhile: don't leave orphan files
        gen.video.delete(save=False)
        gen.poster.delete(save=False)
    else:
        event(gen, "stored", f"{gen.video.name}, {duration or gen.video_duration or 0:.1f} s")


def _archive_failed(gen: Generation, exc: CometAPIError) -> None:
    """A download that failed: retried with backoff while it may work (the URL lives 30
    days), failed at once when the URL has expired or the file is refused (size, type)."""
    t = now()
    # Backoff grows with the time since the task finished upstream (no attempt counter is
    # needed): about a quarter of it, so retries come at roughly geometric intervals.
    finished_ms = gen.remote_updated_at_ms or int(t.timestamp() * 1000)
    since = max(0.0, t.timestamp() - finished_ms / 1000)
    if not exc.retryable or since > ARCHIVE_GIVE_UP / speed():
        fail(gen, "download", member_message(exc))
        return
    delay = min(300.0, max(2.0, since / 4)) * random.uniform(0.5, 1.0) / speed()
    Generation.objects.filter(pk=gen.pk).update(
        claimed_until=None, claimed_by="", next_attempt_at=t + timedelta(seconds=delay)
    )
    event(
        gen, "retrying", f"download will be retried in {delay:.0f} s: {exc}", level=logging.WARNING
    )


def due_clips(limit: int) -> list[int]:
    """Finished clips nobody is storing, oldest first."""
    t = now()
    return list(
        Generation.objects.to_store()
        .unclaimed(t)
        .due(t)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


class StoreLoop:
    """One worker process's share of storing clips: a pool of `threads` downloads, fed by
    this loop with whatever finished clips it can claim. Every worker process of every
    cluster runs one, so they share the clips through their claims, and a cluster added on
    another machine adds downloads."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)

    def run(self, stop: threading.Event) -> None:
        running: set[Future] = set()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="kling-store") as pool:
            while not stop.is_set():
                running = {f for f in running if not f.done()}
                free = self.threads - len(running)
                if free == 0:
                    # Every thread busy: look again as soon as one is done.
                    wait(running, timeout=STORE_IDLE_SLEEP, return_when=FIRST_COMPLETED)
                    continue
                candidates = []
                try:
                    close_old_connections()
                    candidates = due_clips(free)
                except Exception:
                    log.exception("could not look for finished clips")
                if not candidates:
                    clip_finished.wait(STORE_IDLE_SLEEP)
                    clip_finished.clear()
                    continue
                # Oldest first, for the shortest wait of the last clip of a burst. Machines
                # that pick the same row race for its claim: the loser returns at once.
                started = [pool.submit(self._store, gen_id) for gen_id in candidates[:free]]
                running.update(started)
                # Let them claim their rows before looking again.
                wait(started, timeout=0.05)
            # Stopping (the worker exits): the downloads under way finish, no more start.
        connection.close()

    @staticmethod
    def _store(gen_id: int) -> None:
        try:
            store_clip(gen_id)
        except Exception:
            log.exception("generation %s: storing the clip failed", gen_id)
        finally:
            connection.close()  # a pool thread holds no idle connection between clips

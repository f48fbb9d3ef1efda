"""Storing a finished clip: claim, download, poster, then the row says succeeded."""

import logging
import random
import tempfile
import time
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError
from django.db.models import Q

from .. import archive
from ..cometapi import (
    CometAPIError,
)
from ..models import IN_FLIGHT, Generation, Status
from .base import (
    ARCHIVE_BUDGET,
    ARCHIVE_GIVE_UP,
    ARCHIVE_LEASE,
    ARCHIVE_RETRY,
    event,
    fail,
    member_message,
    now,
    scaled,
    speed,
)
from .keys import download_client

log = logging.getLogger(__name__)


def archive_result(gen_id: int) -> bool:
    """Copy the finished clip into our storage, make a poster, then mark it succeeded.
    Returns False if there was nothing to claim (not finished, or another worker has it)."""
    t = now()
    claimed = Generation.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=t),
        pk=gen_id,
        status__in=IN_FLIGHT,
        remote_status="succeed",
    ).update(claimed_until=t + scaled(ARCHIVE_LEASE))
    if claimed != 1:
        return False
    try:
        _store_clip(Generation.objects.get(pk=gen_id))
    except Exception:
        # Anything unforeseen (the database busy past its timeout, a full disk): give the
        # claim back so the clip is tried again in a minute, not when the ten-minute lease
        # runs out. If the database itself is down, the lease still does it.
        with suppress(DatabaseError):
            Generation.objects.filter(pk=gen_id, status__in=IN_FLIGHT).update(
                claimed_until=None, next_attempt_at=now() + scaled(ARCHIVE_RETRY)
            )
        raise
    return True


def _store_clip(gen: Generation) -> None:
    """The claimed half of archive_result: download, poster, then the row says finished."""
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
    changed = Generation.objects.filter(
        pk=gen.pk, status__in=IN_FLIGHT, remote_status="succeed"
    ).update(
        status=Status.SUCCEEDED,
        video=gen.video.name,
        poster=gen.poster.name,
        video_duration=duration or gen.video_duration,
        finished_at=now(),
        claimed_until=None,
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
        claimed_until=None, next_attempt_at=t + timedelta(seconds=delay)
    )
    event(
        gen, "retrying", f"download will be retried in {delay:.0f} s: {exc}", level=logging.WARNING
    )


def _due_archives(t: datetime) -> Iterable[int]:
    return (
        Generation.objects.filter(status__in=IN_FLIGHT, remote_status="succeed")
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=t))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:50]
    )


def archive_due(budget: float = ARCHIVE_BUDGET) -> int:
    """Archive finished clips inline for up to `budget` seconds; archive tasks run the same
    rows on the other workers, and the claim keeps each row to one of them."""
    deadline = time.monotonic() + budget
    done = 0
    for gen_id in _due_archives(now()):
        if time.monotonic() > deadline:
            break
        done += archive_result(gen_id)
    return done

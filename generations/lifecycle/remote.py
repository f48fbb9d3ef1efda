"""Remote state: pushes (only a hint), our own reads (one concurrent pass over every task that
is due), and the one function that applies what CometAPI says to a row, monotonically."""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q

from ..kling import CometAPIClient, CometAPIError, KeyRejected, RemoteTask, TaskNotFound
from ..models import TO_READ, ApiKey, Generation, RemoteStatus, Status
from .base import (
    LOST_AFTER,
    LOST_GRACE,
    NOT_FOUND_AFTER,
    POLL_BATCH,
    POLL_CONCURRENCY,
    RANK,
    event,
    fail,
    member_message,
    next_read_delay,
    now,
    scaled,
)
from .claims import claim_due, holding, release
from .keys import SecretUnreadable, key_of, mark_key_unhealthy, secret_or_error
from .store import clip_finished

log = logging.getLogger(__name__)


def push_received(gen: Generation, remote: RemoteTask) -> bool:
    """Kling pushed a status change to our callback: read the task ourselves, now.

    A push is unsigned and its URL may have leaked, so nothing it says is stored: not its
    status, not its `updated_at` (a forged far-future timestamp would otherwise make every
    real read look older and stall the job). It may only make the task due for our own
    read, and only when it claims more than our last read saw (a replayed "submitted" is
    not worth a read). It also records that pushes reach us (by our clock, not the body's),
    so later reads only reconcile (see next_read_delay). Returns True if a read was asked.
    """
    if remote.task_id and gen.task_id and remote.task_id != gen.task_id:
        log.warning("generation %s: pushed task %s is not ours", gen.pk, remote.task_id)
        return False
    t = now()
    # A push may come while our submit records the task (submitting): it counts as proof
    # that pushes reach us all the same.
    live = Generation.objects.filter(pk=gen.pk, status__in=[Status.SUBMITTING, *TO_READ])
    pushed = RANK.get(remote.status, 0)
    # Compared with the row as it is now, in the UPDATE itself: `gen` was loaded before, and
    # Kling pushes "submitted" while our submit may be recording the same.
    seen_as_much = [status for status, rank in RANK.items() if rank >= pushed]
    # The pump's next pass reads it: within a second while a cluster runs.
    if pushed and live.exclude(remote_status__in=seen_as_much).update(
        next_attempt_at=t, last_push_at=t
    ):
        return True
    live.update(last_push_at=t)
    return False


def apply_remote(gen: Generation, remote: RemoteTask) -> bool:
    """Move `gen` forward to what our own read of CometAPI says, never backwards.

    Only our own GETs (and the create's answer) come here; pushes go to push_received.
    Non-terminal states move forward by rank and by Kling's `updated_at`; a terminal state
    always wins over anything earlier, whatever timestamps were seen before. Returns True if
    the row changed. A `succeed` moves the row to storing with the result URL recorded, due
    at once for the store loops.
    """
    if remote.task_id and gen.task_id and remote.task_id != gen.task_id:
        log.warning("generation %s: remote task %s is not ours", gen.pk, remote.task_id)
        return False
    rank = RANK.get(remote.status)
    if rank is None:
        log.warning("generation %s: unknown remote status %r", gen.pk, remote.status)
        return False
    live = Generation.objects.filter(pk=gen.pk)
    t = now()
    common = {"remote_status": remote.status, "remote_updated_at_ms": remote.updated_at_ms}
    if remote.task_id:
        common["task_id"] = remote.task_id
    if rank < 3:
        # Two reads racing (a poll pass and a poll task) may land out of order: the older
        # one changes nothing.
        if remote.updated_at_ms is not None:
            live = live.filter(
                Q(remote_updated_at_ms__isnull=True)
                | Q(remote_updated_at_ms__lte=remote.updated_at_ms)
            )
        live = live.exclude(remote_status__in=[s for s, r in RANK.items() if r > rank])
        status = Status.PROCESSING if remote.status == RemoteStatus.PROCESSING else Status.SUBMITTED
        # A row already processing has nothing to learn from another "processing".
        changed = live.move(Status.SUBMITTED, status, **common)
        if not changed:
            # From submitting only the submit step moves a row on; a read racing it just
            # records what it saw.
            changed = live.filter(status=Status.SUBMITTING).update(**common)
        if changed and remote.status != gen.remote_status:
            event(gen, "status", remote.status, task_id=remote.task_id)
        return bool(changed)
    if remote.status == RemoteStatus.FAILED:
        changed = live.move(
            [Status.SUBMITTING, *TO_READ],
            Status.FAILED,
            finished_at=t,
            claimed_until=None,
            claimed_by="",
            error_code="task_failed",
            error_message=remote.status_msg or "Kling reported that the generation failed.",
            units=remote.units,
            **common,
        )
        if changed:
            event(
                gen, "failed", remote.status_msg or "Kling reported a failure", code="task_failed"
            )
        return bool(changed)
    # succeed: copy the clip before the row says finished.
    changed = live.move(
        TO_READ,
        Status.STORING,
        remote_video_url=remote.video_url,
        video_duration=remote.video_duration,
        units=remote.units,
        next_attempt_at=t,
        claimed_until=None,
        claimed_by="",
        **common,
    )
    if changed:
        event(gen, "status", "succeed (storing the clip)", task_id=remote.task_id)
        clip_finished.set()
    return bool(changed)


def _schedule_next_polls(gens: list[Generation]) -> None:
    # Pushed out before reading, so a push that arrives during the read (and makes the row
    # due at once) is not overwritten afterwards. One UPDATE per schedule step rather than
    # per row.
    t = now()
    by_delay: dict[timedelta, list[int]] = {}
    for gen in gens:
        by_delay.setdefault(next_read_delay(gen), []).append(gen.pk)
    for delay, ids in by_delay.items():
        Generation.objects.filter(pk__in=ids).update(
            next_attempt_at=t + delay, poll_count=F("poll_count") + 1
        )


def _read(gen: Generation, secret: str | SecretUnreadable) -> RemoteTask | CometAPIError:
    """The HTTP half of a poll: no database here (the secret is decrypted beforehand), so
    reads can run in threads."""
    if isinstance(secret, SecretUnreadable):
        return secret
    try:
        with CometAPIClient(secret, settings.COMETAPI_BASE_URL) as client:
            return client.get_task(gen.task_id)
    except CometAPIError as exc:
        return exc


def _apply_read(gen: Generation, result: RemoteTask | CometAPIError) -> None:
    age = now() - (gen.submitted_at or gen.created_at)
    lost = age > scaled(LOST_AFTER)
    if isinstance(result, RemoteTask):
        if result.status != gen.remote_status or result.is_terminal:
            apply_remote(gen, result)
        if lost and not result.is_terminal:
            fail(gen, "lost", "No result from Kling after 70 minutes (lost upstream).")
        return
    if isinstance(result, TaskNotFound):
        # Kling may take a moment to list a new task; after minutes it is gone for good.
        if age > scaled(NOT_FOUND_AFTER):
            fail(gen, "lost", "CometAPI no longer knows this task (lost upstream).")
        else:
            log.warning("generation %s: task not found yet: %s", gen.pk, result)
        return
    log.warning("generation %s: poll failed: %s", gen.pk, result)
    if isinstance(result, KeyRejected):
        # Only this key can read the task: the row waits for an admin to fix it, and the
        # lost rule below still ends it if that takes too long.
        mark_key_unhealthy(key_of(gen), result)
    elif not result.retryable:
        fail(gen, str(result.code or result.http_status or ""), member_message(result))
        return
    if age > scaled(LOST_AFTER + LOST_GRACE):
        fail(
            gen,
            "lost",
            f"No result from Kling after 70 minutes, and CometAPI could not be read "
            f"({result.message[:120]}) (lost upstream).",
        )


def poll_due(limit: int = POLL_BATCH) -> int:
    """One pass over the in-flight rows whose read is due, claimed first (claims.py), so
    engines reading at once never read one task twice. Reads run concurrently (bounded),
    database writes stay on this thread. Clips found finished are stored by the engines'
    store loops."""
    due = claim_due(Generation.objects.to_read(), limit)
    if not due:
        return 0
    ids = [gen.pk for gen in due]
    try:
        with holding(*ids):
            _read_claimed(due)
    finally:
        release(Generation.objects.to_read(), ids)
    return len(ids)


def _read_claimed(due: list[Generation]) -> None:
    _schedule_next_polls(due)
    # Each secret (a key's current one, or a rotated-out one its old tasks still need) is
    # decrypted once per pass, here: one that can't be is marked unhealthy and only its own
    # rows see the error. The reads run in threads, which don't query.
    keys = ApiKey.objects.in_bulk({gen.api_key_id for gen in due if gen.api_key_id})
    secrets = {
        (pk, version): secret_or_error(keys.get(pk), version)
        for pk, version in {(gen.api_key_id, gen.key_version) for gen in due if gen.api_key_id}
    }
    with ThreadPoolExecutor(max_workers=POLL_CONCURRENCY) as pool:
        results = list(
            pool.map(
                lambda gen: _read(gen, secrets.get((gen.api_key_id, gen.key_version), "")), due
            )
        )
    for gen, result in zip(due, results, strict=True):
        _apply_read(gen, result)

"""What every step of the lifecycle shares: its durations, the clock, the read schedule, the
event log line, the failure write and the words a member reads.

Durations are in seconds of real time and divided by settings.KLING_LIFECYCLE_SPEED (1 in
production; the fault tests run a 20x simulator and shrink them alike).
"""

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ..kling import CometAPIError, ContentRejected, RequestRejected, ResultExpired
from ..models import IN_FLIGHT, Generation, RemoteStatus, Status

log = logging.getLogger(__name__)


# Durations below are in seconds of real time and divided by settings.KLING_LIFECYCLE_SPEED
# (1 in production; the fault tests run a 20x simulator and shrink them alike).

# A claim on a row (a submit, a read, a download) lasts this long past its holder's last
# heartbeat (claims.Keeper, every third of it). A holder that works longer (a 200 MB
# download, a create that waits 30 s for its answer) keeps renewing; one that dies (SIGKILL,
# a machine gone) loses them within this, and another engine resumes its work well inside a
# minute. Redoing a step is safe: a re-driven submit looks its task up by external_task_id
# before creating, and a clip is stored by one conditional UPDATE.
CLAIM_TTL = 30.0
# Kling's long tail runs past 10 minutes; ComfyUI needed about 68. Past this a task is read
# once more and then called lost.
LOST_AFTER = 70 * 60.0
# When even that last read cannot reach CometAPI, keep trying this long before giving up.
LOST_GRACE = 15 * 60.0
# Kling may take a moment to list a new task; a task unknown this long after submit is gone.
NOT_FOUND_AFTER = 10 * 60.0
# A finished clip whose download keeps failing (CDN 5xx, network) is retried this long.
ARCHIVE_GIVE_UP = 24 * 3600.0
# An archive that broke on something unforeseen is tried again after this.
ARCHIVE_RETRY = 60.0
# Poll delays after submit when polling is how we learn of progress: quick at first (the
# simulator's clips take 12 s, Kling's 1-2 minutes with a long tail), then 8 s apart
# through the first five minutes, where nearly every task ends, so a finished task waits
# 4 s on average and at most 8 s for its read (the target is 10 s from Kling's end to a
# stored clip, p95; 10 s steps measured 10.05 s with 500 in flight); then backing off.
# Reads are free and Kling sets no QPS limit on them. The last value repeats.
POLL_SCHEDULE = (5,) * 6 + (8,) * 34 + (20,) * 15 + (30, 45, 60)
# With callbacks (SITE_URL set) Kling pushes every status change and reads only reconcile a
# lost push. The first read comes a minute after submit; Kling pushes "processing" within
# seconds, so a task with no push by then has pushes that don't reach us (a SITE_URL the
# internet can't see, a proxy in the way) and is polled on POLL_SCHEDULE instead. A push is
# only a hint: it makes us read the task at once (its confirming read), and that read puts
# the next one PUSH_QUIET away: nearly every task ends (and pushes its end) within five
# minutes, so a clip costs a confirming read per push, and a lost terminal push is noticed
# within five minutes of the task's last push; then reads come every minute or two.
RECONCILE_SCHEDULE = (60, 60, 60, 120)
PUSH_QUIET = 300.0
# A queued job waiting for a key or a slot looks again after this (a slot frees when a task
# ends; the pump also dispatches every pass).
WAIT_RECHECK = 5.0
# Backoff of retryable create errors: 1302/1303 (rate and concurrency) wait a little and
# never long, since a slot frees when any task ends; outages back off further.
RATE_LIMIT_BACKOFF = (2.0, 60.0)  # (base, cap)
OUTAGE_BACKOFF = (4.0, 300.0)
POLL_CONCURRENCY = 8  # parallel reads per pass: bounded so a backlog can't open 500 sockets
POLL_BATCH = 200  # rows read per pass
PUMP_IDLE_SLEEP = 0.5  # between passes that found nothing due: the poll/dispatch latency
PUMP_ERROR_SLEEP = 2.0  # after a pass that failed (the database away, say)
# Work done per pass before the pump looks at everything else again, so a burst of 500 new
# jobs can't hold up polling.
DISPATCH_PER_PASS = 50
# Clips each worker process stores at once (download, then poster). Downloads wait on the
# network, not the CPU: with 4 s per clip, 2 clusters of 2 workers store 32 at a time.
STORE_THREADS_DEFAULT = 8
STORE_IDLE_SLEEP = 1.0  # how often an idle store loop looks for finished clips

RANK = {
    RemoteStatus.SUBMITTED: 1,
    RemoteStatus.PROCESSING: 2,
    RemoteStatus.SUCCEED: 3,
    RemoteStatus.FAILED: 3,
}


class Clock:
    """The lifecycle's clock: Django's `timezone.now()`, which a test moves forward
    (`clock.advance(seconds)`) instead of sleeping. Every step reads the time through
    `now()`, so claims, backoffs, read schedules and the lost rule all move with it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return timezone.now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        self.offset = timedelta()


clock = Clock()


def now() -> datetime:
    return clock.now()


# One line per lifecycle event, on its own logger so operators can route or silence it. It
# carries the generation's id and Kling's task id as fields too, which LOG_FORMAT=json
# prints as keys (kling_site/logs.py). Never a secret, a URL or a callback token.
events = logging.getLogger("generations.events")


def event(
    gen: Generation,
    name: str,
    detail: str = "",
    *,
    task_id: str = "",
    level: int = logging.INFO,
    **fields,
) -> None:
    task_id = task_id or gen.task_id
    extra = {"event": name, "generation": gen.pk, "task_id": task_id or None, **fields}
    events.log(
        level,
        "generation %s%s %s%s",
        gen.pk,
        f" (task {task_id})" if task_id else "",
        name,
        f": {detail}" if detail else "",
        extra=extra,
    )


def speed() -> float:
    return float(getattr(settings, "KLING_LIFECYCLE_SPEED", 1.0) or 1.0)


def scaled(seconds: float) -> timedelta:
    return timedelta(seconds=seconds / speed())


def backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with jitter, so retries of many jobs don't arrive together."""
    return min(cap, base * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)


def first_read_delay() -> timedelta:
    """From submit to the task's first read."""
    return scaled(RECONCILE_SCHEDULE[0] if settings.SITE_URL else POLL_SCHEDULE[0])


def next_read_delay(gen: Generation) -> timedelta:
    """From a read of `gen` now to its next one: reconciliation while its pushes reach us,
    polling otherwise (see RECONCILE_SCHEDULE)."""
    pushed = settings.SITE_URL and gen.last_push_at is not None
    if pushed and now() - gen.last_push_at < scaled(PUSH_QUIET):
        return scaled(PUSH_QUIET)  # the confirming read of a recent push: Kling pushes the rest
    schedule = RECONCILE_SCHEDULE if pushed else POLL_SCHEDULE
    return scaled(schedule[min(gen.poll_count, len(schedule) - 1)])


def fail(gen: Generation, code: str, message: str) -> None:
    changed = Generation.objects.filter(pk=gen.pk).move(
        [Status.SUBMITTING, *IN_FLIGHT],
        Status.FAILED,
        claimed_by="",
        finished_at=now(),
        claimed_until=None,
        error_code=code,
        error_message=message,
    )
    if changed:
        event(gen, "failed", message, code=code)


def member_message(exc: CometAPIError) -> str:
    """What a member reads on the card: plain words first, CometAPI's own after."""
    if isinstance(exc, ContentRejected):
        # CometAPI's own message only restates "policy"; its code is kept in error_code.
        return "the prompt was refused under the content policy; change the wording and try again."
    if isinstance(exc, ResultExpired):
        return "The finished clip expired at Kling before we could copy it."
    if isinstance(exc, RequestRejected):
        return f"CometAPI refused the request: {exc.message}"
    return f"CometAPI error: {exc.message}"

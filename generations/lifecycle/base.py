"""What every step of the lifecycle shares: its durations, the clock, the read schedule, the
event log line, the failure write and the words a member reads.

Durations are in seconds of real time and divided by settings.KLING_LIFECYCLE_SPEED (1 in
production; the fault tests run a 20x simulator and shrink them alike).
"""

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..cometapi import (
    CometAPIError,
    ContentRejected,
    RequestRejected,
    ResultExpired,
)
from ..models import IN_FLIGHT, Generation, Status

log = logging.getLogger(__name__)


# Durations below are in seconds of real time and divided by settings.KLING_LIFECYCLE_SPEED
# (1 in production; the fault tests run a 20x simulator and shrink them alike).

# A submit claim outlives the client's usual worst case (a look-up then a create, each with
# 5 s connect and 30 s read timeouts); after it a crashed submit is re-driven. A submit that
# still overruns it is safe too: the re-drive looks up before creating, and a create with an
# external_task_id that exists is refused as a duplicate and adopted.
SUBMIT_LEASE = 150.0
# A download of the largest allowed clip on a slow link; equal to Q_CLUSTER's timeout, which
# kills a task that runs longer.
ARCHIVE_LEASE = 600.0
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
# The pump holds a lease it renews every pass; a pump that dies stops renewing and another
# takes over when it runs out (at once, when the dead holder was on this machine).
PUMP_LEASE = timedelta(seconds=30)
# Seconds a pump task runs before handing over to a fresh one: short, because a stopping
# cluster waits for its running tasks.
PUMP_RUN_FOR = 10.0
PUMP_IDLE_SLEEP = 0.5  # between passes that found nothing due: the poll/dispatch latency
PUMP_STANDBY_SLEEP = 2.0  # a pump thread without the lease looks again this often
# Work done per pass before the pump looks at everything else again, so a burst of 500 new
# jobs or finished clips can't hold up polling.
DISPATCH_PER_PASS = 50
ARCHIVE_BUDGET = 2.0  # seconds of inline archiving per pass

RANK = {"submitted": 1, "processing": 2, "succeed": 3, "failed": 3}
# Rows that hold (or may hold) a concurrency slot on their key upstream: being submitted, in
# flight and not yet seen finished, or back in our queue after a create whose outcome is
# unknown (the task may exist and run). Rows being archived don't: their task has ended.
HOLDS_SLOT = (
    Q(status__in=[Status.SUBMITTING, *IN_FLIGHT]) & ~Q(remote_status__in=["succeed", "failed"])
) | Q(status=Status.QUEUED, create_sent=True)


def now() -> datetime:
    return timezone.now()


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


def enqueue(func: str, *args) -> None:
    """Hand a step to the cluster once the current transaction has committed."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(f"generations.tasks.{func}", *args))


def fail(gen: Generation, code: str, message: str) -> None:
    changed = Generation.objects.filter(
        pk=gen.pk, status__in=[Status.SUBMITTING, *IN_FLIGHT]
    ).update(
        status=Status.FAILED,
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

"""The pump: dispatch of queued jobs (fairly, within each key's slots) and one loop that
drives everything that is due."""

import logging
import threading
import time
from contextlib import suppress

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from .. import heartbeat
from ..models import IN_FLIGHT, Generation, Status
from .base import (
    DISPATCH_PER_PASS,
    PUMP_IDLE_SLEEP,
    PUMP_LEASE,
    PUMP_RUN_FOR,
    PUMP_STANDBY_SLEEP,
    now,
)
from .keys import free_slots
from .leases import release_lease, renew_lease, take_lease
from .remote import poll_due
from .store import archive_due
from .submit import submit

log = logging.getLogger(__name__)


def fair_queue() -> QuerySet:
    """Queued jobs in the order they get slots: every member's oldest job first, then every
    member's second, and so on, so one member's batch of 50 can't starve another's single
    job. Backing-off jobs keep their place."""
    return (
        Generation.objects.filter(status=Status.QUEUED)
        .annotate(
            turn=Window(
                RowNumber(),
                partition_by=[F("owner_id")],
                order_by=[F("created_at").asc(), F("id").asc()],
            )
        )
        .order_by("turn", "created_at", "id")
    )


def queue_positions() -> dict[int, int]:
    """Position (1 = next) of every queued job: one query, for the cards."""
    return {pk: i for i, pk in enumerate(fair_queue().values_list("pk", flat=True), start=1)}


def dispatch(limit: int | None = None) -> int:
    """Submit due queued jobs, fairly, as far as the keys have free slots. Returns how many
    submits were tried."""
    t = now()
    # A submit whose worker died mid-request goes first: it may already be paid for.
    stale = list(
        Generation.objects.filter(status=Status.SUBMITTING, claimed_until__lt=t).values_list(
            "pk", flat=True
        )[: limit or 50]
    )
    for gen_id in stale:
        submit(gen_id)
    slots = free_slots()
    if limit is not None:
        slots = min(slots, limit)
    if slots <= 0:
        return len(stale)
    due = list(
        fair_queue()
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))
        .values_list("pk", flat=True)[:slots]
    )
    for gen_id in due:
        submit(gen_id)
    return len(stale) + len(due)


def has_unfinished_work() -> bool:
    return Generation.objects.filter(
        status__in=[Status.QUEUED, Status.SUBMITTING, *IN_FLIGHT]
    ).exists()


def pump_pass() -> int:
    """One pass over everything due. Returns how much it did (0: nothing was due).
    Reads first: a confirming read after a terminal callback is what members wait for."""
    done = poll_due()
    done += dispatch(limit=DISPATCH_PER_PASS)
    done += archive_due()
    return done


def run_pump(run_for: float = PUMP_RUN_FOR) -> bool:
    """Drive due work for up to `run_for` seconds, then hand over.

    One pump runs at a time (a lease renewed every pass, so a crashed one is replaced when
    it runs out). It sleeps between passes that found nothing due, never per generation.
    Returns True if work remains, so the caller enqueues the next pump; the one-minute
    schedule restarts the chain if it ever breaks.
    """
    if not take_lease("pump", PUMP_LEASE):
        return False
    deadline = time.monotonic() + run_for
    try:
        while time.monotonic() < deadline:
            did = pump_pass()
            if not renew_lease("pump", PUMP_LEASE):
                return False  # another pump took over
            if not did:
                if not has_unfinished_work():
                    break
                time.sleep(PUMP_IDLE_SLEEP)
    finally:
        release_lease("pump")
    # Checked after the release: a job committed while we were deciding to stop either is
    # seen here, or its submit task found the pump stopped and started one (see tasks.py).
    return has_unfinished_work()


def pump_forever(stop: threading.Event) -> None:
    """The pump as a background thread of every worker process (see signals.py); the lease
    makes one of them the pump and the others stand by, ready to take over when its process
    dies. A thread rather than a task because a task would queue behind every other task
    in the broker's FIFO at each hand-over, and would hold a worker while it sleeps; as a
    thread it drives polls and dispatch continuously while both workers run tasks.

    `stop` is set when the worker process ends: the thread finishes its pass, releases
    the lease and returns. A worker killed outright (SIGKILL, a task timeout) takes the
    thread with it mid-pass: a crash as far as the rows are concerned, which their leases
    recover.
    """
    while not stop.is_set():
        try:
            close_old_connections()
            heartbeat.beat()  # throttled; /healthz reports the newest
            if not take_lease("pump", PUMP_LEASE):
                stop.wait(PUMP_STANDBY_SLEEP)
                continue
            if not pump_pass():
                stop.wait(PUMP_IDLE_SLEEP)
        except Exception:
            # A database hiccup or a bug in one pass must not end the pump for good.
            log.exception("pump pass failed")
            stop.wait(PUMP_STANDBY_SLEEP)
    # Stopped between passes (the worker is exiting): hand over at once.
    with suppress(DatabaseError):
        release_lease("pump")
    connection.close()

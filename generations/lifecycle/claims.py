"""Claims: which process works on a row now, and the one heartbeat that keeps them alive.

There is one kind of claim, for every step the engine takes (a submit, a read, a download):
a conditional UPDATE that writes `claimed_until` and `claimed_by` on rows nobody holds. The
holder's heartbeat pushes `claimed_until` out while it works, however long (a 200 MB
download, a create that waits 30 s for its answer); a holder that dies (SIGKILL, a machine
gone) stops renewing, and within CLAIM_TTL another engine, on any machine, takes the row and
redoes the step. Redoing is safe: a create looks its task up by external_task_id first, a
read only reads, and a clip is stored by one conditional UPDATE.

A holder is this machine, this process and the process's start time (`holder()`), so a
reused pid is not mistaken for a dead process's.

The heartbeat (`Keeper`, one thread per process) also records, in a worker process that runs
the engine, that its cluster is alive (lifecycle/heartbeat.py, which /healthz reads).
"""

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

import psutil
from django.db import DatabaseError, connection, transaction

from ..models import Generation, GenerationQuerySet
from . import heartbeat
from .base import CLAIM_TTL, now, scaled

log = logging.getLogger(__name__)

_identity: tuple[int, str] | None = None


def node_name() -> str:
    """This machine's name in holders: KLING_NODE_NAME, else the host name."""
    return os.environ.get("KLING_NODE_NAME") or socket.gethostname()


def holder() -> str:
    """This process, as it signs its claims: `node:pid:start-time`."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:  # computed again in a forked child
        started = int(psutil.Process(pid).create_time() * 100)
        _identity = (pid, f"{node_name()}:{pid}:{started}"[:80])
    return _identity[1]


def claim_ttl() -> timedelta:
    # Floored so that a 20x test run's claims don't expire between two heartbeats on a busy
    # machine (a claim that expires under a live holder is safe, only wasteful).
    return max(scaled(CLAIM_TTL), timedelta(seconds=3))


def claim_fields(t: datetime) -> dict:
    """What a conditional UPDATE that claims a row sets: a short claim in our name, which the
    heartbeat renews while the claimer works inside `holding(pk)`."""
    return {"claimed_until": t + claim_ttl(), "claimed_by": holder()}


def claim_due(rows: GenerationQuerySet, limit: int) -> list[Generation]:
    """Claim up to `limit` of `rows` that are due and unclaimed, oldest due first; returns
    the rows this process now holds, as read when claimed (the caller needs no second
    query). Engines on every machine call it at once: rows another engine is claiming are
    skipped (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's IMMEDIATE transactions let one
    writer in at a time), so no two take the same row."""
    t = now()
    candidates = rows.unclaimed(t).due(t)
    if not candidates.exists():  # the common idle case, without taking a write lock
        return []
    with transaction.atomic():
        claimed = list(
            candidates.select_for_update(skip_locked=True).order_by("next_attempt_at", "pk")[:limit]
        )
        if claimed:
            Generation.objects.filter(pk__in=[gen.pk for gen in claimed]).update(**claim_fields(t))
    return claimed


def release(rows: GenerationQuerySet, ids: list[int]) -> None:
    """Give back the claims this process still holds on those of `ids` that are still among
    `rows` (the step's states): a row the step moved on was released by that move, and may
    be claimed again already, for its next step, by this same process."""
    if ids:
        rows.filter(pk__in=ids, claimed_by=holder()).update(claimed_until=None, claimed_by="")


@contextmanager
def holding(*gen_ids: int) -> Iterator[None]:
    """Keep this process's claims on the rows alive while the block runs."""
    keeper.hold(gen_ids)
    try:
        yield
    finally:
        keeper.drop(gen_ids)


class Keeper:
    """The heartbeat of a process: one thread that pushes out the claims it holds every
    third of CLAIM_TTL and, once the engine runs in the process (`serve_cluster`), records
    every BEAT_EVERY that its cluster is alive. Started on first use in each process (a
    worker, a test, a management command), so whoever claims is also kept alive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: Counter[int] = Counter()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.serves_cluster = False
        self._last_cluster_beat = 0.0
        self._beat_soon = False

    def hold(self, gen_ids) -> None:
        self._ensure_running()
        with self._lock:
            self._rows.update(gen_ids)

    def drop(self, gen_ids) -> None:
        with self._lock:
            self._rows.subtract(gen_ids)
            self._rows = +self._rows  # forget the rows no longer held

    def held(self) -> list[int]:
        with self._lock:
            return list(self._rows)

    def serve_cluster(self) -> None:
        """This process runs the engine: from now on its heartbeat says its cluster lives,
        the first time at once."""
        self.serves_cluster = True
        self._last_cluster_beat = 0.0
        self._beat_soon = True  # within a second, not at the next renewal of claims
        self._ensure_running()

    def _ensure_running(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._thread and self._thread.is_alive():
                return
            if self._pid != os.getpid():
                # A forked child: what the parent holds is signed with the parent's name, and
                # the parent's last beat was not this process's.
                self._rows = Counter()
                self._last_cluster_beat = 0.0
            self._pid = os.getpid()
            # A daemon: it only renews, and must never keep a process from exiting.
            self._thread = threading.Thread(target=self._run, name="kling-heartbeat", daemon=True)
            self._thread.start()

    def beat(self) -> None:
        """Push out every claim this process holds (one UPDATE), and record the cluster's
        heartbeat when it is due."""
        rows = self.held()
        if rows:
            Generation.objects.filter(pk__in=rows, claimed_by=holder()).update(
                claimed_until=now() + claim_ttl()
            )
        since = time.monotonic() - self._last_cluster_beat
        if self.serves_cluster and since >= heartbeat.BEAT_EVERY:
            heartbeat.record()
            self._last_cluster_beat = time.monotonic()

    def _run(self) -> None:
        last = 0.0
        while True:
            # Looks every second and beats every third of CLAIM_TTL, read afresh each time
            # (tests change the lifecycle's speed while the process runs).
            every = claim_ttl().total_seconds() / 3
            if self._beat_soon or time.monotonic() - last >= every:
                last, self._beat_soon = time.monotonic(), False
                try:
                    self.beat()
                except Exception:
                    # The database is away (or anything else went wrong): the claims may run
                    # out, and whoever takes them over redoes the step safely. The heartbeat
                    # itself goes on.
                    log.warning("could not renew this process's claims", exc_info=True)
                finally:
                    # A daemon thread is never joined: it holds no connection between beats,
                    # so none is left open when the process exits.
                    with suppress(DatabaseError):
                        connection.close()
            time.sleep(min(1.0, every))


keeper = Keeper()

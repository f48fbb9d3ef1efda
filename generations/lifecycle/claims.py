"""Who holds what: the pump's named lease, and claims on rows (a submit, a download).

Both are short and kept alive by their holder's heartbeat (`Keeper`, one thread per process)
while it works, so a machine that dies loses them within CLAIM_TTL and another machine
carries on; a holder that is merely slow (a long download, a create that takes 30 s) keeps
them. A holder is this machine, this process and the process's start time, so a dead process
on this machine is recognised at once (`is_dead_local`) and a reused pid is not mistaken for it.
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
from django.db import DatabaseError, connection
from django.db.models import Q

from ..models import Generation, WorkerLease
from .base import CLAIM_TTL, now, scaled

log = logging.getLogger(__name__)

_identity: tuple[int, str] | None = None


def node_name() -> str:
    """This machine's name in holders: KLING_NODE_NAME, else the host name."""
    return os.environ.get("KLING_NODE_NAME") or socket.gethostname()


def holder() -> str:
    """This process, as it signs its leases and claims: `node:pid:start-time`."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:  # computed again in a forked child
        started = int(psutil.Process(pid).create_time() * 100)
        _identity = (pid, f"{node_name()}:{pid}:{started}"[:80])
    return _identity[1]


def is_dead_local(who: str) -> bool:
    """True if `who` was a process on this machine that no longer runs (SIGKILLed, say)."""
    node, _, rest = who.partition(":")
    pid, _, started = rest.partition(":")
    if node != node_name() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        proc = psutil.Process(int(pid))
        if started.isdigit() and int(proc.create_time() * 100) != int(started):
            return True  # the pid was reused by another process
        return proc.status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped by its parent
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def claim_ttl() -> timedelta:
    # Floored so that a 20x test run's claims don't expire between two heartbeats on a busy
    # machine (a claim that expires under a live holder is safe, only wasteful).
    return max(scaled(CLAIM_TTL), timedelta(seconds=3))


# -- the pump's lease


def take_lease(name: str, duration: timedelta | None = None) -> bool:
    """Take (or keep) the named lease; True if we hold it now. The keeper renews it."""
    t = now()
    duration = duration or claim_ttl()
    lease, _ = WorkerLease.objects.get_or_create(
        name=name, defaults={"held_until": t - timedelta(seconds=1)}
    )
    me = holder()
    free = Q(held_until__lt=t) | Q(holder=me)
    if lease.holder and lease.holder != me and is_dead_local(lease.holder):
        # Its process is gone (a SIGKILLed cluster): no need to wait for the lease to end.
        free |= Q(holder=lease.holder)
    taken = WorkerLease.objects.filter(free, name=name).update(held_until=t + duration, holder=me)
    if taken:
        keeper.hold_lease(name)
    return taken == 1


def release_lease(name: str) -> None:
    keeper.drop_lease(name)
    WorkerLease.objects.filter(name=name, holder=holder()).update(
        held_until=now() - timedelta(seconds=1)
    )


def pump_is_running() -> bool:
    return WorkerLease.objects.filter(name="pump", held_until__gte=now()).exists()


# -- claims on rows


def claim_fields(t: datetime) -> dict:
    """What a conditional UPDATE that claims a row sets: a short claim in our name, which the
    keeper renews while the claimer works inside `holding(pk)`."""
    return {"claimed_until": t + claim_ttl(), "claimed_by": holder()}


@contextmanager
def holding(gen_id: int) -> Iterator[None]:
    """Keep this process's claim on the row alive while the block runs."""
    keeper.hold(gen_id)
    try:
        yield
    finally:
        keeper.drop(gen_id)


class Keeper:
    """The heartbeat of this process's claims and leases: one thread that pushes them out
    every third of CLAIM_TTL while they are held. Started on first use in each process (a
    worker, a test, a management command), so whoever claims is also kept alive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: Counter[int] = Counter()
        self._leases: set[str] = set()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, gen_id: int) -> None:
        self._ensure_running()
        with self._lock:
            self._rows[gen_id] += 1

    def drop(self, gen_id: int) -> None:
        with self._lock:
            self._rows[gen_id] -= 1
            if self._rows[gen_id] <= 0:
                del self._rows[gen_id]

    def hold_lease(self, name: str) -> None:
        self._ensure_running()
        with self._lock:
            self._leases.add(name)

    def drop_lease(self, name: str) -> None:
        with self._lock:
            self._leases.discard(name)

    def held(self) -> tuple[list[int], list[str]]:
        with self._lock:
            return list(self._rows), list(self._leases)

    def _ensure_running(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._thread and self._thread.is_alive():
                return
            if self._pid != os.getpid():
                # A forked child: what the parent holds is signed with the parent's name.
                self._rows, self._leases = Counter(), set()
            self._pid = os.getpid()
            # A daemon: it only renews, and must never keep a process from exiting.
            self._thread = threading.Thread(target=self._run, name="kling-keeper", daemon=True)
            self._thread.start()

    def beat(self) -> None:
        """Push out every claim and lease this process holds (one UPDATE each kind)."""
        rows, leases = self.held()
        until = now() + claim_ttl()
        me = holder()
        if rows:
            Generation.objects.filter(pk__in=rows, claimed_by=me).update(claimed_until=until)
        if leases:
            WorkerLease.objects.filter(name__in=leases, holder=me).update(held_until=until)

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            # Looks every second and beats every third of CLAIM_TTL, read afresh each time
            # (tests change the lifecycle's speed while the process runs).
            every = claim_ttl().total_seconds() / 3
            time.sleep(min(1.0, every))
            if time.monotonic() - last < every:
                continue
            last = time.monotonic()
            try:
                self.beat()
            except Exception:
                # The database is away (or anything else went wrong): the claims may run out,
                # and whoever takes them over redoes the step safely (a create is looked up
                # first; a store is one conditional UPDATE). The heartbeat itself goes on.
                log.warning("could not renew this process's claims", exc_info=True)
            finally:
                # A daemon thread is never joined: it holds no connection between beats, so
                # none is left open when the process exits.
                with suppress(DatabaseError):
                    connection.close()


keeper = Keeper()

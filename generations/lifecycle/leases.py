"""Named leases in the database: one holder at a time, replaced when it dies."""

import logging
import os
import socket
import threading
from datetime import timedelta
from pathlib import Path

from django.db.models import Q

from ..models import WorkerLease
from .base import now

log = logging.getLogger(__name__)


def lease_holder() -> str:
    """Who holds a lease: this machine, process and thread, so a dead holder here is
    recognised and two pumps in one process (the thread and a scheduled task) don't mix."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:64]


def _is_dead_local(holder: str) -> bool:
    """True if `holder` was a process on this machine that no longer runs."""
    host, _, pid = holder.rsplit(":", 1)[0].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    return state in ("Z", "X")  # killed, not yet reaped by its parent


def take_lease(name: str, duration: timedelta) -> bool:
    t = now()
    lease, _ = WorkerLease.objects.get_or_create(
        name=name, defaults={"held_until": t - timedelta(seconds=1)}
    )
    me = lease_holder()
    free = Q(held_until__lt=t) | Q(holder=me)
    if lease.holder and _is_dead_local(lease.holder):
        # Its process is gone (a SIGKILLed cluster): no need to wait for the lease to end.
        free |= Q(holder=lease.holder)
    taken = WorkerLease.objects.filter(free, name=name).update(held_until=t + duration, holder=me)
    return taken == 1


def renew_lease(name: str, duration: timedelta) -> bool:
    """Extend a lease we hold; False if it ran out and another process took it."""
    return (
        WorkerLease.objects.filter(name=name, holder=lease_holder()).update(
            held_until=now() + duration
        )
        == 1
    )


def release_lease(name: str) -> None:
    WorkerLease.objects.filter(name=name, holder=lease_holder()).update(
        held_until=now() - timedelta(seconds=1)
    )


def pump_is_running() -> bool:
    return WorkerLease.objects.filter(name="pump", held_until__gte=now()).exists()

"""Start-up of the cluster's pump.

Every worker process that spawns starts a pump thread (lifecycle.pump_forever): the lease
makes one of them the pump, the others stand by. So jobs in flight when the cluster stopped
(or was killed) move at once, without waiting for django-q2's scheduler (its first pass comes
about 30 s after start, its finest interval is a minute). A lease left by a killed process
on this machine is taken over at once (see lifecycle.take_lease).

The one-minute schedule stays as the sweeper of last resort: it runs the pump as a task
whenever no pump thread holds the lease.
"""

import logging
import multiprocessing
import threading
from multiprocessing.util import Finalize

from django.dispatch import receiver
from django_q.signals import post_spawn

log = logging.getLogger(__name__)

PUMP_SCHEDULE = "kling-pump"


def ensure_schedule() -> None:
    """The sweeper: a pump every minute, should the pump threads ever all be gone.

    Migration 0005 creates it; this only repairs it. Never get_or_create/update_or_create
    here: every worker spawning at once on PostgreSQL could insert one each, and a later
    get() would then raise in every new worker (seen in the SIGKILL fault test)."""
    from django_q.models import Schedule

    schedules = Schedule.objects.filter(name=PUMP_SCHEDULE).order_by("pk")
    keep = schedules.first()
    if keep is None:
        Schedule.objects.create(
            name=PUMP_SCHEDULE,
            func="generations.tasks.pump",
            schedule_type=Schedule.MINUTES,
            minutes=1,
            repeats=-1,
        )
    else:
        schedules.exclude(pk=keep.pk).delete()  # duplicates from a race: keep the oldest


_pump_thread: threading.Thread | None = None


@receiver(post_spawn)
def start_pump(sender, proc_name: str, **kwargs) -> None:
    """Runs in each new worker process (django-q2 sends post_spawn from the worker)."""
    global _pump_thread
    from . import lifecycle

    try:
        ensure_schedule()
    except Exception:  # noqa: BLE001 (a signal handler that raises kills the worker at birth)
        log.exception("could not check the pump schedule; the pump threads run regardless")
    if _pump_thread is None or not _pump_thread.is_alive():
        stop = threading.Event()
        # A worker's task loop ends when django-q2 recycles it (every `recycle` tasks) or
        # the cluster stops. multiprocessing then runs the finalizer below and joins
        # non-daemon threads, so the pump finishes the pass it is in, releases its lease
        # and exits: no row it had claimed (a create, a download) waits for its lease to
        # run out. Only SIGKILL or a task timeout ends it mid-pass; the leases recover
        # those. Outside a worker process (nothing would set `stop` before the interpreter
        # joins its threads) the thread stays a daemon.
        in_worker = multiprocessing.parent_process() is not None
        _pump_thread = threading.Thread(
            target=lifecycle.pump_forever,
            args=(stop,),
            name=f"kling-pump-{proc_name}",
            daemon=not in_worker,
        )
        Finalize(None, stop.set, exitpriority=10)
        _pump_thread.start()

"""Start-up of the engine in every worker process of the cluster.

Every worker process that spawns starts the engine (lifecycle.run_engine) in a thread:
every engine reads, dispatches and stores, sharing the rows through claims
(generations/lifecycle/engine.py). So jobs in flight when the cluster stopped (or was
killed) move at once, without waiting for django-q2's scheduler.
"""

import logging
import multiprocessing
import threading
from multiprocessing.util import Finalize

from django.dispatch import receiver
from django_q.signals import post_spawn

log = logging.getLogger(__name__)

_engine_thread: threading.Thread | None = None


@receiver(post_spawn)
def start_engine(sender, proc_name: str, **kwargs) -> None:
    """Runs in each new worker process (django-q2 sends post_spawn from the worker)."""
    global _engine_thread
    from . import lifecycle

    if _engine_thread is not None and _engine_thread.is_alive():
        return
    stop = threading.Event()
    # A worker's task loop ends when django-q2 recycles it (every `recycle` tasks) or the
    # cluster stops. multiprocessing then runs the finalizer below and joins non-daemon
    # threads, so the engine finishes the pass and the downloads it is in and exits: no
    # row it had claimed waits for its claim to run out. Only SIGKILL or a
    # task timeout ends it mid-step; the claims run out then. Outside a worker process
    # (nothing would set `stop` before the interpreter joins its threads) it is a daemon.
    in_worker = multiprocessing.parent_process() is not None
    _engine_thread = threading.Thread(
        target=lifecycle.run_engine,
        args=(stop,),
        name=f"kling-engine-{proc_name}",
        daemon=not in_worker,
    )
    Finalize(None, stop.set, exitpriority=10)
    _engine_thread.start()

"""The engine: the one driver of the lifecycle, run by every worker process of every cluster.

Started when django-q2 spawns a worker (generations/signals.py), it runs two loops beside the
worker's task loop, the same in every engine of the fleet:

- the pump (pump.py): reads of tasks in flight and dispatch of queued jobs, pass after pass;
- the store loop (store.StoreLoop): finished clips downloaded and given a poster, several at
  once.

Engines share the work through claims on the rows (claims.py): each takes what it claims,
and what a dead engine held comes free within CLAIM_TTL. Its process's heartbeat
(claims.Keeper) keeps those claims alive and says that the cluster lives.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection

from .base import PUMP_ERROR_SLEEP, PUMP_IDLE_SLEEP, STORE_THREADS_DEFAULT
from .claims import keeper
from .pump import pump_pass
from .store import StoreLoop

log = logging.getLogger(__name__)


def store_threads() -> int:
    return int(getattr(settings, "KLING_STORE_THREADS", 0) or STORE_THREADS_DEFAULT)


def run_engine(stop: threading.Event) -> None:
    """Run the engine until `stop` is set (the worker process is exiting): the pump finishes
    its pass, the downloads under way finish, and it returns. A process killed outright
    takes the engine with it mid-step; the claims recover that."""
    keeper.serve_cluster()
    store = threading.Thread(
        target=StoreLoop(store_threads()).run, args=(stop,), name="kling-store-loop"
    )
    store.start()
    try:
        run_pump(stop)
    finally:
        store.join()


def run_pump(stop: threading.Event) -> None:
    """The pump loop: pass after pass, with a short sleep after one that found nothing due."""
    while not stop.is_set():
        try:
            close_old_connections()
            if not pump_pass():
                stop.wait(PUMP_IDLE_SLEEP)
        except Exception:
            # A database hiccup or a bug in one pass must not end the pump for good.
            log.exception("pump pass failed")
            stop.wait(PUMP_ERROR_SLEEP)
    connection.close()

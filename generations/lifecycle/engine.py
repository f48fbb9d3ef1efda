"""The engine: the one driver of the lifecycle, run by every worker process of every cluster.

Started when django-q2 spawns a worker (generations/signals.py), it runs two loops beside the
worker's task loop:

- the pump (pump.py): reads of tasks in flight and dispatch of queued jobs. One engine of
  the whole fleet runs it at a time, the holder of the "pump" lease; the others stand by and
  one takes over within CLAIM_TTL when the holder dies (at once if it died on this machine).
  It is cheap work (concurrent reads, one create per job), so one pump serves a fleet.
- the store loop (store.StoreLoop): finished clips downloaded and given a poster, several at
  once. Every engine runs one, and they share the clips through claims on the rows, so each
  worker process, on any machine, adds downloads.

Everything it holds (the lease, the claims of a create or a download under way) is kept
alive by its process's heartbeat (leases.Keeper) and runs out soon after the process dies.
"""

import logging
import threading
from contextlib import suppress

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from . import heartbeat
from .base import PUMP_IDLE_SLEEP, PUMP_STANDBY_SLEEP, STORE_THREADS_DEFAULT
from .claims import release_lease, take_lease
from .pump import pump_pass
from .store import StoreLoop

log = logging.getLogger(__name__)


def store_threads() -> int:
    return int(getattr(settings, "KLING_STORE_THREADS", 0) or STORE_THREADS_DEFAULT)


def run_engine(stop: threading.Event) -> None:
    """Run the engine until `stop` is set (the worker process is exiting): the pump finishes
    its pass and hands its lease over, the downloads under way finish, and it returns. A
    process killed outright takes the engine with it mid-step; the claims recover that."""
    store = threading.Thread(
        target=StoreLoop(store_threads()).run, args=(stop,), name="kling-store-loop"
    )
    store.start()
    try:
        run_pump(stop)
    finally:
        store.join()


def run_pump(stop: threading.Event) -> None:
    """The pump loop: a pass whenever this engine holds the lease, a short sleep when the
    pass found nothing due, a longer one while another engine holds it."""
    while not stop.is_set():
        try:
            close_old_connections()
            heartbeat.beat()  # throttled; /healthz reports the newest
            if not take_lease("pump"):
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

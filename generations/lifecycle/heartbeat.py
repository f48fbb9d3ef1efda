"""The cluster's heartbeat: each machine's cluster says it is alive, /healthz reads it.

The engine of every cluster worker calls beat() on each turn of its pump loop (lifecycle's
engine.run_pump), leaseholder or standby alike, so a beat means "a worker on this host is
running and reaches the database". One row per cluster and host: a restart reuses it.
"""

import os
import socket
import time
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import ClusterHeartbeat

# Every worker of every cluster beats: at most this often per process keeps it one small
# UPDATE every 10 s per worker, however fast the pump turns.
BEAT_EVERY = 10.0

_last_beat = 0.0


def cluster_name() -> str:
    return settings.Q_CLUSTER.get("name", "default")


def beat(*, force: bool = False) -> bool:
    """Record that this process's cluster is alive; throttled to once per BEAT_EVERY
    seconds per process. Returns True if it wrote."""
    global _last_beat
    if not force and time.monotonic() - _last_beat < BEAT_EVERY:
        return False
    _last_beat = time.monotonic()
    key = {"cluster": cluster_name(), "host": socket.gethostname()[:255]}
    values = {"pid": os.getpid(), "seen_at": timezone.now()}
    if not ClusterHeartbeat.objects.filter(**key).update(**values):
        try:
            with transaction.atomic():
                ClusterHeartbeat.objects.create(**key, **values)
        except IntegrityError:  # another worker on this host created it first
            ClusterHeartbeat.objects.filter(**key).update(**values)
    return True


def latest() -> datetime | None:
    """When any machine's cluster last beat, or None if none ever has."""
    return ClusterHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()

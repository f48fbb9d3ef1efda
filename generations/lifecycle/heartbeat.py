"""The cluster's heartbeat row: each machine's cluster says it is alive, /healthz reads it.

Written by the one heartbeat of every worker process that runs the engine (claims.Keeper,
every BEAT_EVERY seconds), so a fresh row means "a worker on this host is running and
reaches the database". One row per cluster and host: a restart reuses it.
"""

import os
import socket
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import ClusterHeartbeat

# Every worker of every cluster beats: one small UPDATE every 10 s per worker.
BEAT_EVERY = 10.0


def cluster_name() -> str:
    return settings.Q_CLUSTER.get("name", "default")


def record() -> None:
    """Record that this process's cluster is alive, now."""
    key = {"cluster": cluster_name(), "host": socket.gethostname()[:255]}
    values = {"pid": os.getpid(), "seen_at": timezone.now()}
    if not ClusterHeartbeat.objects.filter(**key).update(**values):
        try:
            with transaction.atomic():
                ClusterHeartbeat.objects.create(**key, **values)
        except IntegrityError:  # another worker on this host created it first
            ClusterHeartbeat.objects.filter(**key).update(**values)


def latest() -> datetime | None:
    """When any machine's cluster last beat, or None if none ever has."""
    return ClusterHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()

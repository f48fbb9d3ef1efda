"""Rows the running processes coordinate through (besides the claims on generations): each
cluster's heartbeat, and members' zip download slots.
"""

import uuid

from django.conf import settings
from django.db import models


class ClusterHeartbeat(models.Model):
    cluster = models.CharField(max_length=100)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    seen_at = models.DateTimeField(db_index=True)  # latest() reads the newest

    class Meta:
        app_label = "generations"
        constraints = [
            models.UniqueConstraint(fields=["cluster", "host"], name="heartbeat_per_host")
        ]

    def __str__(self) -> str:
        return f"{self.cluster} on {self.host} (pid {self.pid}) at {self.seen_at:%H:%M:%S}"


class DownloadSlot(models.Model):
    """One of a member's few concurrent zip downloads (see galleries/zipslots.py). A row per running
    download, numbered below the limit, so the unique constraint is the semaphore and it
    holds across web processes and machines; a row whose lease ran out (a crashed worker, a
    client that stopped reading) no longer counts."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="download_slots"
    )
    number = models.PositiveSmallIntegerField()
    token = models.UUIDField(default=uuid.uuid4, unique=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "number"], name="one_download_per_slot")
        ]

    def __str__(self) -> str:
        return f"download slot {self.number} of {self.owner_id} until {self.expires_at}"

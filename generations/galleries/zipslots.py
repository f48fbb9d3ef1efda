"""How many zip downloads a member may run at once, across every web process.

A zip streams for as long as the client reads, and each one holds a web worker; without a
limit one member (or one stuck download manager) can occupy them all. A slot is a
`DownloadSlot` row: claimed before the response starts, renewed while bytes flow, deleted
when the response closes. A crashed worker never deletes its row, and a client that stops
reading stops renewing it: either way the lease runs out and the slot is free again.
"""

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from ..models import DownloadSlot

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)  # how long a slot outlives its last renewal
RENEW_EVERY = 30.0  # seconds between renewals while the stream moves: well inside LEASE


def limit() -> int:
    return settings.KLING_ZIPS_PER_MEMBER


def claim(user) -> uuid.UUID | None:
    """A slot's token, or None when all of the member's slots are taken."""
    now = timezone.now()
    DownloadSlot.objects.filter(owner=user, expires_at__lte=now).delete()
    for number in range(limit()):
        try:
            with transaction.atomic():
                slot = DownloadSlot.objects.create(
                    owner=user, number=number, expires_at=now + LEASE
                )
        except IntegrityError:
            continue  # taken: try the next number
        return slot.token
    return None


def renew(token: uuid.UUID) -> None:
    DownloadSlot.objects.filter(token=token).update(expires_at=timezone.now() + LEASE)


def release(token: uuid.UUID) -> None:
    try:
        DownloadSlot.objects.filter(token=token).delete()
    except DatabaseError:  # the lease frees it soon anyway; the response must still close
        log.warning("could not release download slot %s", token, exc_info=True)


class HeldStream:
    """The chunks of a streamed response that holds a slot: renews it while the client
    reads and releases it when the response is closed (StreamingHttpResponse calls
    `close`, finished or aborted)."""

    def __init__(self, chunks: Iterator[bytes], token: uuid.UUID) -> None:
        self._chunks = chunks
        self._token = token
        self._renewed = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if time.monotonic() - self._renewed > RENEW_EVERY:
                renew(self._token)
                self._renewed = time.monotonic()
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            release(self._token)

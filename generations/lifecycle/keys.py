"""API keys: which key a job uses (a free concurrency slot, counted without decrypting) and
the client built from its secret."""

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, Q

from ..crypto import DecryptionError
from ..governance import keypool
from ..kling import CometAPIClient, CometAPIError, KeyRejected
from ..models import HOLDS_SLOT, USABLE, ApiKey, Generation
from .base import now

log = logging.getLogger(__name__)


class SecretUnreadable(KeyRejected):
    """The key's stored secret can't be decrypted with FIELD_ENCRYPTION_KEY: nothing was
    sent, so a job may move to another key."""


def key_of(gen: Generation) -> ApiKey | None:
    """The row's key with its secret not yet decrypted (`gen.api_key` would decrypt it while
    loading, and raise for a key that can't be)."""
    return ApiKey.objects.filter(pk=gen.api_key_id).first() if gen.api_key_id else None


def key_secret(key: ApiKey | None, version: int | None = None) -> str:
    """The key's secret, decrypted now: the one of `version` (the secret the job's task was
    created with, see keypool), else the current one. A secret that can't be decrypted marks
    its key unhealthy and raises SecretUnreadable (a KeyRejected, handled as a refused key)."""
    if key is None:
        return ""
    try:
        return keypool.secret_of(key, version)
    except DecryptionError:
        exc = SecretUnreadable(
            f"the stored secret of API key {key.name!r} cannot be decrypted with "
            "FIELD_ENCRYPTION_KEY: put back the Fernet key it was saved with (keys are "
            "comma-separated, all of them decrypt) or paste the CometAPI key again in admin"
        )
        mark_key_unhealthy(key, exc)
        raise exc from None


def client_for(key: ApiKey | None, version: int | None = None) -> CometAPIClient:
    return CometAPIClient(key_secret(key, version), settings.COMETAPI_BASE_URL)


def download_client() -> CometAPIClient:
    """Result URLs are a CDN's: downloads need no key, so an unreadable one can't stop them."""
    return CometAPIClient("", settings.COMETAPI_BASE_URL)


def _busy_by_key(keys: Iterable[ApiKey], *, excluding: int | None = None) -> dict[int, int]:
    """Slots each key holds or may hold upstream (see HOLDS_SLOT), in one query."""
    rows = Generation.objects.filter(status__in=HOLDS_SLOT, api_key__in=list(keys))
    if excluding is not None:
        rows = rows.exclude(pk=excluding)
    return dict(rows.order_by().values_list("api_key").annotate(n=Count("id")))


def pick_key(gen: Generation) -> tuple[ApiKey | None, str]:
    """A healthy key with a free concurrency slot, or None and why the job waits.

    Called inside the claim's transaction. The keys are locked first (FOR UPDATE on
    PostgreSQL; SQLite's IMMEDIATE transaction already serialises writers) and counted after,
    so the count sees every claim committed before ours: two workers can't both take a key's
    last slot. PostgreSQL refuses FOR UPDATE with GROUP BY, hence two queries. The job's own
    row is left out of the count: a job that may already hold a slot (a create whose answer
    was lost) must be able to look its task up even when its key is full.
    """
    usable = USABLE
    if gen.create_sent and gen.api_key_id:
        # A disabled key still finishes what it may have started.
        usable |= Q(pk=gen.api_key_id, is_healthy=True)
    keys = list(ApiKey.objects.select_for_update().filter(usable).order_by("pk"))
    busy = _busy_by_key(keys, excluding=gen.pk)
    for key in keys:
        key.busy = busy.get(key.pk, 0)
    keys.sort(key=lambda k: (k.busy - k.concurrency_limit, k.pk))  # most free slots first
    if gen.create_sent and gen.api_key_id:
        # A create may already exist under this key's account: only this key can find it,
        # and a create on another account would be a second paid task.
        keys = [k for k in keys if k.pk == gen.api_key_id]
        if not keys:
            return None, "Waiting for its API key to work again (it may already be running)"
    if not keys:
        return None, "Waiting: no working CometAPI key (an admin needs to add or fix one)"
    for key in keys:
        if key.busy < key.concurrency_limit:
            return key, ""
    return None, "Waiting for a free slot on the team's CometAPI keys"


def free_slots() -> int:
    keys = list(ApiKey.objects.usable())
    busy = _busy_by_key(keys)
    return sum(max(0, k.concurrency_limit - busy.get(k.pk, 0)) for k in keys)


def mark_key_unhealthy(key: ApiKey | None, exc: CometAPIError) -> None:
    if key is None:
        return
    ApiKey.objects.filter(pk=key.pk, is_healthy=True).update(
        is_healthy=False, unhealthy_since=now()
    )
    ApiKey.objects.filter(pk=key.pk).update(last_error=str(exc)[:2000])
    log.error("API key %s marked unhealthy: %s", key.name, exc)


def secret_or_error(key: ApiKey | None, version: int | None) -> str | SecretUnreadable:
    try:
        return key_secret(key, version)
    except SecretUnreadable as exc:
        return exc

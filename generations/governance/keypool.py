"""The key pool: which secret a job's requests use, rotation, switching keys off and on, and
the background probe that brings an unhealthy key back.

Kling tasks belong to the secret that created them. A rotation therefore keeps the old
secret (a RetiredSecret row, encrypted like the key) for the tasks it created: every new
create uses the new secret at once, each job reads and downloads with the secret of its
`key_version`, and once no unfinished job needs an old secret it is forgotten.

Secrets leave this module only for lifecycle.key_secret, which hands them to the Kling
client (kling/) for the Authorization header; everything here logs names and masks only.
"""

import logging
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..crypto import DecryptionError
from ..kling import CometAPIClient, CometAPIError, KeyRejected
from ..models import TERMINAL, ApiKey, Generation, RetiredSecret, mask_secret

log = logging.getLogger(__name__)

PROBE_RESULT_MAX = 300


mask = mask_secret


def secret_of(key: ApiKey, version: int | None) -> str:
    """The secret of `key` at `version` (None: the current one), decrypted. A version
    rotated out and since forgotten falls back to the current secret, the only one left.
    Raises crypto.DecryptionError when the secret can't be decrypted (lifecycle.key_secret
    turns that into a refused key)."""
    if version is not None and version != key.secret_version:
        retired = RetiredSecret.objects.filter(api_key=key, version=version).first()
        if retired is not None:
            return retired.secret
    return key.secret


def version_for_claim(gen: Generation, key: ApiKey) -> int:
    """The key version a job claimed for submit binds to: the current one, unless a create
    may already exist under the version it had (it must be looked up with that secret)."""
    if gen.create_sent and gen.api_key_id == key.pk and gen.key_version is not None:
        return gen.key_version
    return key.secret_version


# -- rotation


UNFINISHED = ~Q(status__in=TERMINAL)


@sensitive_variables("new_secret", "old")
def rotate(key: ApiKey, new_secret: str) -> ApiKey:
    """Give `key` a new secret for every create from now on. The old one is kept for the
    unfinished tasks it created, then forgotten (forget_retired_secrets)."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        version = locked.secret_version
        try:
            old = locked.secret
        except DecryptionError:
            old = None  # unreadable: its tasks can't be read with it anyway
        running = Generation.objects.filter(UNFINISHED, api_key=locked, key_version=version)
        if old is not None and running.exists():
            RetiredSecret.objects.create(api_key=locked, version=version, secret=old)
        locked.secret = new_secret
        locked.secret_version = version + 1
        # A new secret deserves a try: the probe and the next create will tell.
        locked.is_healthy = True
        locked.unhealthy_since = None
        locked.last_error = ""
        locked.save()
    log.info("API key %s rotated to version %s (%s)", locked.name, version + 1, mask(new_secret))
    return locked


def forget_retired_secrets() -> int:
    """Delete every retired secret no unfinished job needs any more. Returns how many."""
    forgotten = 0
    for retired in RetiredSecret.objects.only("pk", "api_key_id", "version"):
        still_needed = Generation.objects.filter(
            UNFINISHED, api_key_id=retired.api_key_id, key_version=retired.version
        ).exists()
        if not still_needed:
            retired.delete()
            forgotten += 1
    return forgotten


# -- on and off


def set_active(keys: Iterable[ApiKey], active: bool) -> list[ApiKey]:
    """Switch keys on or off. An inactive key takes no new jobs; jobs already bound to it
    (in flight, or with a create that may exist) finish with it. Returns the keys changed."""
    changed = [k for k in keys if k.is_active != active]
    ApiKey.objects.filter(pk__in=[k.pk for k in changed]).update(is_active=active)
    for key in changed:
        key.is_active = active
        log.info("API key %s %s", key.name, "enabled" if active else "disabled")
    return changed


def mark_healthy(keys: Iterable[ApiKey]) -> list[ApiKey]:
    changed = [k for k in keys if not k.is_healthy]
    ApiKey.objects.filter(pk__in=[k.pk for k in changed]).update(
        is_healthy=True, unhealthy_since=None, last_error=""
    )
    return changed


# -- the probe


def probe(key: ApiKey) -> bool | None:
    """One cheap read with the key: a look-up of a task that doesn't exist. Not found means
    CometAPI accepted the key (True); a key refusal (401, 1101-1103) means still bad
    (False); anything else (an outage) says nothing (None). Records the outcome; a key
    that works is marked healthy again."""
    now = timezone.now()
    try:
        with CometAPIClient(key.secret, settings.COMETAPI_BASE_URL) as client:
            client.find_by_external_id(f"ks-probe-{uuid.uuid4().hex}")
        works, result = True, "OK: CometAPI accepted the key"
    except DecryptionError:
        works, result = False, "Still refused: its secret can't be decrypted (paste it again)"
    except KeyRejected as exc:
        works, result = False, f"Still refused: {exc}"
    except CometAPIError as exc:
        works, result = None, f"Inconclusive: {exc}"
    update = {"last_probe_at": now, "last_probe_result": result[:PROBE_RESULT_MAX]}
    if works:
        update |= {"is_healthy": True, "unhealthy_since": None, "last_error": ""}
    ApiKey.objects.filter(pk=key.pk).update(**update)
    for field, value in update.items():
        setattr(key, field, value)
    if works:
        log.info("API key %s works again (probe)", key.name)
    return works


def probe_unhealthy_keys() -> int:
    """The scheduled probe (every few minutes): each active unhealthy key once. Also forgets
    retired secrets that no job needs any more. Returns how many keys came back."""
    back = sum(bool(probe(key)) for key in ApiKey.objects.filter(is_active=True, is_healthy=False))
    forget_retired_secrets()
    return back

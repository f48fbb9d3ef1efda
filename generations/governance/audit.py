"""The audit trail: every change that matters to money or access (keys added, rotated,
disabled, enabled, marked healthy; limits; prices; members made staff), with who made it.

From admin the actor is the signed-in member; from the shell it is the command and the OS
user (`shell_actor`). Details never hold a secret: keys appear by name and mask.
"""

import contextvars
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.contrib.auth import get_user_model

from ..models import AuditEvent

KEY_ADDED = "key added"
KEY_ROTATED = "key rotated"
KEY_DISABLED = "key disabled"
KEY_ENABLED = "key enabled"
KEY_MARKED_HEALTHY = "key marked healthy"
LIMITS_CHANGED = "limits changed"
PRICE_CHANGED = "price changed"
MADE_STAFF = "member made staff"

# Who is acting, for changes recorded by signals (a member made staff), which can't see
# the request: admin sets it around its saves; elsewhere the shell command is assumed.
_acting = contextvars.ContextVar("audit_actor", default=None)


def shell_actor(command: str | None = None) -> str:
    if command is None:
        command = sys.argv[1] if len(sys.argv) > 1 else sys.argv[0]
    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):
        os_user = "unknown"
    return f"manage.py {command} (OS user {os_user})"


@contextmanager
def acting_as(actor) -> Iterator[None]:
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


def _plain(value):
    """JSON-safe detail values (Decimal and friends as text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def record(actor, action: str, target, details: dict | None = None) -> AuditEvent:
    """Record one change. `actor` is a user, a description (shell_actor), or None for
    whoever `acting_as` names (else the shell command)."""
    if actor is None:
        actor = _acting.get() or shell_actor()
    user = actor if isinstance(actor, get_user_model()) else None
    return AuditEvent.objects.create(
        actor=(f"{user.get_username()} (admin)" if user else str(actor))[:200],
        actor_user=user,
        action=action,
        target=_describe(target)[:200],
        details=_plain(details or {}),
    )


def _describe(target) -> str:
    meta = getattr(target, "_meta", None)
    return f"{meta.verbose_name} {target}" if meta is not None else str(target)


def changes(before: dict, after: dict) -> dict:
    """{field: [old, new]} for the fields that differ."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


# -- a member made staff, however it happens (admin, createsuperuser, a shell session)


def _staff_before(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw or (update_fields is not None and "is_staff" not in update_fields):
        instance._was_staff = True  # a login's last_login, a fixture: nothing to look at
        return
    if instance.pk is None:
        instance._was_staff = False
        return
    instance._was_staff = (
        sender.objects.filter(pk=instance.pk).values_list("is_staff", flat=True).first() or False
    )


def _staff_after(sender, instance, created, **kwargs) -> None:
    if instance.is_staff and not getattr(instance, "_was_staff", True):
        record(
            None,
            MADE_STAFF,
            instance,
            {"is_superuser": instance.is_superuser},
        )


def connect_signals() -> None:
    from django.db.models.signals import post_save, pre_save

    user_model = get_user_model()
    pre_save.connect(_staff_before, sender=user_model, dispatch_uid="audit-staff-before")
    post_save.connect(_staff_after, sender=user_model, dispatch_uid="audit-staff-after")

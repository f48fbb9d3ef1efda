"""/healthz: is this deployment able to do its work? For monitoring and the proxy.

Answers 200 when every part is well and 503 when one is not, with JSON that names each part
and says nothing an outsider could use (no host names, versions or error texts):

- database: a trivial query answers.
- cache: a value written to the cache reads back (Redis when REDIS_URL is set).
- cluster: some machine's task cluster beat within HEARTBEAT_STALE
  (generations/lifecycle/heartbeat.py; every worker beats every 10 s, so two minutes is a
  dozen missed beats, not a slow pass).
- queue: the age of the oldest job waiting in our queue, always reported. A long queue is
  normal under a burst (each key runs only its concurrency at once), so age alone is not a
  failure; the queue counts as stalled (503) only when its oldest job has waited longer
  than QUEUE_STALLED while nothing at all is in flight and a usable key exists: work is
  there, capacity is there, and nobody is dispatching.

Cheap by design: one query and one cache round trip per part, two more only when the queue
is old. Monitors may poll it every few seconds.
"""

import secrets
from datetime import timedelta

from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .lifecycle import heartbeat
from .models import IN_FLIGHT, LIVE, ApiKey, Generation, Status

HEARTBEAT_STALE = timedelta(minutes=2)
QUEUE_STALLED = timedelta(minutes=15)
# Rows the engine is carrying along (sent, or being sent): while any exists, it is working. A
# retrying job is not among them: it may wait for a key that never works again.
MOVING = (Status.SUBMITTING, *IN_FLIGHT)
# Jobs waiting for the engine to send them.
WAITING = (Status.QUEUED, Status.RETRYING)
# The due-work index covers exactly these rows (models.Generation.Meta.indexes); naming
# them in the filter lets SQLite and PostgreSQL use it instead of scanning finished rows.
UNFINISHED = LIVE


def _seconds(delta: timedelta) -> float:
    return round(max(delta.total_seconds(), 0.0), 1)


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return {"ok": False}
    return {"ok": True}


def _cache() -> dict:
    token = secrets.token_hex(8)
    try:
        cache.set("kling:healthz", token, 30)
        ok = cache.get("kling:healthz") == token
    except Exception:  # noqa: BLE001 (any backend error means the cache is not usable)
        ok = False
    return {"ok": ok}


def _cluster(now) -> dict:
    seen_at = heartbeat.latest()
    if seen_at is None:
        return {"ok": False, "heartbeat_age_seconds": None}
    age = now - seen_at
    return {"ok": age <= HEARTBEAT_STALE, "heartbeat_age_seconds": _seconds(age)}


def _queue(now) -> dict:
    oldest = (
        Generation.objects.filter(status__in=UNFINISHED)
        .filter(status__in=WAITING)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if oldest is None:
        return {"ok": True, "oldest_queued_age_seconds": None}
    age = now - oldest
    stalled = (
        age > QUEUE_STALLED
        and not Generation.objects.filter(status__in=MOVING).exists()
        and ApiKey.objects.usable().exists()
    )
    return {"ok": not stalled, "oldest_queued_age_seconds": _seconds(age)}


@login_not_required
@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    parts = {"database": _database(), "cache": _cache()}
    if parts["database"]["ok"]:
        try:
            parts["cluster"] = _cluster(now)
            parts["queue"] = _queue(now)
        except DatabaseError:  # went away between the two
            parts["database"] = {"ok": False}
    parts.setdefault("cluster", {"ok": False, "heartbeat_age_seconds": None})
    parts.setdefault("queue", {"ok": False, "oldest_queued_age_seconds": None})
    ok = all(part["ok"] for part in parts.values())
    return JsonResponse({"ok": ok, **parts}, status=200 if ok else 503)

"""The life of a generation: claim, submit, apply remote state, archive, sweep.

The database row is the source of truth; django-q2 only executes. A task may run twice (ORM
broker) or never (Redis broker), so every step:
- takes a primary key, never a model object or a secret;
- claims its row with a conditional UPDATE on the state it expects and goes on only if that
  UPDATE changed exactly one row (two workers racing for one row: one wins, one returns);
- leaves the row in a state from which the pump (`run_pump`) re-drives it if the worker dies.

States: queued → submitting → submitted → processing → succeeded | failed, and cancelled.
"""

import logging
import os
import random
import socket
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

from . import archive, budgets, heartbeat, keypool
from .cometapi import (
    CometAPIClient,
    CometAPIError,
    ContentRejected,
    KeyRejected,
    RateLimited,
    RemoteTask,
    RequestRejected,
    ResultExpired,
    TaskNotFound,
)
from .crypto import DecryptionError
from .models import IN_FLIGHT, ApiKey, Generation, Status, WorkerLease

log = logging.getLogger(__name__)

# Durations below are in seconds of real time and divided by settings.KLING_LIFECYCLE_SPEED
# (1 in production; the fault tests run a 20x simulator and shrink them alike).

# A submit claim outlives the client's usual worst case (a look-up then a create, each with
# 5 s connect and 30 s read timeouts); after it a crashed submit is re-driven. A submit that
# still overruns it is safe too: the re-drive looks up before creating, and a create with an
# external_task_id that exists is refused as a duplicate and adopted.
SUBMIT_LEASE = 150.0
# A download of the largest allowed clip on a slow link; equal to Q_CLUSTER's timeout, which
# kills a task that runs longer.
ARCHIVE_LEASE = 600.0
# Kling's long tail runs past 10 minutes; ComfyUI needed about 68. Past this a task is read
# once more and then called lost.
LOST_AFTER = 70 * 60.0
# When even that last read cannot reach CometAPI, keep trying this long before giving up.
LOST_GRACE = 15 * 60.0
# Kling may take a moment to list a new task; a task unknown this long after submit is gone.
NOT_FOUND_AFTER = 10 * 60.0
# A finished clip whose download keeps failing (CDN 5xx, network) is retried this long.
ARCHIVE_GIVE_UP = 24 * 3600.0
# An archive that broke on something unforeseen is tried again after this.
ARCHIVE_RETRY = 60.0
# Poll delays after submit when polling is how we learn of progress: quick at first (the
# simulator's clips take 12 s, Kling's 1-2 minutes with a long tail), then 8 s apart
# through the first five minutes, where nearly every task ends, so a finished task waits
# 4 s on average and at most 8 s for its read (the target is 10 s from Kling's end to a
# stored clip, p95; 10 s steps measured 10.05 s with 500 in flight); then backing off.
# Reads are free and Kling sets no QPS limit on them. The last value repeats.
POLL_SCHEDULE = (5,) * 6 + (8,) * 34 + (20,) * 15 + (30, 45, 60)
# With callbacks (SITE_URL set) Kling pushes every status change and reads only reconcile a
# lost push. The first read comes a minute after submit; Kling pushes "processing" within
# seconds, so a task with no push by then has pushes that don't reach us (a SITE_URL the
# internet can't see, a proxy in the way) and is polled on POLL_SCHEDULE instead. A push is
# only a hint: it makes us read the task at once (its confirming read), and that read puts
# the next one PUSH_QUIET away: nearly every task ends (and pushes its end) within five
# minutes, so a clip costs a confirming read per push, and a lost terminal push is noticed
# within five minutes of the task's last push; then reads come every minute or two.
RECONCILE_SCHEDULE = (60, 60, 60, 120)
PUSH_QUIET = 300.0
# A queued job waiting for a key or a slot looks again after this (a slot frees when a task
# ends; the pump also dispatches every pass).
WAIT_RECHECK = 5.0
# Backoff of retryable create errors: 1302/1303 (rate and concurrency) wait a little and
# never long, since a slot frees when any task ends; outages back off further.
RATE_LIMIT_BACKOFF = (2.0, 60.0)  # (base, cap)
OUTAGE_BACKOFF = (4.0, 300.0)
POLL_CONCURRENCY = 8  # parallel reads per pass: bounded so a backlog can't open 500 sockets
POLL_BATCH = 200  # rows read per pass
# The pump holds a lease it renews every pass; a pump that dies stops renewing and another
# takes over when it runs out (at once, when the dead holder was on this machine).
PUMP_LEASE = timedelta(seconds=30)
# Seconds a pump task runs before handing over to a fresh one: short, because a stopping
# cluster waits for its running tasks.
PUMP_RUN_FOR = 10.0
PUMP_IDLE_SLEEP = 0.5  # between passes that found nothing due: the poll/dispatch latency
PUMP_STANDBY_SLEEP = 2.0  # a pump thread without the lease looks again this often
# Work done per pass before the pump looks at everything else again, so a burst of 500 new
# jobs or finished clips can't hold up polling.
DISPATCH_PER_PASS = 50
ARCHIVE_BUDGET = 2.0  # seconds of inline archiving per pass

RANK = {"submitted": 1, "processing": 2, "succeed": 3, "failed": 3}
# Rows that hold (or may hold) a concurrency slot on their key upstream: being submitted, in
# flight and not yet seen finished, or back in our queue after a create whose outcome is
# unknown (the task may exist and run). Rows being archived don't: their task has ended.
HOLDS_SLOT = (
    Q(status__in=[Status.SUBMITTING, *IN_FLIGHT]) & ~Q(remote_status__in=["succeed", "failed"])
) | Q(status=Status.QUEUED, create_sent=True)


def now() -> datetime:
    return timezone.now()


# One line per lifecycle event, on its own logger so operators can route or silence it. It
# carries the generation's id and Kling's task id as fields too, which LOG_FORMAT=json
# prints as keys (kling_site/logs.py). Never a secret, a URL or a callback token.
events = logging.getLogger("generations.events")


def event(
    gen: Generation,
    name: str,
    detail: str = "",
    *,
    task_id: str = "",
    level: int = logging.INFO,
    **fields,
) -> None:
    task_id = task_id or gen.task_id
    extra = {"event": name, "generation": gen.pk, "task_id": task_id or None, **fields}
    events.log(
        level,
        "generation %s%s %s%s",
        gen.pk,
        f" (task {task_id})" if task_id else "",
        name,
        f": {detail}" if detail else "",
        extra=extra,
    )


def speed() -> float:
    return float(getattr(settings, "KLING_LIFECYCLE_SPEED", 1.0) or 1.0)


def scaled(seconds: float) -> timedelta:
    return timedelta(seconds=seconds / speed())


def backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with jitter, so retries of many jobs don't arrive together."""
    return min(cap, base * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)


def first_read_delay() -> timedelta:
    """From submit to the task's first read."""
    return scaled(RECONCILE_SCHEDULE[0] if settings.SITE_URL else POLL_SCHEDULE[0])


def next_read_delay(gen: Generation) -> timedelta:
    """From a read of `gen` now to its next one: reconciliation while its pushes reach us,
    polling otherwise (see RECONCILE_SCHEDULE)."""
    pushed = settings.SITE_URL and gen.last_push_at is not None
    if pushed and now() - gen.last_push_at < scaled(PUSH_QUIET):
        return scaled(PUSH_QUIET)  # the confirming read of a recent push: Kling pushes the rest
    schedule = RECONCILE_SCHEDULE if pushed else POLL_SCHEDULE
    return scaled(schedule[min(gen.poll_count, len(schedule) - 1)])


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


def callback_url(gen: Generation) -> str | None:
    if not settings.SITE_URL:
        return None
    # The token goes in the query, which our access logs redact (kling_site/logs.py).
    path = reverse("kling-callback", args=[gen.public_id])
    return f"{settings.SITE_URL}{path}?{urlencode({'token': gen.callback_token})}"


# ---------------------------------------------------------------------------------------
# Creating and queueing


def enqueue(func: str, *args) -> None:
    """Hand a step to the cluster once the current transaction has committed."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(f"generations.tasks.{func}", *args))


def create_generations(owner, jobs: list[dict]) -> list[Generation]:
    """Accept the jobs of one submit together, or none: budgets.admit raises
    budgets.LimitExceeded before anything is saved or sent upstream."""
    with transaction.atomic():
        prices = budgets.admit(owner, jobs)
        gens = [
            Generation.objects.create(owner=owner, price_usd=price, **params)
            for params, price in zip(jobs, prices, strict=True)
        ]
        for gen in gens:
            enqueue("submit_generation", gen.pk)
            event(gen, "queued", model=gen.model_name, owner=gen.owner_id)
    return gens


def create_generation(owner, **params) -> Generation:
    return create_generations(owner, [params])[0]


def cancel(gen: Generation) -> bool:
    """Stop a job. Queued: nothing was sent, nothing is charged. In flight: the charge stands
    upstream; we only stop tracking it."""
    if gen.status == Status.QUEUED:
        message = "Cancelled before it was sent; nothing was charged."
        expected = [Status.QUEUED]
    else:
        message = "Stopped tracking; CometAPI may still charge for this task."
        expected = list(IN_FLIGHT)
    changed = Generation.objects.filter(pk=gen.pk, status__in=expected).update(
        status=Status.CANCELLED, finished_at=now(), error_message=message, wait_reason=""
    )
    if changed:
        event(gen, "cancelled", f"was {gen.status}")
    return changed == 1


# ---------------------------------------------------------------------------------------
# Submit


def _busy_by_key(keys: Iterable[ApiKey], *, excluding: int | None = None) -> dict[int, int]:
    """Slots each key holds or may hold upstream (see HOLDS_SLOT), in one query."""
    rows = Generation.objects.filter(HOLDS_SLOT, api_key__in=list(keys))
    if excluding is not None:
        rows = rows.exclude(pk=excluding)
    return dict(rows.order_by().values_list("api_key").annotate(n=Count("id")))


def _pick_key(gen: Generation) -> tuple[ApiKey | None, str]:
    """A healthy key with a free concurrency slot, or None and why the job waits.

    Called inside the claim's transaction. The keys are locked first (FOR UPDATE on
    PostgreSQL; SQLite's IMMEDIATE transaction already serialises writers) and counted after,
    so the count sees every claim committed before ours: two workers can't both take a key's
    last slot. PostgreSQL refuses FOR UPDATE with GROUP BY, hence two queries. The job's own
    row is left out of the count: a job that may already hold a slot (a create whose answer
    was lost) must be able to look its task up even when its key is full.
    """
    usable = Q(is_active=True)
    if gen.create_sent and gen.api_key_id:
        # A disabled key still finishes what it may have started.
        usable |= Q(pk=gen.api_key_id)
    keys = list(ApiKey.objects.select_for_update().filter(usable, is_healthy=True).order_by("pk"))
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


def _claimable(t: datetime) -> Q:
    return Q(status=Status.QUEUED) | Q(status=Status.SUBMITTING, claimed_until__lt=t)


def claim_for_submit(gen_id: int) -> Generation | None:
    """Claim a queued row (or one whose submitting worker died) and bind it to a key with a
    free slot. Returns the claimed row, or None if someone else has it or it must wait."""
    t = now()
    with transaction.atomic():
        gen = Generation.objects.filter(_claimable(t), pk=gen_id).first()
        if gen is None:
            return None
        key, why = _pick_key(gen)
        # Conditional on the same claimable state: of two workers re-driving one expired
        # claim, only the first moves claimed_until, so the second updates nothing.
        same = Generation.objects.filter(_claimable(t), pk=gen.pk, status=gen.status)
        if key is None:
            same.update(
                status=Status.QUEUED,
                claimed_until=None,
                wait_reason=why,
                next_attempt_at=t + scaled(WAIT_RECHECK),
            )
            return None
        changed = same.update(
            status=Status.SUBMITTING,
            api_key=key,
            key_version=keypool.version_for_claim(gen, key),
            claimed_until=t + scaled(SUBMIT_LEASE),
            submit_attempts=F("submit_attempts") + 1,
            wait_reason="",
        )
        if changed != 1:
            return None
    gen.refresh_from_db()
    return gen


def submit(gen_id: int) -> None:
    gen = claim_for_submit(gen_id)
    if gen is None:
        return
    try:
        remote = _find_or_create(gen)
    except CometAPIError as exc:
        _submit_failed(gen, exc)
        return
    t = now()
    changed = Generation.objects.filter(pk=gen.pk, status=Status.SUBMITTING).update(
        status=Status.SUBMITTED,
        task_id=remote.task_id,
        submitted_at=t,
        claimed_until=None,
        next_attempt_at=t + first_read_delay(),
        error_code="",
        error_message="",
    )
    if changed:
        event(gen, "submitted", task_id=remote.task_id, key=gen.api_key_id)
        gen.refresh_from_db()
        apply_remote(gen, remote)


def _find_or_create(gen: Generation) -> RemoteTask:
    """The task for this row: found if an earlier attempt may have created it, else created.
    Never a second one: the create carries our external_task_id."""
    with client_for(key_of(gen), gen.key_version) as client:
        # An earlier attempt may have created the task and lost the answer: look first.
        found = client.find_by_external_id(gen.external_task_id) if gen.create_sent else None
        if found is not None:
            log.info("generation %s: adopted task %s found by its id", gen.pk, found.task_id)
            return found
        # Recorded before sending: if we crash mid-request, the next attempt looks first
        # instead of paying for a second task.
        Generation.objects.filter(pk=gen.pk).update(create_sent=True)
        params = gen.api_params()
        if url := callback_url(gen):
            params["callback_url"] = url
        try:
            return client.create_text2video(params)
        except RequestRejected as exc:
            if "external_task_id" not in exc.message:
                raise
            # Refused as a duplicate: it exists already, so adopt it.
            if (found := client.find_by_external_id(gen.external_task_id)) is None:
                raise
            return found


def _refused_outright(exc: CometAPIError) -> bool:
    """CometAPI answered a definite no (a 4xx): the request created nothing. A 5xx, timeout
    or dropped connection leaves the outcome unknown."""
    return exc.http_status is not None and 400 <= exc.http_status < 500


def _submit_failed(gen: Generation, exc: CometAPIError) -> None:
    t = now()
    base = Generation.objects.filter(pk=gen.pk, status=Status.SUBMITTING)
    # `gen` is the row as claimed: create_sent there means an earlier attempt may have made
    # the task under this key, so the job stays bound to it whatever happens now.
    nothing_created = not gen.create_sent and _refused_outright(exc)
    # A secret that couldn't be decrypted sent nothing either (key_secret marked the key).
    nothing_created = nothing_created or (not gen.create_sent and isinstance(exc, SecretUnreadable))
    release = (
        {"api_key": None, "key_version": None, "create_sent": False} if nothing_created else {}
    )
    if isinstance(exc, KeyRejected):
        mark_key_unhealthy(key_of(gen), exc)
        base.update(
            status=Status.QUEUED,
            claimed_until=None,
            next_attempt_at=t,
            wait_reason=(
                "Its API key was refused; trying another key"
                if nothing_created
                else "Its API key was refused; waiting for it (the task may already exist)"
            ),
            **release,
        )
    elif exc.retryable:
        base.update(
            status=Status.QUEUED,
            claimed_until=None,
            next_attempt_at=t + timedelta(seconds=_retry_delay(gen, exc)),
            wait_reason=f"CometAPI is busy ({exc.message[:80]}); retrying shortly",
            **release,
        )
        event(gen, "retrying", f"create will be retried: {exc}", level=logging.WARNING)
    else:
        base.update(
            status=Status.FAILED,
            claimed_until=None,
            finished_at=t,
            error_code=str(exc.code or exc.http_status or ""),
            error_message=member_message(exc),
        )
        event(gen, "failed", f"refused at create: {exc}", code=str(exc.code or ""))


def _retry_delay(gen: Generation, exc: CometAPIError) -> float:
    base, cap = RATE_LIMIT_BACKOFF if isinstance(exc, RateLimited) else OUTAGE_BACKOFF
    delay = backoff(max(0, gen.submit_attempts - 1), base=base, cap=cap) / speed()
    return max(delay, exc.retry_after or 0.0)


def member_message(exc: CometAPIError) -> str:
    """What a member reads on the card: plain words first, CometAPI's own after."""
    if isinstance(exc, ContentRejected):
        # CometAPI's own message only restates "policy"; its code is kept in error_code.
        return "the prompt was refused under the content policy; change the wording and try again."
    if isinstance(exc, ResultExpired):
        return "The finished clip expired at Kling before we could copy it."
    if isinstance(exc, RequestRejected):
        return f"CometAPI refused the request: {exc.message}"
    return f"CometAPI error: {exc.message}"


def mark_key_unhealthy(key: ApiKey | None, exc: CometAPIError) -> None:
    if key is None:
        return
    ApiKey.objects.filter(pk=key.pk, is_healthy=True).update(
        is_healthy=False, unhealthy_since=now()
    )
    ApiKey.objects.filter(pk=key.pk).update(last_error=str(exc)[:2000])
    log.error("API key %s marked unhealthy: %s", key.name, exc)


# ---------------------------------------------------------------------------------------
# Applying remote state (from polls and callbacks alike)


def push_received(gen: Generation, remote: RemoteTask) -> bool:
    """Kling pushed a status change to our callback: read the task ourselves, now.

    A push is unsigned and its URL may have leaked, so nothing it says is stored: not its
    status, not its `updated_at` (a forged far-future timestamp would otherwise make every
    real read look older and stall the job). It may only make the task due for our own
    read, and only when it claims more than our last read saw (a replayed "submitted" is
    not worth a read). It also records that pushes reach us (by our clock, not the body's),
    so later reads only reconcile (see next_read_delay). Returns True if a read was asked.
    """
    if remote.task_id and gen.task_id and remote.task_id != gen.task_id:
        log.warning("generation %s: pushed task %s is not ours", gen.pk, remote.task_id)
        return False
    t = now()
    live = Generation.objects.filter(pk=gen.pk, status__in=[Status.SUBMITTING, *IN_FLIGHT]).exclude(
        remote_status="succeed"
    )  # being archived: nothing left to learn
    if RANK.get(remote.status, 0) <= RANK.get(gen.remote_status, 0):
        live.update(last_push_at=t)
        return False
    changed = live.update(next_attempt_at=t, last_push_at=t)
    # The running pump's next pass reads it (no task to queue behind others); with no pump
    # running, a task does.
    if changed and not pump_is_running():
        enqueue("poll_generation", gen.pk)
    return bool(changed)


def apply_remote(gen: Generation, remote: RemoteTask) -> bool:
    """Move `gen` forward to what our own read of CometAPI says, never backwards.

    Only our own GETs (and the create's answer) come here; pushes go to push_received.
    Non-terminal states move forward by rank and by Kling's `updated_at`; a terminal state
    always wins over anything earlier, whatever timestamps were seen before. Returns True if
    the row changed. A `succeed` leaves the row processing with the result URL recorded and
    due for archiving; the caller archives it (or the pump does).
    """
    if remote.task_id and gen.task_id and remote.task_id != gen.task_id:
        log.warning("generation %s: remote task %s is not ours", gen.pk, remote.task_id)
        return False
    rank = RANK.get(remote.status)
    if rank is None:
        log.warning("generation %s: unknown remote status %r", gen.pk, remote.status)
        return False
    live = Generation.objects.filter(pk=gen.pk, status__in=[Status.SUBMITTING, *IN_FLIGHT]).exclude(
        remote_status="succeed"
    )  # being archived: nothing left to learn
    t = now()
    common = {"remote_status": remote.status, "remote_updated_at_ms": remote.updated_at_ms}
    if remote.task_id:
        common["task_id"] = remote.task_id
    if rank < 3:
        # Two reads racing (a poll pass and a poll task) may land out of order: the older
        # one changes nothing.
        if remote.updated_at_ms is not None:
            live = live.filter(
                Q(remote_updated_at_ms__isnull=True)
                | Q(remote_updated_at_ms__lte=remote.updated_at_ms)
            )
        live = live.exclude(remote_status__in=[s for s, r in RANK.items() if r > rank])
        status = Status.PROCESSING if remote.status == "processing" else Status.SUBMITTED
        # From SUBMITTING only the submit step moves a row on; a read racing it just
        # records what it saw.
        changed = (
            live.filter(status__in=IN_FLIGHT)
            .exclude(status=Status.PROCESSING, remote_status="processing")
            .update(status=status, **common)
        )
        if not changed:
            changed = live.filter(status=Status.SUBMITTING).update(**common)
        if changed and remote.status != gen.remote_status:
            event(gen, "status", remote.status, task_id=remote.task_id)
        return bool(changed)
    if remote.status == "failed":
        changed = live.update(
            status=Status.FAILED,
            finished_at=t,
            claimed_until=None,
            error_code="task_failed",
            error_message=remote.status_msg or "Kling reported that the generation failed.",
            units=remote.units,
            **common,
        )
        if changed:
            event(
                gen, "failed", remote.status_msg or "Kling reported a failure", code="task_failed"
            )
        return bool(changed)
    # succeed: copy the clip before the row says finished.
    changed = live.update(
        status=Status.PROCESSING,
        remote_video_url=remote.video_url,
        video_duration=remote.video_duration,
        units=remote.units,
        next_attempt_at=t,
        claimed_until=None,
        **common,
    )
    if changed:
        event(gen, "status", "succeed (storing the clip)", task_id=remote.task_id)
    return bool(changed)


# ---------------------------------------------------------------------------------------
# Polling


def poll(gen_id: int) -> None:
    """Read one in-flight task, apply what CometAPI says, and if it has finished, archive it
    here and now (the confirming read after a terminal callback: the fast path)."""
    gen = Generation.objects.filter(pk=gen_id).first()
    if gen is None or gen.status not in IN_FLIGHT:
        return
    if gen.remote_status != "succeed":
        _schedule_next_polls([gen])
        _apply_read(gen, _read(gen, _secret_or_error(key_of(gen), gen.key_version)))
    archive_result(gen_id)  # claims nothing unless the task succeeded


def _schedule_next_polls(gens: list[Generation]) -> None:
    # Pushed out before reading: a crash mid-read delays the row, it doesn't lose it. One
    # UPDATE per schedule step rather than per row.
    t = now()
    by_delay: dict[timedelta, list[int]] = {}
    for gen in gens:
        by_delay.setdefault(next_read_delay(gen), []).append(gen.pk)
    for delay, ids in by_delay.items():
        Generation.objects.filter(pk__in=ids).update(
            next_attempt_at=t + delay, poll_count=F("poll_count") + 1
        )


def _secret_or_error(key: ApiKey | None, version: int | None) -> str | SecretUnreadable:
    try:
        return key_secret(key, version)
    except SecretUnreadable as exc:
        return exc


def _read(gen: Generation, secret: str | SecretUnreadable) -> RemoteTask | CometAPIError:
    """The HTTP half of a poll: no database here (the secret is decrypted beforehand), so
    reads can run in threads."""
    if isinstance(secret, SecretUnreadable):
        return secret
    try:
        with CometAPIClient(secret, settings.COMETAPI_BASE_URL) as client:
            return client.get_task(gen.task_id)
    except CometAPIError as exc:
        return exc


def _apply_read(gen: Generation, result: RemoteTask | CometAPIError) -> None:
    age = now() - (gen.submitted_at or gen.created_at)
    lost = age > scaled(LOST_AFTER)
    if isinstance(result, RemoteTask):
        if result.status != gen.remote_status or result.is_terminal:
            apply_remote(gen, result)
        if lost and not result.is_terminal:
            _fail(gen, "lost", "No result from Kling after 70 minutes (lost upstream).")
        return
    if isinstance(result, TaskNotFound):
        # Kling may take a moment to list a new task; after minutes it is gone for good.
        if age > scaled(NOT_FOUND_AFTER):
            _fail(gen, "lost", "CometAPI no longer knows this task (lost upstream).")
        else:
            log.warning("generation %s: task not found yet: %s", gen.pk, result)
        return
    log.warning("generation %s: poll failed: %s", gen.pk, result)
    if isinstance(result, KeyRejected):
        # Only this key can read the task: the row waits for an admin to fix it, and the
        # lost rule below still ends it if that takes too long.
        mark_key_unhealthy(key_of(gen), result)
    elif not result.retryable:
        _fail(gen, str(result.code or result.http_status or ""), member_message(result))
        return
    if age > scaled(LOST_AFTER + LOST_GRACE):
        _fail(
            gen,
            "lost",
            f"No result from Kling after 70 minutes, and CometAPI could not be read "
            f"({result.message[:120]}) (lost upstream).",
        )


def _fail(gen: Generation, code: str, message: str) -> None:
    changed = Generation.objects.filter(
        pk=gen.pk, status__in=[Status.SUBMITTING, *IN_FLIGHT]
    ).update(
        status=Status.FAILED,
        finished_at=now(),
        claimed_until=None,
        error_code=code,
        error_message=message,
    )
    if changed:
        event(gen, "failed", message, code=code)


def poll_due(limit: int = POLL_BATCH) -> int:
    """One pass over the in-flight rows whose poll is due: reads run concurrently (bounded),
    database writes stay on this thread. Tasks found finished are handed to the workers for
    archiving (the pump archives some itself too)."""
    due = list(
        Generation.objects.filter(status__in=IN_FLIGHT)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now()))
        .exclude(remote_status="succeed")
        .order_by("next_attempt_at")[:limit]
    )
    if not due:
        return 0
    _schedule_next_polls(due)
    # Each secret (a key's current one, or a rotated-out one its old tasks still need) is
    # decrypted once per pass, here: one that can't be is marked unhealthy and only its own
    # rows see the error. The reads run in threads, which don't query.
    keys = ApiKey.objects.in_bulk({gen.api_key_id for gen in due if gen.api_key_id})
    secrets = {
        (pk, version): _secret_or_error(keys.get(pk), version)
        for pk, version in {(gen.api_key_id, gen.key_version) for gen in due if gen.api_key_id}
    }
    with ThreadPoolExecutor(max_workers=POLL_CONCURRENCY) as pool:
        results = list(
            pool.map(
                lambda gen: _read(gen, secrets.get((gen.api_key_id, gen.key_version), "")), due
            )
        )
    for gen, result in zip(due, results, strict=True):
        _apply_read(gen, result)
        if isinstance(result, RemoteTask) and result.status == "succeed":
            enqueue("archive_generation", gen.pk)
    return len(due)


# ---------------------------------------------------------------------------------------
# Archive


def archive_result(gen_id: int) -> bool:
    """Copy the finished clip into our storage, make a poster, then mark it succeeded.
    Returns False if there was nothing to claim (not finished, or another worker has it)."""
    t = now()
    claimed = Generation.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=t),
        pk=gen_id,
        status__in=IN_FLIGHT,
        remote_status="succeed",
    ).update(claimed_until=t + scaled(ARCHIVE_LEASE))
    if claimed != 1:
        return False
    try:
        _store_clip(Generation.objects.get(pk=gen_id))
    except Exception:
        # Anything unforeseen (the database busy past its timeout, a full disk): give the
        # claim back so the clip is tried again in a minute, not when the ten-minute lease
        # runs out. If the database itself is down, the lease still does it.
        with suppress(DatabaseError):
            Generation.objects.filter(pk=gen_id, status__in=IN_FLIGHT).update(
                claimed_until=None, next_attempt_at=now() + scaled(ARCHIVE_RETRY)
            )
        raise
    return True


def _store_clip(gen: Generation) -> None:
    """The claimed half of archive_result: download, poster, then the row says finished."""
    if not gen.remote_video_url:
        _fail(gen, "no_video", "Kling reported success but sent no video.")
        return
    with tempfile.TemporaryDirectory(prefix="kling-archive-") as tmp:
        video_path, poster_path = Path(tmp) / "clip.mp4", Path(tmp) / "poster.jpg"
        try:
            with download_client() as client, video_path.open("wb") as out:
                client.download(gen.remote_video_url, out, max_bytes=settings.KLING_MAX_VIDEO_BYTES)
            # The poster proves the file decodes. Kling states the clip's duration; only
            # without it is the file decoded end to end to measure it (a full decode is the
            # costliest step of an archive, and a burst of finished clips is CPU-bound).
            archive.extract_poster(video_path, poster_path)
            duration = gen.video_duration or archive.probe_duration(video_path)
        except CometAPIError as exc:
            _archive_failed(gen, exc)
            return
        except archive.ArchiveError as exc:
            _fail(gen, "download", f"The clip from Kling could not be read: {exc}")
            return
        name = f"{gen.public_id}"
        with video_path.open("rb") as v, poster_path.open("rb") as p:
            gen.video.save(f"{name}.mp4", File(v), save=False)
            gen.poster.save(f"{name}.jpg", File(p), save=False)
    changed = Generation.objects.filter(
        pk=gen.pk, status__in=IN_FLIGHT, remote_status="succeed"
    ).update(
        status=Status.SUCCEEDED,
        video=gen.video.name,
        poster=gen.poster.name,
        video_duration=duration or gen.video_duration,
        finished_at=now(),
        claimed_until=None,
    )
    if not changed:  # cancelled or finished meanwhile: don't leave orphan files
        gen.video.delete(save=False)
        gen.poster.delete(save=False)
    else:
        event(gen, "stored", f"{gen.video.name}, {duration or gen.video_duration or 0:.1f} s")


def _archive_failed(gen: Generation, exc: CometAPIError) -> None:
    """A download that failed: retried with backoff while it may work (the URL lives 30
    days), failed at once when the URL has expired or the file is refused (size, type)."""
    t = now()
    # Backoff grows with the time since the task finished upstream (no attempt counter is
    # needed): about a quarter of it, so retries come at roughly geometric intervals.
    finished_ms = gen.remote_updated_at_ms or int(t.timestamp() * 1000)
    since = max(0.0, t.timestamp() - finished_ms / 1000)
    if not exc.retryable or since > ARCHIVE_GIVE_UP / speed():
        _fail(gen, "download", member_message(exc))
        return
    delay = min(300.0, max(2.0, since / 4)) * random.uniform(0.5, 1.0) / speed()
    Generation.objects.filter(pk=gen.pk).update(
        claimed_until=None, next_attempt_at=t + timedelta(seconds=delay)
    )
    event(
        gen, "retrying", f"download will be retried in {delay:.0f} s: {exc}", level=logging.WARNING
    )


# ---------------------------------------------------------------------------------------
# The pump: one loop that re-drives every row whose next step is due


def fair_queue() -> QuerySet:
    """Queued jobs in the order they get slots: every member's oldest job first, then every
    member's second, and so on, so one member's batch of 50 can't starve another's single
    job. Backing-off jobs keep their place."""
    return (
        Generation.objects.filter(status=Status.QUEUED)
        .annotate(
            turn=Window(
                RowNumber(),
                partition_by=[F("owner_id")],
                order_by=[F("created_at").asc(), F("id").asc()],
            )
        )
        .order_by("turn", "created_at", "id")
    )


def queue_positions() -> dict[int, int]:
    """Position (1 = next) of every queued job: one query, for the cards."""
    return {pk: i for i, pk in enumerate(fair_queue().values_list("pk", flat=True), start=1)}


def free_slots() -> int:
    keys = list(ApiKey.objects.filter(is_active=True, is_healthy=True))
    busy = _busy_by_key(keys)
    return sum(max(0, k.concurrency_limit - busy.get(k.pk, 0)) for k in keys)


def dispatch(limit: int | None = None) -> int:
    """Submit due queued jobs, fairly, as far as the keys have free slots. Returns how many
    submits were tried."""
    t = now()
    # A submit whose worker died mid-request goes first: it may already be paid for.
    stale = list(
        Generation.objects.filter(status=Status.SUBMITTING, claimed_until__lt=t).values_list(
            "pk", flat=True
        )[: limit or 50]
    )
    for gen_id in stale:
        submit(gen_id)
    slots = free_slots()
    if limit is not None:
        slots = min(slots, limit)
    if slots <= 0:
        return len(stale)
    due = list(
        fair_queue()
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))
        .values_list("pk", flat=True)[:slots]
    )
    for gen_id in due:
        submit(gen_id)
    return len(stale) + len(due)


def _due_archives(t: datetime) -> Iterable[int]:
    return (
        Generation.objects.filter(status__in=IN_FLIGHT, remote_status="succeed")
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=t))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:50]
    )


def archive_due(budget: float = ARCHIVE_BUDGET) -> int:
    """Archive finished clips inline for up to `budget` seconds; archive tasks run the same
    rows on the other workers, and the claim keeps each row to one of them."""
    deadline = time.monotonic() + budget
    done = 0
    for gen_id in _due_archives(now()):
        if time.monotonic() > deadline:
            break
        done += archive_result(gen_id)
    return done


def has_unfinished_work() -> bool:
    return Generation.objects.filter(
        status__in=[Status.QUEUED, Status.SUBMITTING, *IN_FLIGHT]
    ).exists()


def pump_pass() -> int:
    """One pass over everything due. Returns how much it did (0: nothing was due).
    Reads first: a confirming read after a terminal callback is what members wait for."""
    done = poll_due()
    done += dispatch(limit=DISPATCH_PER_PASS)
    done += archive_due()
    return done


# -- the pump's lease: one pump at a time, replaced when it dies


def lease_holder() -> str:
    """Who holds a lease: this machine, process and thread, so a dead holder here is
    recognised and two pumps in one process (the thread and a scheduled task) don't mix."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:64]


def _is_dead_local(holder: str) -> bool:
    """True if `holder` was a process on this machine that no longer runs."""
    host, _, pid = holder.rsplit(":", 1)[0].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    return state in ("Z", "X")  # killed, not yet reaped by its parent


def take_lease(name: str, duration: timedelta) -> bool:
    t = now()
    lease, _ = WorkerLease.objects.get_or_create(
        name=name, defaults={"held_until": t - timedelta(seconds=1)}
    )
    me = lease_holder()
    free = Q(held_until__lt=t) | Q(holder=me)
    if lease.holder and _is_dead_local(lease.holder):
        # Its process is gone (a SIGKILLed cluster): no need to wait for the lease to end.
        free |= Q(holder=lease.holder)
    taken = WorkerLease.objects.filter(free, name=name).update(held_until=t + duration, holder=me)
    return taken == 1


def renew_lease(name: str, duration: timedelta) -> bool:
    """Extend a lease we hold; False if it ran out and another process took it."""
    return (
        WorkerLease.objects.filter(name=name, holder=lease_holder()).update(
            held_until=now() + duration
        )
        == 1
    )


def release_lease(name: str) -> None:
    WorkerLease.objects.filter(name=name, holder=lease_holder()).update(
        held_until=now() - timedelta(seconds=1)
    )


def pump_is_running() -> bool:
    return WorkerLease.objects.filter(name="pump", held_until__gte=now()).exists()


def run_pump(run_for: float = PUMP_RUN_FOR) -> bool:
    """Drive due work for up to `run_for` seconds, then hand over.

    One pump runs at a time (a lease renewed every pass, so a crashed one is replaced when
    it runs out). It sleeps between passes that found nothing due, never per generation.
    Returns True if work remains, so the caller enqueues the next pump; the one-minute
    schedule restarts the chain if it ever breaks.
    """
    if not take_lease("pump", PUMP_LEASE):
        return False
    deadline = time.monotonic() + run_for
    try:
        while time.monotonic() < deadline:
            did = pump_pass()
            if not renew_lease("pump", PUMP_LEASE):
                return False  # another pump took over
            if not did:
                if not has_unfinished_work():
                    break
                time.sleep(PUMP_IDLE_SLEEP)
    finally:
        release_lease("pump")
    # Checked after the release: a job committed while we were deciding to stop either is
    # seen here, or its submit task found the pump stopped and started one (see tasks.py).
    return has_unfinished_work()


def pump_forever(stop: threading.Event) -> None:
    """The pump as a background thread of every worker process (see signals.py); the lease
    makes one of them the pump and the others stand by, ready to take over when its process
    dies. A thread rather than a task because a task would queue behind every other task
    in the broker's FIFO at each hand-over, and would hold a worker while it sleeps; as a
    thread it drives polls and dispatch continuously while both workers run tasks.

    `stop` is set when the worker process ends: the thread finishes its pass, releases
    the lease and returns. A worker killed outright (SIGKILL, a task timeout) takes the
    thread with it mid-pass: a crash as far as the rows are concerned, which their leases
    recover.
    """
    while not stop.is_set():
        try:
            close_old_connections()
            heartbeat.beat()  # throttled; /healthz reports the newest
            if not take_lease("pump", PUMP_LEASE):
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

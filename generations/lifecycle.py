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
import random
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

from . import archive
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
from .models import IN_FLIGHT, ApiKey, Generation, Status, WorkerLease

log = logging.getLogger(__name__)

# A submit claim outlives the client's worst case (connect + write + read timeouts, twice for
# a look-up then a create); after it a crashed submit is re-driven.
SUBMIT_LEASE = timedelta(seconds=150)
# A download of the largest allowed clip on a slow link.
ARCHIVE_LEASE = timedelta(minutes=10)
# Kling's long tail runs past 10 minutes; ComfyUI needed about 68. Past this a task is read
# once more and then called lost.
LOST_AFTER = timedelta(minutes=70)
# Poll delays after submit, in seconds: quick at first (5 s clips take 1-2 minutes), then
# backing off; the last value repeats.
POLL_SCHEDULE = (5, 5, 5, 10, 10, 10, 15, 15, 20, 30, 30, 45, 60)
POLL_CONCURRENCY = 8  # parallel reads per pass: bounded so a backlog can't open 500 sockets
PUMP_LEASE = timedelta(seconds=60)  # > PUMP_RUN_FOR + one slow pass
# Seconds a pump task runs before handing over to a fresh one: short, because a stopping
# cluster waits for its running tasks.
PUMP_RUN_FOR = 10.0
PUMP_IDLE_SLEEP = 1.0  # between passes while work is in flight: the poll/dispatch latency

RANK = {"submitted": 1, "processing": 2, "succeed": 3, "failed": 3}


def now():
    return timezone.now()


def backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with jitter, so retries of many jobs don't arrive together."""
    return min(cap, base * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)


def poll_delay(poll_count: int) -> timedelta:
    return timedelta(seconds=POLL_SCHEDULE[min(poll_count, len(POLL_SCHEDULE) - 1)])


def client_for(key: ApiKey | None) -> CometAPIClient:
    return CometAPIClient(key.secret if key else "", settings.COMETAPI_BASE_URL)


def callback_url(gen: Generation) -> str | None:
    if not settings.SITE_URL:
        return None
    path = reverse("kling-callback", args=[gen.public_id, gen.callback_token])
    return settings.SITE_URL + path


# ---------------------------------------------------------------------------------------
# Creating and queueing


def enqueue(func: str, *args) -> None:
    """Hand a step to the cluster once the current transaction has committed."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(f"generations.tasks.{func}", *args))


def create_generation(owner, **params) -> Generation:
    with transaction.atomic():
        gen = Generation.objects.create(owner=owner, **params)
        enqueue("submit_generation", gen.pk)
    return gen


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
    return changed == 1


# ---------------------------------------------------------------------------------------
# Submit


def _pick_key(gen: Generation) -> tuple[ApiKey | None, str]:
    """A healthy key with a free concurrency slot, or None and why the job waits.

    Called inside the claim's transaction with the keys locked, so two workers can't both
    take a key's last slot.
    """
    # Lock the keys first (PostgreSQL refuses FOR UPDATE with GROUP BY), then count.
    keys = list(
        ApiKey.objects.select_for_update().filter(is_active=True, is_healthy=True).order_by("pk")
    )
    busy = dict(
        Generation.objects.filter(
            api_key__in=keys, status__in=[Status.SUBMITTING, *IN_FLIGHT]
        )
        .order_by()
        .values_list("api_key")
        .annotate(n=Count("id"))
    )
    for key in keys:
        key.busy = busy.get(key.pk, 0)
    keys.sort(key=lambda k: (k.busy, k.pk))
    if gen.create_sent and gen.api_key_id:
        # A create may already exist under this key's account: only this key can find it.
        keys = [k for k in keys if k.pk == gen.api_key_id]
        if not keys:
            return None, "Waiting for its API key to work again"
    if not keys:
        return None, "Waiting: no working CometAPI key (an admin needs to add or fix one)"
    for key in keys:
        if key.busy < key.concurrency_limit:
            return key, ""
    return None, "Waiting for a free slot on the team's CometAPI keys"


def claim_for_submit(gen_id: int) -> Generation | None:
    t = now()
    with transaction.atomic():
        gen = (
            Generation.objects.filter(pk=gen_id)
            .filter(
                Q(status=Status.QUEUED)
                | Q(status=Status.SUBMITTING, claimed_until__lt=t)  # its worker died
            )
            .first()
        )
        if gen is None:
            return None
        key, why = _pick_key(gen)
        if key is None:
            Generation.objects.filter(pk=gen.pk, status=gen.status).update(
                status=Status.QUEUED, wait_reason=why, next_attempt_at=t + timedelta(seconds=5)
            )
            return None
        changed = Generation.objects.filter(pk=gen.pk, status=gen.status).update(
            status=Status.SUBMITTING,
            api_key=key,
            claimed_until=t + SUBMIT_LEASE,
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
    key = gen.api_key
    try:
        with client_for(key) as client:
            remote = None
            if gen.create_sent:
                # An earlier attempt may have created the task and lost the answer.
                remote = client.find_by_external_id(gen.external_task_id)
            if remote is None:
                # Recorded before sending: if we crash mid-request, the next attempt looks
                # first instead of paying for a second task.
                Generation.objects.filter(pk=gen.pk).update(create_sent=True)
                params = gen.api_params()
                if url := callback_url(gen):
                    params["callback_url"] = url
                try:
                    remote = client.create_text2video(params)
                except RequestRejected as exc:
                    if "external_task_id" not in exc.message:
                        raise
                    # Refused as a duplicate: it exists already, so adopt it.
                    remote = client.find_by_external_id(gen.external_task_id)
                    if remote is None:
                        raise
    except CometAPIError as exc:
        _submit_failed(gen, exc)
        return
    t = now()
    changed = Generation.objects.filter(pk=gen.pk, status=Status.SUBMITTING).update(
        status=Status.SUBMITTED,
        task_id=remote.task_id,
        submitted_at=t,
        claimed_until=None,
        next_attempt_at=t + poll_delay(0),
        error_code="",
        error_message="",
    )
    if changed:
        log.info("generation %s submitted as task %s", gen.pk, remote.task_id)
        gen.refresh_from_db()
        apply_remote(gen, remote, confirmed=True)


def _submit_failed(gen: Generation, exc: CometAPIError) -> None:
    t = now()
    base = Generation.objects.filter(pk=gen.pk, status=Status.SUBMITTING)
    if isinstance(exc, KeyRejected):
        mark_key_unhealthy(gen.api_key, exc)
        # A refused key created nothing: the job may start afresh on another key.
        base.update(
            status=Status.QUEUED,
            api_key=None,
            create_sent=False,
            claimed_until=None,
            next_attempt_at=t,
            wait_reason="Its API key was refused; trying another key",
        )
    elif exc.retryable:
        delay = backoff(gen.submit_attempts, base=2.0 if isinstance(exc, RateLimited) else 4.0)
        base.update(
            status=Status.QUEUED,
            claimed_until=None,
            next_attempt_at=t + timedelta(seconds=delay),
            wait_reason=f"CometAPI is busy ({exc.message[:80]}); retrying shortly",
        )
        log.warning("generation %s: retryable create error: %s", gen.pk, exc)
    else:
        base.update(
            status=Status.FAILED,
            claimed_until=None,
            finished_at=t,
            error_code=str(exc.code or exc.http_status or ""),
            error_message=member_message(exc),
        )
        log.info("generation %s refused: %s", gen.pk, exc)


def member_message(exc: CometAPIError) -> str:
    """What a member reads on the card: plain words first, CometAPI's own after."""
    if isinstance(exc, ContentRejected):
        return (
            "CometAPI refused this prompt under its content policy. Change the wording and "
            f"try again. ({exc.message})"
        )
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


def apply_remote(gen: Generation, remote: RemoteTask, *, confirmed: bool) -> bool:
    """Move `gen` forward to what CometAPI says, never backwards.

    `confirmed` is True when `remote` came from our own GET; a callback (unsigned, possibly
    replayed or forged past the token) may advance a job but never finish it: a terminal
    callback asks for a confirming read instead. Returns True if the row changed.
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
    if remote.updated_at_ms is not None:
        live = live.filter(
            Q(remote_updated_at_ms__isnull=True) | Q(remote_updated_at_ms__lte=remote.updated_at_ms)
        )
    lower = [s for s, r in RANK.items() if r > rank]
    live = live.exclude(remote_status__in=lower)
    t = now()
    common = {"remote_status": remote.status, "remote_updated_at_ms": remote.updated_at_ms}
    if remote.task_id:
        common["task_id"] = remote.task_id
    if rank < 3:
        status = Status.PROCESSING if remote.status == "processing" else Status.SUBMITTED
        # From SUBMITTING only the submit step moves a row on; a callback racing it just
        # records what it saw.
        changed = (
            live.filter(status__in=IN_FLIGHT)
            .exclude(status=Status.PROCESSING, remote_status="processing")
            .update(status=status, **common)
        )
        if not changed:
            changed = live.filter(status=Status.SUBMITTING).update(**common)
        return bool(changed)
    if not confirmed:
        # Read it ourselves as soon as possible.
        changed = live.update(next_attempt_at=t)
        if changed:
            enqueue("poll_generation", gen.pk)
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
        enqueue("archive_generation", gen.pk)
    return bool(changed)


# ---------------------------------------------------------------------------------------
# Polling


def poll(gen_id: int) -> None:
    """Read one in-flight task and apply what CometAPI says."""
    gen = Generation.objects.select_related("api_key").filter(pk=gen_id).first()
    if gen is None or gen.status not in IN_FLIGHT or gen.remote_status == "succeed":
        return
    _schedule_next_poll(gen)
    _apply_read(gen, _read(gen))


def _schedule_next_poll(gen: Generation) -> None:
    # Pushed out before reading: a crash mid-read delays the row, it doesn't lose it.
    Generation.objects.filter(pk=gen.pk).update(
        next_attempt_at=now() + poll_delay(gen.poll_count), poll_count=F("poll_count") + 1
    )


def _read(gen: Generation) -> RemoteTask | CometAPIError:
    """The HTTP half of a poll: no database here, so reads can run in threads."""
    try:
        with client_for(gen.api_key) as client:
            return client.get_task(gen.task_id)
    except CometAPIError as exc:
        return exc


def _apply_read(gen: Generation, result: RemoteTask | CometAPIError) -> None:
    t = now()
    age = t - (gen.submitted_at or gen.created_at)
    lost = age > LOST_AFTER
    if isinstance(result, TaskNotFound):
        # Kling may take a moment to list a new task; after minutes it is gone for good.
        if age > timedelta(minutes=10):
            _fail(gen, "lost", "CometAPI no longer knows this task (lost upstream).")
        else:
            log.warning("generation %s: task not found yet: %s", gen.pk, result)
    elif isinstance(result, KeyRejected):
        mark_key_unhealthy(gen.api_key, result)
    elif isinstance(result, CometAPIError):
        log.warning("generation %s: poll failed: %s", gen.pk, result)
        if not result.retryable:
            _fail(gen, str(result.code or result.http_status or ""), member_message(result))
    else:
        apply_remote(gen, result, confirmed=True)
        if lost and not result.is_terminal:
            _fail(gen, "lost", "No result from Kling after 70 minutes (lost upstream).")


def _fail(gen: Generation, code: str, message: str) -> None:
    Generation.objects.filter(pk=gen.pk, status__in=[Status.SUBMITTING, *IN_FLIGHT]).update(
        status=Status.FAILED,
        finished_at=now(),
        claimed_until=None,
        error_code=code,
        error_message=message,
    )


def poll_due(limit: int = 200) -> int:
    """One pass over the in-flight rows whose poll is due: reads run concurrently (bounded),
    database writes stay on this thread."""
    due = list(
        Generation.objects.select_related("api_key")
        .filter(status__in=IN_FLIGHT, next_attempt_at__lte=now())
        .exclude(remote_status="succeed")
        .order_by("next_attempt_at")[:limit]
    )
    for gen in due:
        _schedule_next_poll(gen)
    with ThreadPoolExecutor(max_workers=POLL_CONCURRENCY) as pool:
        results = list(pool.map(_read, due))
    for gen, result in zip(due, results, strict=True):
        _apply_read(gen, result)
    return len(due)


# ---------------------------------------------------------------------------------------
# Archive


def archive_result(gen_id: int) -> None:
    """Copy the finished clip into our storage, make a poster, then mark it succeeded."""
    t = now()
    claimed = Generation.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=t),
        pk=gen_id,
        status__in=IN_FLIGHT,
        remote_status="succeed",
    ).update(claimed_until=t + ARCHIVE_LEASE)
    if claimed != 1:
        return
    gen = Generation.objects.select_related("api_key").get(pk=gen_id)
    with tempfile.TemporaryDirectory(prefix="kling-archive-") as tmp:
        video_path, poster_path = Path(tmp) / "clip.mp4", Path(tmp) / "poster.jpg"
        try:
            with client_for(gen.api_key) as client, video_path.open("wb") as out:
                client.download(gen.remote_video_url, out, max_bytes=settings.KLING_MAX_VIDEO_BYTES)
            duration = archive.probe_duration(video_path)
            archive.extract_poster(video_path, poster_path)
        except CometAPIError as exc:
            if exc.retryable:
                Generation.objects.filter(pk=gen.pk).update(
                    claimed_until=None,
                    next_attempt_at=t + timedelta(seconds=backoff(gen.poll_count)),
                )
                log.warning("generation %s: download will be retried: %s", gen.pk, exc)
            else:
                _fail(gen, "download", member_message(exc))
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
        log.info("generation %s finished and stored", gen.pk)


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
    keys = ApiKey.objects.filter(is_active=True, is_healthy=True).annotate(
        busy=Count("generation", filter=Q(generation__status__in=[Status.SUBMITTING, *IN_FLIGHT]))
    )
    return sum(max(0, k.concurrency_limit - k.busy) for k in keys)


def dispatch() -> int:
    """Submit due queued jobs, fairly, as far as the keys have free slots."""
    t = now()
    # A submit whose worker died mid-request goes first: it may already be paid for.
    for gen_id in Generation.objects.filter(
        status=Status.SUBMITTING, claimed_until__lt=t
    ).values_list("pk", flat=True)[:50]:
        submit(gen_id)
    slots = free_slots()
    if slots <= 0:
        return 0
    due = (
        fair_queue()
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))
        .values_list("pk", flat=True)[:slots]
    )
    for gen_id in due:
        submit(gen_id)
    return len(due)


def _due_archives(t) -> Iterable[int]:
    return (
        Generation.objects.filter(status__in=IN_FLIGHT, remote_status="succeed")
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=t))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))
        .values_list("pk", flat=True)[:50]
    )


def pump_pass() -> bool:
    """One pass. Returns True while any job is still unfinished."""
    t = now()
    dispatch()
    for gen_id in _due_archives(t):
        archive_result(gen_id)
    poll_due()
    return Generation.objects.filter(
        status__in=[Status.QUEUED, Status.SUBMITTING, *IN_FLIGHT]
    ).exists()


def take_lease(name: str, duration: timedelta) -> bool:
    t = now()
    WorkerLease.objects.get_or_create(name=name, defaults={"held_until": t - timedelta(1)})
    return (
        WorkerLease.objects.filter(name=name, held_until__lt=t).update(held_until=t + duration) == 1
    )


def release_lease(name: str) -> None:
    WorkerLease.objects.filter(name=name).update(held_until=now() - timedelta(seconds=1))


def run_pump(run_for: float = PUMP_RUN_FOR) -> bool:
    """Drive due work for up to `run_for` seconds, then hand over.

    One pump runs at a time (a lease, so a crashed one is replaced when it runs out). It
    sleeps between passes, not per generation. Returns True if work remains, so the caller
    enqueues the next pump; the one-minute schedule restarts the chain if it ever breaks.
    """
    if not take_lease("pump", PUMP_LEASE):
        return False
    deadline = time.monotonic() + run_for
    busy = True
    try:
        while busy and time.monotonic() < deadline:
            busy = pump_pass()
            if busy:
                time.sleep(PUMP_IDLE_SLEEP)
    finally:
        release_lease("pump")
    return busy

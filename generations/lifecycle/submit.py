"""Creating, queueing, cancelling and submitting a generation: the claim, the one create
(found again by external_task_id, never paid twice) and what a failed create means."""

import logging
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse

from ..governance import budgets, keypool
from ..kling import CometAPIError, KeyRejected, RateLimited, RemoteTask, RequestRejected
from ..models import CANCELLABLE, Generation, RemoteStatus, Status, ledger
from .base import (
    OUTAGE_BACKOFF,
    RATE_LIMIT_BACKOFF,
    WAIT_RECHECK,
    backoff,
    event,
    first_read_delay,
    member_message,
    now,
    scaled,
    speed,
)
from .claims import claim_fields, holding
from .keys import SecretUnreadable, client_for, key_of, mark_key_unhealthy, pick_key
from .remote import apply_remote

log = logging.getLogger(__name__)


def callback_url(gen: Generation) -> str | None:
    if not settings.SITE_URL:
        return None
    # The token goes in the query, which our access logs redact (kling_site/logs.py).
    path = reverse("kling-callback", args=[gen.public_id])
    return f"{settings.SITE_URL}{path}?{urlencode({'token': gen.callback_token})}"


def create_generations(owner, jobs: list[dict]) -> list[Generation]:
    """Accept the jobs of one submit together, or none: budgets.admit raises
    budgets.LimitExceeded before anything is saved or sent upstream."""
    with transaction.atomic():
        prices = budgets.admit(owner, jobs)
        gens = [
            Generation.objects.create(owner=owner, price_usd=price, **params)
            for params, price in zip(jobs, prices, strict=True)
        ]
        # Their charges, in the same transaction: what budgets count from now on.
        ledger.record_charges([ledger.row_of(gen) for gen in gens])
        # The pump dispatches them within a second (engine.py): no task to enqueue.
        for gen in gens:
            event(gen, "queued", model=gen.model_name, owner=gen.owner_id)
    return gens


def create_generation(owner, **params) -> Generation:
    return create_generations(owner, [params])[0]


def cancel(gen: Generation) -> bool:
    """Stop a job. Queued: nothing was sent, nothing is charged. Retrying or in flight: the
    task may exist upstream, so its charge stands; we only stop tracking it. Only from the
    state the member saw: a job that moved on meanwhile (sent, say) is not cancelled."""
    if gen.status not in CANCELLABLE:
        return False
    if gen.status == Status.QUEUED:
        message = "Cancelled before it was sent; nothing was charged."
    else:
        message = "Stopped tracking; CometAPI may still charge for this task."
    changed = Generation.objects.filter(pk=gen.pk).move(
        [gen.status],
        Status.CANCELLED,
        finished_at=now(),
        error_message=message,
        wait_reason="",
        claimed_until=None,
        claimed_by="",
    )
    if changed:
        event(gen, "cancelled", f"was {gen.status}")
    return changed == 1


def _claimable(t: datetime) -> Q:
    return Q(status__in=[Status.QUEUED, Status.RETRYING]) | Q(
        status=Status.SUBMITTING, claimed_until__lt=t
    )


def claim_for_submit(gen_id: int) -> Generation | None:
    """Claim a queued row (or one whose submitting worker died) and bind it to a key with a
    free slot. Returns the claimed row, or None if someone else has it or it must wait."""
    t = now()
    with transaction.atomic():
        gen = Generation.objects.filter(_claimable(t), pk=gen_id).first()
        if gen is None:
            return None
        key, why = pick_key(gen)
        # Conditional on the same claimable state: of two workers re-driving one expired
        # claim, only the first moves claimed_until, so the second updates nothing.
        same = Generation.objects.filter(_claimable(t), pk=gen.pk)
        if key is None:
            # Back to wait: a job whose create may have been sent waits as "retrying", bound
            # to its key; one that sent nothing waits in the queue.
            same.move(
                [gen.status],
                Status.RETRYING if gen.create_sent else Status.QUEUED,
                claimed_until=None,
                claimed_by="",
                wait_reason=why,
                next_attempt_at=t + scaled(WAIT_RECHECK),
            )
            return None
        changed = same.move(
            [gen.status],
            Status.SUBMITTING,
            api_key=key,
            key_version=keypool.version_for_claim(gen, key),
            **claim_fields(t),
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
        with holding(gen.pk):
            remote = _find_or_create(gen)
    except CometAPIError as exc:
        _submit_failed(gen, exc)
        return
    t = now()
    changed = Generation.objects.filter(pk=gen.pk).move(
        Status.SUBMITTING,
        Status.SUBMITTED,
        task_id=remote.task_id,
        # Recorded with the status, so a "submitted" push racing this UPDATE asks no read.
        remote_status=RemoteStatus.SUBMITTED,
        submitted_at=t,
        claimed_until=None,
        claimed_by="",
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
    base = Generation.objects.filter(pk=gen.pk)
    # `gen` is the row as claimed: create_sent there means an earlier attempt may have made
    # the task under this key, so the job stays bound to it whatever happens now.
    nothing_created = not gen.create_sent and _refused_outright(exc)
    # A secret that couldn't be decrypted sent nothing either (key_secret marked the key).
    nothing_created = nothing_created or (not gen.create_sent and isinstance(exc, SecretUnreadable))
    release = (
        {"api_key": None, "key_version": None, "create_sent": False} if nothing_created else {}
    )
    # Nothing created: back in the queue, free to take any key. Maybe created: retrying,
    # bound to this key, and the next attempt looks the task up before creating.
    again = Status.QUEUED if nothing_created else Status.RETRYING
    if isinstance(exc, KeyRejected):
        mark_key_unhealthy(key_of(gen), exc)
        base.move(
            Status.SUBMITTING,
            again,
            claimed_until=None,
            claimed_by="",
            next_attempt_at=t,
            wait_reason=(
                "Its API key was refused; trying another key"
                if nothing_created
                else "Its API key was refused; waiting for it (the task may already exist)"
            ),
            **release,
        )
    elif exc.retryable:
        base.move(
            Status.SUBMITTING,
            again,
            claimed_until=None,
            claimed_by="",
            next_attempt_at=t + timedelta(seconds=_retry_delay(gen, exc)),
            wait_reason=f"CometAPI is busy ({exc.message[:80]}); retrying shortly",
            **release,
        )
        event(gen, "retrying", f"create will be retried: {exc}", level=logging.WARNING)
    else:
        base.move(
            Status.SUBMITTING,
            Status.FAILED,
            claimed_until=None,
            claimed_by="",
            finished_at=t,
            error_code=str(exc.code or exc.http_status or ""),
            error_message=member_message(exc),
        )
        event(gen, "failed", f"refused at create: {exc}", code=str(exc.code or ""))


def _retry_delay(gen: Generation, exc: CometAPIError) -> float:
    base, cap = RATE_LIMIT_BACKOFF if isinstance(exc, RateLimited) else OUTAGE_BACKOFF
    delay = backoff(max(0, gen.submit_attempts - 1), base=base, cap=cap) / speed()
    return max(delay, exc.retry_after or 0.0)

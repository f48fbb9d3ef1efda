"""The pump: dispatch of queued jobs (fairly, within each key's slots) and reads of tasks in
flight. Every engine of the fleet runs it; claims on the rows keep two engines off one job
(a submit claims its row in claim_for_submit, reads in remote.poll_due)."""

import logging

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from ..models import Generation, Status
from .base import DISPATCH_PER_PASS, now
from .keys import free_slots
from .remote import poll_due
from .submit import submit

log = logging.getLogger(__name__)


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


def dispatch(limit: int | None = None) -> int:
    """Submit due queued jobs, fairly, as far as the keys have free slots. Returns how many
    submits were tried."""
    t = now()
    # A submit whose holder died mid-request goes first: it may already be paid for.
    stale = list(
        Generation.objects.filter(status=Status.SUBMITTING, claimed_until__lt=t).values_list(
            "pk", flat=True
        )[: limit or 50]
    )
    # Then jobs whose create may have reached CometAPI: each holds its key's slot already,
    # so none waits for a free one.
    retrying = list(
        Generation.objects.filter(status=Status.RETRYING)
        .due(t)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[: limit or 50]
    )
    for gen_id in stale + retrying:
        submit(gen_id)
    slots = free_slots()
    if limit is not None:
        slots = min(slots, limit)
    if slots <= 0:
        return len(stale) + len(retrying)
    due = list(fair_queue().due(t).values_list("pk", flat=True)[:slots])
    for gen_id in due:
        submit(gen_id)
    return len(stale) + len(retrying) + len(due)


def pump_pass() -> int:
    """One pass over what is due. Returns how much it did (0: nothing was due). Reads first:
    a confirming read after a terminal callback is what members wait for."""
    return poll_due() + dispatch(limit=DISPATCH_PER_PASS)

"""A generation's job states: ours (`Status`) and CometAPI's (`RemoteStatus`), and the one
table of how a job moves between ours.

Every state the engine acts on is a value of `Generation.status`, and `TRANSITIONS` is the
only list of moves: the engine makes them through `GenerationQuerySet.move`, which refuses a
move the table doesn't hold, and the sets the rest of the product reads (live, holds a key
slot, to submit, to read, to store, charged) are derived from `STATES` below. A claim (a
worker busy with a row, see lifecycle/claims.py) is not a state: it says who works on the
row, not where the job is.

    queued ──▶ submitting ──▶ submitted ──▶ processing ──▶ storing ──▶ succeeded
                 │    ▲           └────────────────────────▶ storing
                 ▼    │
               retrying        submitting ──▶ queued (nothing was created: try again)

    failed    ◀── submitting, submitted, processing, storing
    cancelled ◀── queued, retrying, submitted, processing
"""

from dataclasses import dataclass

from django.db import models


class Status(models.TextChoices):
    """Ours. The labels are what members read on cards, on the clip's page and in the State
    filter."""

    QUEUED = "queued", "Waiting in our queue"
    # A create may have reached CometAPI but its answer didn't reach us (a timeout, a 5xx, a
    # refused key): the next attempt looks the task up before creating, on the same key.
    RETRYING = "retrying", "Sending again"
    SUBMITTING = "submitting", "Submitting"
    SUBMITTED = "submitted", "Submitted"
    PROCESSING = "processing", "Generating"
    # Kling has finished; we are copying the clip into our storage and making its poster.
    STORING = "storing", "Saving the clip"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


@dataclass(frozen=True)
class State:
    """What one status means to the engine and to the money."""

    to: frozenset[str]  # the statuses a job may move to from here
    holds_slot: bool = False  # counts against its key's concurrency limit upstream
    engine_step: str = ""  # "submit", "read" or "store": what the engine does next
    charged: bool | None = True  # counts against budgets; None: only if a create was sent


S = Status
STATES: dict[str, State] = {
    S.QUEUED: State(
        to=frozenset({S.SUBMITTING, S.CANCELLED}),
        engine_step="submit",
    ),
    S.RETRYING: State(
        to=frozenset({S.SUBMITTING, S.CANCELLED}),
        holds_slot=True,  # the task may exist and run
        engine_step="submit",
    ),
    S.SUBMITTING: State(
        # Created (submitted); nothing created and worth another try (queued); maybe
        # created (retrying); refused outright (failed). A submit whose holder died is
        # driven again from submitting itself.
        to=frozenset({S.SUBMITTED, S.QUEUED, S.RETRYING, S.FAILED}),
        holds_slot=True,
        engine_step="submit",
    ),
    S.SUBMITTED: State(
        to=frozenset({S.PROCESSING, S.STORING, S.FAILED, S.CANCELLED}),
        holds_slot=True,
        engine_step="read",
    ),
    S.PROCESSING: State(
        to=frozenset({S.STORING, S.FAILED, S.CANCELLED}),
        holds_slot=True,
        engine_step="read",
    ),
    S.STORING: State(
        # Cancelling now would throw away a clip that is paid for and made: not offered.
        to=frozenset({S.SUCCEEDED, S.FAILED}),
        engine_step="store",
    ),
    S.SUCCEEDED: State(to=frozenset()),
    S.FAILED: State(to=frozenset(), charged=False),
    S.CANCELLED: State(to=frozenset(), charged=None),
}
del S

TRANSITIONS: dict[str, frozenset[str]] = {status: state.to for status, state in STATES.items()}


def _where(**flags) -> tuple[Status, ...]:
    return tuple(
        Status(s)
        for s, state in STATES.items()
        if all(getattr(state, k) == v for k, v in flags.items())
    )


# Derived from the table, in Status order.
TERMINAL = tuple(Status(s) for s, state in STATES.items() if not state.to)
LIVE = tuple(Status(s) for s, state in STATES.items() if state.to)  # a card keeps polling
HOLDS_SLOT = _where(holds_slot=True)
TO_SUBMIT = _where(engine_step="submit")  # queued, retrying, submitting (a dead holder's)
TO_READ = _where(engine_step="read")
TO_STORE = _where(engine_step="store")
# Sent upstream and not finished here: a task exists at Kling for these.
IN_FLIGHT = TO_READ + TO_STORE
ALWAYS_CHARGED = _where(charged=True)
CHARGED_IF_SENT = _where(charged=None)
# A member may cancel these (storing: the clip is made and paid for, so it is kept).
CANCELLABLE = tuple(Status(s) for s, state in STATES.items() if Status.CANCELLED in state.to)


class IllegalTransition(Exception):
    """Code asked for a move TRANSITIONS doesn't hold: a bug, never a member's doing."""


def is_charged(status: str, create_sent: bool) -> bool:
    """Whether a job in `status` counts against budgets (the table's `charged`; a cancelled
    job only if its create may have reached CometAPI). budgets.CHARGED is the same rule as a
    query."""
    charged = STATES[status].charged
    return create_sent if charged is None else charged


def check_move(sources, target: str) -> None:
    """Raise IllegalTransition unless every status in `sources` may move to `target`."""
    bad = [s for s in sources if s != target and target not in TRANSITIONS.get(s, ())]
    if bad:
        raise IllegalTransition(f"{', '.join(map(str, bad))} may not move to {target}")


class RemoteStatus(models.TextChoices):
    """A task's status as CometAPI/Kling spells it (`task_status`), which is not ours."""

    SUBMITTED = "submitted", "Submitted"
    PROCESSING = "processing", "Processing"
    SUCCEED = "succeed", "Succeeded"
    FAILED = "failed", "Failed"


REMOTE_TERMINAL = (RemoteStatus.SUCCEED, RemoteStatus.FAILED)

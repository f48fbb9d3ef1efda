"""The life of a generation: claim, submit, apply remote state, store, sweep.

The database row is the source of truth; django-q2 only executes. A task may run twice (ORM
broker) or never (Redis broker), so every step:
- takes a primary key, never a model object or a secret;
- claims its row with a conditional UPDATE on the state it expects and goes on only if that
  UPDATE changed exactly one row (two workers racing for one row: one wins, one returns);
- leaves the row in a state from which the pump (`run_pump`) re-drives it if the worker dies.

States: queued → submitting → submitted → processing → succeeded | failed, and cancelled.

One module per job: `base` (durations, clock, events), `keys` (which key, its client),
`submit` (create, queue, cancel, submit), `remote` (pushes, reads, applying remote state),
`store` (download and poster), `leases`, `pump` (dispatch and the loop). This package
re-exports what the rest of the app calls.
"""

from .base import (
    ARCHIVE_LEASE,
    ARCHIVE_RETRY,
    HOLDS_SLOT,
    POLL_SCHEDULE,
    PUSH_QUIET,
    RECONCILE_SCHEDULE,
    member_message,
    next_read_delay,
    now,
    scaled,
)
from .keys import client_for, free_slots, key_secret, pick_key
from .leases import pump_is_running, take_lease
from .pump import dispatch, fair_queue, pump_forever, pump_pass, queue_positions, run_pump
from .remote import apply_remote, poll, poll_due, push_received
from .store import archive_result
from .submit import callback_url, cancel, create_generation, create_generations, submit

__all__ = [
    "ARCHIVE_LEASE",
    "HOLDS_SLOT",
    "ARCHIVE_RETRY",
    "POLL_SCHEDULE",
    "PUSH_QUIET",
    "RECONCILE_SCHEDULE",
    "apply_remote",
    "archive_result",
    "callback_url",
    "cancel",
    "client_for",
    "create_generation",
    "create_generations",
    "dispatch",
    "fair_queue",
    "free_slots",
    "key_secret",
    "member_message",
    "next_read_delay",
    "now",
    "pick_key",
    "poll",
    "poll_due",
    "pump_forever",
    "pump_is_running",
    "pump_pass",
    "push_received",
    "queue_positions",
    "run_pump",
    "scaled",
    "submit",
    "take_lease",
]

"""The life of a generation: claim, submit, read remote state, store, and the engine that
drives them.

The database row is the source of truth. Every step:
- takes a primary key, never a model object or a secret;
- claims its row with a conditional UPDATE on the state it expects and goes on only if that
  UPDATE changed exactly one row (two workers racing for one row: one wins, one returns);
- holds its claim only while its process lives (a heartbeat renews it), so when a machine
  dies the engine of another resumes the step.

States: the table in models/states.py (queued, retrying, submitting, submitted, processing,
storing, then succeeded, failed or cancelled) and docs/architecture.md's drawing of it.

One module per job: `base` (durations, clock, events), `keys` (which key, its client),
`submit` (create, queue, cancel, submit), `remote` (pushes, reads, applying remote state),
`store` (download and poster), `claims` (the one kind of claim, and the process's one
heartbeat), `heartbeat` (the cluster's row /healthz reads), `pump` (dispatch and reads) and
`engine` (what every worker process runs). This package re-exports what the rest of the app
calls.
"""

from .base import (
    ARCHIVE_RETRY,
    CLAIM_TTL,
    POLL_SCHEDULE,
    PUSH_QUIET,
    RECONCILE_SCHEDULE,
    member_message,
    next_read_delay,
    now,
    scaled,
)
from .engine import run_engine
from .keys import client_for, free_slots, key_secret, pick_key
from .pump import dispatch, fair_queue, pump_pass
from .remote import apply_remote, poll_due, push_received
from .store import due_clips, store_clip
from .submit import callback_url, cancel, create_generation, create_generations, submit

__all__ = [
    "ARCHIVE_RETRY",
    "CLAIM_TTL",
    "POLL_SCHEDULE",
    "PUSH_QUIET",
    "RECONCILE_SCHEDULE",
    "apply_remote",
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
    "poll_due",
    "pump_pass",
    "push_received",
    "run_engine",
    "scaled",
    "store_clip",
    "due_clips",
    "submit",
]

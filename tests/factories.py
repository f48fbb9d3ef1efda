"""One way to make a generation row in tests: the defaults of the studio form (kling-v1,
std, 5 s, 16:9, cfg 0.5), any field overridden by keyword; and one way to drive it."""

from django.db.models import QuerySet

from generations import lifecycle
from generations.models import Generation, ledger
from generations.simulator.server import Simulator

DEFAULTS = {
    "prompt": "a cat",
    "model_name": "kling-v1",
    "mode": "std",
    "duration": "5",
    "aspect_ratio": "16:9",
    "cfg_scale": 0.5,
}


def make_generation(owner, **fields) -> Generation:
    """A row in any state, with the ledger entries the product would have written for a job
    in that state (its charge, its `sent`, its end)."""
    gen = Generation.objects.create(owner=owner, **(DEFAULTS | fields))
    ledger.record_history(gen)
    return gen


def store_finished() -> int:
    """Store every finished clip in this thread, one after another (the engine's store loop
    does it with threads). Returns how many were stored or tried."""
    return sum(lifecycle.store_clip(pk) for pk in lifecycle.due_clips(50))


def read_now(gen: Generation) -> None:
    """The engine's next pass for `gen`, now: its read, then its clip stored if finished."""
    Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
    lifecycle.poll_due()
    store_finished()
    gen.refresh_from_db()


def drive(gen: Generation, sim: Simulator, max_passes: int = 500) -> Generation:
    """Run the engine's steps (a pump pass with the row due, the finished clips stored) in
    this thread until the row is terminal, moving the simulator's clock a second between
    passes instead of waiting for it."""
    for _ in range(max_passes):
        Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
        lifecycle.pump_pass()
        store_finished()
        gen.refresh_from_db()
        if gen.is_terminal:
            return gen
        sim.advance(1.0)
    raise AssertionError(f"still {gen.status} after {max_passes} passes")


def put(rows, **fields) -> int:
    """Set fields of `rows` (a Generation queryset) as a test's starting point, status
    included, without the table of states: the product moves a status only through
    `GenerationQuerySet.move`, a test may start a row anywhere."""
    return QuerySet.update(rows, **fields)

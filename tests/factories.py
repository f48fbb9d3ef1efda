"""One way to make a generation row in tests: the defaults of the studio form (kling-v1,
std, 5 s, 16:9, cfg 0.5), any field overridden by keyword; and one way to drive it."""

import time

from django.db.models import QuerySet

from generations import lifecycle
from generations.models import Generation

DEFAULTS = {
    "prompt": "a cat",
    "model_name": "kling-v1",
    "mode": "std",
    "duration": "5",
    "aspect_ratio": "16:9",
    "cfg_scale": 0.5,
}


def make_generation(owner, **fields) -> Generation:
    return Generation.objects.create(owner=owner, **(DEFAULTS | fields))


def drive(gen: Generation, timeout: float = 10.0) -> Generation:
    """Run pump passes and store clips (as the engine would) until the row is terminal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
        lifecycle.pump_pass()
        lifecycle.store_due()
        gen.refresh_from_db()
        if gen.is_terminal:
            return gen
        time.sleep(0.1)
    raise AssertionError(f"still {gen.status} after {timeout} s")


def put(rows, **fields) -> int:
    """Set fields of `rows` (a Generation queryset) as a test's starting point, status
    included, without the table of states: the product moves a status only through
    `GenerationQuerySet.move`, a test may start a row anywhere."""
    return QuerySet.update(rows, **fields)

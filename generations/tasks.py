"""django-q2 entry points: thin, taking primary keys, delegating to lifecycle."""

from django_q.tasks import async_task

from . import lifecycle


def submit_generation(gen_id: int) -> None:
    """Enqueued when a member submits. It dispatches the fair queue rather than just this
    row, so a new job never jumps ahead of jobs already waiting for a slot."""
    lifecycle.dispatch()


def poll_generation(gen_id: int) -> None:
    lifecycle.poll(gen_id)


def archive_generation(gen_id: int) -> None:
    lifecycle.archive_result(gen_id)


def pump() -> None:
    """Run the pump; while work remains, hand over to a fresh pump task (a chain)."""
    if lifecycle.run_pump():
        async_task("generations.tasks.pump")

"""django-q2 entry points: thin, taking primary keys, delegating to lifecycle.

Each may run twice (ORM broker) or never (Redis broker): lifecycle's claims make a second
run a no-op, and the pump re-drives whatever a lost task left behind.
"""

from django_q.tasks import async_task

from . import keypool, lifecycle


def submit_generation(gen_id: int) -> None:
    """Enqueued when a member submits. It dispatches the fair queue rather than just this
    row, so a new job never jumps ahead of jobs already waiting for a slot. While a pump
    runs it dispatches within a second anyway, so this task stays out of its way (500 jobs
    submitted at once are 500 of these); otherwise it dispatches and starts the pump, which
    polls the job from then on."""
    if lifecycle.pump_is_running():
        return
    lifecycle.dispatch()
    start_pump()


def poll_generation(gen_id: int) -> None:
    lifecycle.poll(gen_id)


def archive_generation(gen_id: int) -> None:
    lifecycle.archive_result(gen_id)


def pump() -> None:
    """Run the pump; while work remains, hand over to a fresh pump task (a chain)."""
    if lifecycle.run_pump():
        start_pump()


def start_pump() -> None:
    async_task("generations.tasks.pump")


def probe_keys() -> None:
    """The five-minute schedule (migration 0008): unhealthy keys probed, and retired
    secrets forgotten once no job needs them."""
    keypool.probe_unhealthy_keys()

"""Start-up kick for the cluster.

django-q2's scheduler first runs about 30 s after a cluster starts and its finest interval
is a minute; jobs in flight when the cluster stopped (or was killed) should move at once, so
every worker that spawns makes sure the schedule exists and starts the pump. The pump's lease
keeps it single, and a lease left by a killed process on this machine is taken over at once
(see lifecycle.take_lease).
"""

import logging

from django.db import DatabaseError
from django.dispatch import receiver
from django_q.signals import post_spawn

log = logging.getLogger(__name__)

PUMP_SCHEDULE = "kling-pump"


def ensure_schedule() -> None:
    """The sweeper: a pump every minute restarts the chain if it ever breaks (a lost task,
    a crash). Idempotent: one named schedule, updated in place."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=PUMP_SCHEDULE,
        defaults={
            "func": "generations.tasks.pump",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


@receiver(post_spawn)
def kick_pump(sender, proc_name: str, **kwargs) -> None:
    from django_q.tasks import async_task

    try:
        ensure_schedule()
        async_task("generations.tasks.pump")
    except DatabaseError:  # not migrated yet: the schedule is made on the next spawn
        log.exception("could not start the pump")

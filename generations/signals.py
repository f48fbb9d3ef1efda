"""Start-up kick for the cluster.

django-q2's scheduler first runs about 30 s after a cluster starts and its finest interval
is a minute; jobs in flight when the cluster stopped should move at once, so every worker
that spawns makes sure the schedule exists and starts the pump (its lease keeps it single).
"""

import logging

from django.db import DatabaseError
from django.dispatch import receiver
from django_q.signals import post_spawn

log = logging.getLogger(__name__)


def ensure_schedule() -> None:
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="kling-pump",
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

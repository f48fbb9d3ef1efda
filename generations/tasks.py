"""django-q2 entry points: thin, taking primary keys, delegating.

The lifecycle itself needs no tasks: the engine runs in every worker process of the cluster
(generations/lifecycle/engine.py). What is left is scheduled upkeep.
"""

from .governance import keypool


def probe_keys() -> None:
    """The five-minute schedule (migration 0013): unhealthy keys probed, and retired
    secrets forgotten once no job needs them."""
    keypool.probe_unhealthy_keys()

"""Shared fixtures: personas, a private data directory, the simulator and the cluster.

Personas as in healthchecks: alice owns things, bob is a team member, charlie is staff.
"""

import os

import pytest

from generations.models import ApiKey
from generations.simulator.server import Simulator

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pass")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-pass")


@pytest.fixture
def charlie(django_user_model):
    return django_user_model.objects.create_user("charlie", password="charlie-pass", is_staff=True)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def clock():
    """The lifecycle's clock (lifecycle.base.clock), moved forward by a test instead of a
    sleep, and put back after it."""
    from generations.lifecycle.base import clock

    yield clock
    clock.reset()


@pytest.fixture
def simulator():
    """The bundled CometAPI simulator, fast, in this process."""
    with Simulator(speed=20.0, seed=7) as sim:
        yield sim


@pytest.fixture
def api_key(db):
    return ApiKey.objects.create(name="team", secret="sk-test-0123456789abcdef")


@pytest.fixture
def cometapi(settings, simulator, api_key):
    """Point the studio at the simulator, with one working key."""
    settings.COMETAPI_BASE_URL = simulator.base_url
    return simulator


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked `postgres` (or `redis`) need that server under this pass: they run in
    the Makefile's PostgreSQL and Redis passes (KLING_TEST_DATABASE_URL,
    KLING_TEST_REDIS_URL) and are deselected, not skipped, in the others; those passes
    fail when their server is down (pytest_sessionstart), so CI never passes without them."""
    needs = {"postgres": "KLING_TEST_DATABASE_URL", "redis": "KLING_TEST_REDIS_URL"}
    missing = {marker for marker, variable in needs.items() if not os.environ.get(variable)}
    if os.environ.get("KLING_TEST_DATABASE_URL"):
        missing.add("sqlite")  # about SQLite itself: it ran in the SQLite pass
    if not missing:
        return
    keep, drop = [], []
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        (drop if missing & marks else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionstart(session) -> None:
    """A pass asked to run on PostgreSQL or Redis fails loudly when the server is down:
    CI must never pass by skipping the service-backed tests."""
    from django.conf import settings

    if os.environ.get("KLING_TEST_DATABASE_URL"):
        import socket

        db = settings.DATABASES["default"]
        try:
            address = (db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
            socket.create_connection(address, timeout=3).close()
        except OSError as exc:
            pytest.exit(f"PostgreSQL pass: cannot connect ({exc})", returncode=3)
    if os.environ.get("KLING_TEST_REDIS_URL"):
        import redis

        try:
            # Tasks left by an earlier run must not run against this run's database.
            redis.Redis.from_url(settings.REDIS_URL).flushdb()
        except redis.RedisError as exc:
            pytest.exit(f"Redis pass: cannot connect ({exc})", returncode=3)

"""/healthz names each part (database, cache, cluster heartbeat, queue) and answers 503
when one is unwell; the engine's process keeps the heartbeat fresh."""

import threading
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from generations.lifecycle import claims, heartbeat
from generations.lifecycle.engine import run_engine
from generations.lifecycle.heartbeat import ClusterHeartbeat
from generations.models import Status

from .factories import make_generation
from .stack import wait_for

pytestmark = pytest.mark.django_db


def health(client):
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    return response.status_code, response.json()


def test_it_is_healthy_with_a_fresh_heartbeat_and_needs_no_login(client):
    heartbeat.record()
    status, body = health(client)
    assert status == 200
    assert body == {
        "ok": True,
        "database": {"ok": True},
        "cache": {"ok": True},
        "cluster": {"ok": True, "heartbeat_age_seconds": body["cluster"]["heartbeat_age_seconds"]},
        "queue": {"ok": True, "oldest_queued_age_seconds": None},
    }
    assert body["cluster"]["heartbeat_age_seconds"] < 5


def test_it_answers_head_for_load_balancers(client):
    heartbeat.record()
    assert client.head("/healthz").status_code == 200


def test_no_heartbeat_ever_is_unhealthy(client):
    status, body = health(client)
    assert status == 503 and body["ok"] is False
    assert body["cluster"] == {"ok": False, "heartbeat_age_seconds": None}
    assert body["database"]["ok"] and body["cache"]["ok"]


def test_a_stale_heartbeat_is_unhealthy(client):
    heartbeat.record()
    ClusterHeartbeat.objects.update(seen_at=timezone.now() - timedelta(minutes=3))
    status, body = health(client)
    assert status == 503
    assert body["cluster"]["ok"] is False and body["cluster"]["heartbeat_age_seconds"] >= 180


def test_it_leaks_no_host_or_process_details(client):
    heartbeat.record()
    row = ClusterHeartbeat.objects.get()
    text = client.get("/healthz").content.decode()
    assert row.host not in text and str(row.pid) not in text


def test_the_oldest_queued_job_is_reported_and_a_long_queue_alone_is_fine(client, alice, api_key):
    heartbeat.record()
    make_generation(alice, created_at=timezone.now() - timedelta(minutes=40))
    make_generation(alice, status=Status.PROCESSING)  # the dispatcher is working
    make_generation(alice)
    status, body = health(client)
    assert status == 200
    assert 40 * 60 <= body["queue"]["oldest_queued_age_seconds"] < 41 * 60


def test_an_old_queue_with_nothing_in_flight_and_a_usable_key_is_stalled(client, alice, api_key):
    heartbeat.record()
    make_generation(alice, created_at=timezone.now() - timedelta(minutes=20))
    status, body = health(client)
    assert status == 503
    assert body["queue"]["ok"] is False and body["queue"]["oldest_queued_age_seconds"] >= 1200


def test_an_old_retrying_job_with_nothing_in_flight_is_stalled_too(client, alice, api_key):
    """A job whose create may have been sent waits as "retrying": it is waiting all the same,
    and it doesn't count as the engine carrying something along."""
    heartbeat.record()
    make_generation(
        alice,
        status=Status.RETRYING,
        create_sent=True,
        api_key=api_key,
        created_at=timezone.now() - timedelta(minutes=20),
    )
    status, body = health(client)
    assert status == 503
    assert body["queue"]["ok"] is False and body["queue"]["oldest_queued_age_seconds"] >= 1200


def test_an_old_queue_without_any_usable_key_is_reported_not_failed(client, alice, api_key):
    """No key can take it: an admin's matter (admin shows the unhealthy key), not an outage."""
    heartbeat.record()
    api_key.is_healthy = False
    api_key.save()
    make_generation(alice, created_at=timezone.now() - timedelta(minutes=20))
    status, body = health(client)
    assert status == 200 and body["queue"]["oldest_queued_age_seconds"] >= 1200


def test_a_cache_that_does_not_answer_is_unhealthy(client):
    heartbeat.record()
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    with override_settings(CACHES=unreachable):
        status, body = health(client)
    assert status == 503 and body["cache"] == {"ok": False}


def test_only_a_process_that_runs_the_engine_beats_for_the_cluster():
    """The process's one heartbeat renews its claims everywhere (a web process, a command)
    but speaks for the cluster only where the engine runs, once per BEAT_EVERY."""
    keeper = claims.Keeper()  # not started: its beats are called here
    keeper.beat()
    assert not ClusterHeartbeat.objects.exists()
    keeper.serves_cluster = True
    keeper.beat()
    first = ClusterHeartbeat.objects.get().seen_at
    keeper.beat()  # within BEAT_EVERY: no second write
    assert ClusterHeartbeat.objects.get().seen_at == first


@pytest.mark.django_db(transaction=True)
def test_the_engine_beats():
    stop = threading.Event()
    engine = threading.Thread(target=run_engine, args=(stop,))
    engine.start()
    try:
        wait_for(ClusterHeartbeat.objects.exists, timeout=10, message="a heartbeat")
    finally:
        stop.set()
        engine.join(timeout=10)
        # This test process is no engine: later tests expect no heartbeat they didn't make.
        claims.keeper.serves_cluster = False
    assert heartbeat.latest() > timezone.now() - timedelta(seconds=10)

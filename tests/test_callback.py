"""The callback view: Kling's pushes, authenticated only by the token in the URL."""

import json

import pytest
from django.urls import reverse

from generations import lifecycle
from generations.models import Generation, Status
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_flight(cometapi, alice) -> Generation:
    gen = make_generation(alice, prompt="[slow] a heron takes off")
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED
    return gen


def push(client, gen: Generation, body, *, token: str | None = None):
    url = reverse("kling-callback", args=[gen.public_id, token or gen.callback_token])
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json")


def task(gen: Generation, status: str, updated_at: int, **extra) -> dict:
    return {
        "task_id": gen.task_id,
        "task_status": status,
        "task_status_msg": "",
        "task_info": {"external_task_id": gen.external_task_id},
        "task_result": {},
        "created_at": 1,
        "updated_at": updated_at,
        **extra,
    }


def test_a_push_moves_the_job_forward(client, in_flight):
    assert (
        push(client, in_flight, task(in_flight, "processing", 2_000_000_000_000)).status_code == 200
    )
    in_flight.refresh_from_db()
    assert in_flight.status == Status.PROCESSING


def test_an_enveloped_push_is_accepted(client, in_flight):
    body = {"code": 0, "message": "SUCCEED", "data": task(in_flight, "processing", 2 * 10**12)}
    assert push(client, in_flight, body).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Status.PROCESSING


def test_an_older_or_replayed_push_changes_nothing(client, in_flight):
    push(client, in_flight, task(in_flight, "processing", 2_000_000_000_000))
    for old in (task(in_flight, "submitted", 2_000_000_000_005), task(in_flight, "processing", 5)):
        assert push(client, in_flight, old).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Status.PROCESSING
    assert in_flight.remote_updated_at_ms == 2_000_000_000_000


@pytest.mark.parametrize("token", ["wrong-token", "ünïcode-tökén", "x" * 43])
def test_a_forged_push_is_refused(client, in_flight, token):
    response = push(client, in_flight, task(in_flight, "failed", 3 * 10**12), token=token)
    assert response.status_code == 404
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUBMITTED


def test_a_push_for_an_unknown_job_is_refused(client, in_flight):
    url = reverse("kling-callback", args=["00000000-0000-4000-8000-000000000000", "t"])
    assert client.post(url, data="{}", content_type="application/json").status_code == 404


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"task_status": "succeed"})])
def test_junk_is_refused_with_400(client, in_flight, body):
    assert push(client, in_flight, body).status_code == 400


def test_a_terminal_push_is_confirmed_by_a_read_before_it_counts(
    client, in_flight, django_capture_on_commit_callbacks
):
    """The token is right but the body lies: the task is still running upstream."""
    lie = task(in_flight, "failed", 3 * 10**12, task_status_msg="forged")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert push(client, in_flight, lie).status_code == 200
    assert len(callbacks) == 1  # the confirming read, enqueued at once
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUBMITTED
    lifecycle.poll(in_flight.pk)  # what that task does
    in_flight.refresh_from_db()
    assert in_flight.status in (Status.SUBMITTED, Status.PROCESSING)
    assert in_flight.error_message == ""


def test_a_push_after_the_end_changes_nothing(client, in_flight):
    Generation.objects.filter(pk=in_flight.pk).update(status=Status.SUCCEEDED)
    assert push(client, in_flight, task(in_flight, "failed", 9 * 10**12)).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUCCEEDED


def test_the_callback_needs_no_login_and_only_takes_post(client, in_flight):
    url = reverse("kling-callback", args=[in_flight.public_id, in_flight.callback_token])
    assert client.get(url).status_code == 405


# Reads with callbacks on: one confirming read per clip while pushes reach us, polling when
# they don't (lifecycle.RECONCILE_SCHEDULE).

UNREACHABLE_SITE = "http://127.0.0.1:9"  # the simulator's pushes to it are refused at once


def due_in(gen: Generation) -> float:
    gen.refresh_from_db()
    return (gen.next_attempt_at - lifecycle.now()).total_seconds()


def seconds(delay: float) -> float:
    return lifecycle.scaled(delay).total_seconds()


@pytest.fixture
def with_callbacks(settings, cometapi, alice) -> Generation:
    settings.SITE_URL = UNREACHABLE_SITE
    gen = make_generation(alice, prompt="[slow] a heron takes off")
    lifecycle.submit(gen.pk)
    first = seconds(lifecycle.RECONCILE_SCHEDULE[0])
    assert first - 2 < due_in(gen) <= first  # time for the first push to arrive
    return gen


def test_after_a_push_reads_wait_and_then_only_reconcile(client, with_callbacks):
    gen = with_callbacks
    push(client, gen, task(gen, "processing", 2 * 10**12))
    quiet = seconds(lifecycle.PUSH_QUIET)
    assert quiet - 2 < due_in(gen) <= quiet
    assert gen.last_push_at is not None
    lifecycle.poll(gen.pk)  # the task is still running when that read comes
    minute = seconds(lifecycle.RECONCILE_SCHEDULE[0])
    assert minute - 2 < due_in(gen) <= minute


def test_without_pushes_the_task_is_polled(with_callbacks):
    gen = with_callbacks
    lifecycle.poll(gen.pk)  # the first read, and no push has come
    step = seconds(lifecycle.POLL_SCHEDULE[0])
    assert step - 2 < due_in(gen) <= step
    assert gen.last_push_at is None


def test_a_terminal_push_asks_for_the_read_now(client, with_callbacks):
    gen = with_callbacks
    push(client, gen, task(gen, "succeed", 3 * 10**12))
    assert due_in(gen) <= 0

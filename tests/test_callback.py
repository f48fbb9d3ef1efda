"""The callback view: Kling's pushes, authenticated only by the token in the URL."""

import json

import pytest
from django.urls import reverse

from generations import lifecycle
from generations.models import Generation, Status
from tests.factories import drive, make_generation

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


def test_a_push_makes_us_read_the_task_and_stores_nothing_it_says(client, in_flight):
    body = task(in_flight, "processing", 2_000_000_000_000)
    assert push(client, in_flight, body).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUBMITTED  # moved only by our own read
    assert in_flight.remote_status == "submitted"
    assert in_flight.remote_updated_at_ms != 2_000_000_000_000
    assert in_flight.next_attempt_at <= lifecycle.now()


def test_an_enveloped_push_is_accepted(client, in_flight):
    body = {"code": 0, "message": "SUCCEED", "data": task(in_flight, "processing", 2 * 10**12)}
    assert push(client, in_flight, body).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.last_push_at is not None


def test_a_forged_far_future_push_cannot_stall_the_job(client, in_flight):
    """Issue 8, finding 1: a forged "processing" dated in the year 2286 used to be stored,
    after which every real read looked older and the job never ended."""
    forged = {"task_status": "processing", "updated_at": 9999999999999}
    push(client, in_flight, forged)
    assert push(client, in_flight, {"task_id": in_flight.task_id, **forged}).status_code == 200
    gen = drive(in_flight, timeout=20)
    assert gen.status == Status.SUCCEEDED, gen.error_message
    assert gen.video.name.endswith(".mp4") and gen.video.size > 1000
    assert gen.remote_updated_at_ms < 9999999999999


def test_our_own_terminal_read_wins_over_any_earlier_timestamp(cometapi, in_flight):
    """A row that already holds a far-future timestamp (stored by an older version from a
    forged push) still ends when our own read says the task ended."""
    Generation.objects.filter(pk=in_flight.pk).update(
        status=Status.PROCESSING, remote_status="processing", remote_updated_at_ms=9999999999999
    )
    gen = drive(in_flight, timeout=20)
    assert gen.status == Status.SUCCEEDED, gen.error_message


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
    assert in_flight.remote_updated_at_ms != 3 * 10**12


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
    assert due_in(gen) <= 0  # the push's confirming read, at once
    assert gen.last_push_at is not None
    lifecycle.poll(gen.pk)  # that read: the task is still running
    quiet = seconds(lifecycle.PUSH_QUIET)
    assert quiet - 2 < due_in(gen) <= quiet
    # Five quiet minutes later (no push since), reads reconcile every minute or two.
    Generation.objects.filter(pk=gen.pk).update(
        last_push_at=lifecycle.now() - lifecycle.scaled(lifecycle.PUSH_QUIET)
    )
    lifecycle.poll(gen.pk)
    minute = seconds(lifecycle.RECONCILE_SCHEDULE[-1])
    assert seconds(lifecycle.RECONCILE_SCHEDULE[0]) - 2 < due_in(gen) <= minute


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

"""The lifecycle against the bundled simulator (a real HTTP server), steps called directly."""

import time

import pytest

from generations import lifecycle
from generations.cometapi import RemoteTask
from generations.models import ApiKey, Generation, Status

pytestmark = pytest.mark.django_db


def queued(owner, prompt="a fox in the snow", **kw) -> Generation:
    params = {
        "model_name": "kling-v1",
        "mode": "std",
        "duration": "5",
        "aspect_ratio": "16:9",
        "cfg_scale": 0.5,
    }
    params.update(kw)
    return Generation.objects.create(owner=owner, prompt=prompt, **params)


def drive(gen: Generation, timeout: float = 10.0) -> Generation:
    """Run pump passes (as the cluster would) until the row is terminal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
        lifecycle.pump_pass()
        gen.refresh_from_db()
        if gen.is_terminal:
            return gen
        time.sleep(0.1)
    raise AssertionError(f"still {gen.status} after {timeout} s")


def test_it_submits_polls_and_stores_the_clip(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED and gen.task_id
    assert cometapi.create_count(gen.external_task_id) == 1

    gen = drive(gen)
    assert gen.status == Status.SUCCEEDED, gen.error_message
    assert gen.video.name.endswith(".mp4") and gen.video.size > 1000
    assert gen.poster.name.endswith(".jpg") and gen.poster.size > 100
    assert gen.video_duration and gen.video_duration > 0.5
    assert gen.units is not None
    assert gen.finished_at is not None


def test_a_second_submit_of_one_row_creates_nothing(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    lifecycle.submit(gen.pk)  # a redelivered task: the claim fails, nothing is sent
    assert cometapi.create_count(gen.external_task_id) == 1


def test_a_lost_create_answer_is_found_not_paid_twice(cometapi, alice):
    gen = queued(alice)
    cometapi.set_faults(lost_create=1.0)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED and gen.create_sent
    cometapi.set_faults(lost_create=0.0)
    Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED and gen.task_id
    assert cometapi.create_count(gen.external_task_id) == 1


def test_a_policy_refusal_fails_with_a_clear_message(cometapi, alice):
    gen = queued(alice, prompt="[policy] something refused")
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.FAILED
    assert gen.error_code == "1301"
    assert "content policy" in gen.error_message


def test_a_failed_task_keeps_klings_reason(cometapi, alice):
    gen = queued(alice, prompt="[fail] a fox")
    lifecycle.submit(gen.pk)
    gen = drive(gen)
    assert gen.status == Status.FAILED
    assert "moderation" in gen.error_message


def test_an_expired_result_url_fails_with_that_reason(cometapi, alice):
    gen = queued(alice, prompt="[expire] a fox")
    lifecycle.submit(gen.pk)
    gen = drive(gen)
    assert gen.status == Status.FAILED
    assert "expired" in gen.error_message


def test_a_refused_key_is_marked_and_the_job_moves_to_another(cometapi, alice, api_key):
    bad = ApiKey.objects.create(name="expired", secret="sk-expired-0123456789")
    ApiKey.objects.filter(pk=api_key.pk).update(is_active=False)
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    bad.refresh_from_db()
    gen.refresh_from_db()
    assert not bad.is_healthy and bad.unhealthy_since is not None
    assert "1004" in bad.last_error and "sk-expired" not in bad.last_error
    assert gen.status == Status.QUEUED and gen.api_key is None

    ApiKey.objects.filter(pk=api_key.pk).update(is_active=True)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED and gen.api_key_id == api_key.pk
    assert cometapi.create_count(gen.external_task_id) == 1


def test_with_no_key_jobs_wait_and_say_why(cometapi, alice, api_key):
    ApiKey.objects.update(is_active=False)
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED
    assert "no working CometAPI key" in gen.wait_reason
    assert cometapi.create_count() == 0


def test_remote_state_never_moves_backwards(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()

    def remote(status, updated):
        return RemoteTask(
            task_id=gen.task_id,
            status=status,
            status_msg="",
            external_task_id=gen.external_task_id,
            video_url="",
            video_duration=None,
            units=None,
            created_at_ms=1,
            updated_at_ms=updated,
            raw={},
        )

    lifecycle.apply_remote(gen, remote("processing", 2_000_000_000_000), confirmed=True)
    gen.refresh_from_db()
    assert gen.status == Status.PROCESSING
    # An older or lower state (a replayed or reordered callback) changes nothing.
    assert not lifecycle.apply_remote(gen, remote("submitted", 2_000_000_000_001), confirmed=False)
    assert not lifecycle.apply_remote(gen, remote("processing", 1_000), confirmed=False)
    gen.refresh_from_db()
    assert gen.status == Status.PROCESSING


def test_an_unconfirmed_terminal_state_does_not_finish_a_job(
    cometapi, alice, django_capture_on_commit_callbacks
):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    forged = RemoteTask(
        task_id=gen.task_id,
        status="failed",
        status_msg="forged",
        external_task_id="",
        video_url="",
        video_duration=None,
        units=None,
        created_at_ms=None,
        updated_at_ms=None,
        raw={},
    )
    with django_capture_on_commit_callbacks() as callbacks:
        lifecycle.apply_remote(gen, forged, confirmed=False)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED  # only our own read may end it
    assert len(callbacks) == 1  # ...which is enqueued at once


def test_cancel_in_flight_says_the_charge_stands(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert lifecycle.cancel(gen)
    gen.refresh_from_db()
    assert gen.status == Status.CANCELLED and "may still charge" in gen.error_message

"""The lifecycle against the bundled simulator (a real HTTP server), steps called directly."""

import pytest

from generations import lifecycle
from generations.kling import CometAPIClient, RemoteTask
from generations.lifecycle import archive, engine
from generations.models import ApiKey, Generation, Status
from tests.factories import drive, make_generation, put, read_now, store_finished

pytestmark = pytest.mark.django_db


def queued(owner, prompt="a fox in the snow", **kw) -> Generation:
    return make_generation(owner, prompt=prompt, **kw)


def test_it_submits_polls_and_stores_the_clip(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED and gen.task_id
    assert cometapi.create_count(gen.external_task_id) == 1

    gen = drive(gen, cometapi)
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
    assert gen.status == Status.RETRYING and gen.create_sent
    cometapi.set_faults(lost_create=0.0)
    Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    # The adopted task may have moved on meanwhile (the simulator runs 20x).
    assert gen.status in (Status.SUBMITTED, Status.PROCESSING) and gen.task_id
    assert cometapi.create_count(gen.external_task_id) == 1


def test_a_policy_refusal_fails_with_a_clear_message(cometapi, alice):
    gen = queued(alice, prompt="[policy] something refused")
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.FAILED
    assert gen.error_code == "1301"
    assert "content policy" in gen.error_message
    assert gen.error_message.count("policy") == 1  # said once, not three times


def test_a_failed_task_keeps_klings_reason(cometapi, alice):
    gen = queued(alice, prompt="[fail] a fox")
    lifecycle.submit(gen.pk)
    gen = drive(gen, cometapi)
    assert gen.status == Status.FAILED
    assert "moderation" in gen.error_message


def test_an_expired_result_url_fails_with_that_reason(cometapi, alice):
    gen = queued(alice, prompt="[expire] a fox")
    lifecycle.submit(gen.pk)
    gen = drive(gen, cometapi)
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
            updated_at_ms=updated,
        )

    lifecycle.apply_remote(gen, remote("processing", 2_000_000_000_000))
    gen.refresh_from_db()
    assert gen.status == Status.PROCESSING
    # An older or lower state (two reads landing out of order) changes nothing.
    assert not lifecycle.apply_remote(gen, remote("submitted", 2_000_000_000_001))
    assert not lifecycle.apply_remote(gen, remote("processing", 1_000))
    gen.refresh_from_db()
    assert gen.status == Status.PROCESSING


def test_an_unconfirmed_terminal_state_does_not_finish_a_job(cometapi, alice):
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
        updated_at_ms=None,
    )
    assert lifecycle.push_received(gen, forged)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED  # only our own read may end it...
    assert gen.next_attempt_at <= lifecycle.now()  # ...which the pump's next pass makes


def test_cancel_in_flight_says_the_charge_stands(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert lifecycle.cancel(gen)
    gen.refresh_from_db()
    assert gen.status == Status.CANCELLED and "may still charge" in gen.error_message


# -- slots, fairness and the lost rule


def test_one_members_batch_does_not_starve_anothers_single_job(cometapi, alice, bob, api_key):
    ApiKey.objects.filter(pk=api_key.pk).update(concurrency_limit=2)
    batch = [queued(alice, prompt=f"[slow] batch {i}") for i in range(50)]
    single = queued(bob, prompt="[slow] just one")
    order = lifecycle.fair_queue().values_list("pk", flat=True)
    positions = {pk: place for place, pk in enumerate(order, start=1)}
    assert positions[batch[0].pk] == 1 and positions[single.pk] == 2
    assert positions[batch[1].pk] == 3

    lifecycle.dispatch()
    single.refresh_from_db()
    assert single.status == Status.SUBMITTED  # in the first two, not the 51st
    assert Generation.objects.exclude(status=Status.QUEUED).count() == 2
    assert cometapi.create_count() == 2


def test_finished_tasks_free_their_slot_and_unknown_creates_hold_one(cometapi, alice, api_key):
    ApiKey.objects.filter(pk=api_key.pk).update(concurrency_limit=2)
    archiving = queued(alice)
    put(
        Generation.objects.filter(pk=archiving.pk),
        status=Status.STORING,
        api_key=api_key,
        remote_status="succeed",
    )
    lost_answer = queued(alice)  # a create whose answer was lost: the task may be running
    put(
        Generation.objects.filter(pk=lost_answer.pk),
        status=Status.RETRYING,
        api_key=api_key,
        create_sent=True,
    )
    assert lifecycle.free_slots() == 1

    fresh = queued(alice)
    lifecycle.submit(fresh.pk)
    fresh.refresh_from_db()
    assert fresh.status == Status.SUBMITTED
    # The key is full now, yet the lost create may still look its task up.
    assert lifecycle.free_slots() == 0
    Generation.objects.filter(pk=lost_answer.pk).update(next_attempt_at=None)
    lifecycle.submit(lost_answer.pk)
    lost_answer.refresh_from_db()
    assert lost_answer.status == Status.SUBMITTED
    assert cometapi.create_count(lost_answer.external_task_id) == 1


def test_a_refused_key_keeps_a_job_whose_task_may_exist(cometapi, alice, api_key):
    gen = queued(alice)
    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.RETRYING,
        api_key=api_key,
        create_sent=True,
    )
    ApiKey.objects.filter(pk=api_key.pk).update(secret="sk-arrears-0123456789")
    ApiKey.objects.create(name="spare", secret="sk-spare-0123456789abcdef")
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    # Moving it to the spare key could pay for a second task: it waits for its own key.
    assert gen.status == Status.RETRYING and gen.api_key_id == api_key.pk and gen.create_sent
    assert "may already exist" in gen.wait_reason
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.RETRYING and "work again" in gen.wait_reason
    assert cometapi.create_count() == 0


def test_1303_backs_off_and_the_job_may_move_to_another_key(cometapi, alice, api_key):
    cometapi.set_faults(concurrency=1)
    first, second = queued(alice, prompt="[slow] one"), queued(alice, prompt="[slow] two")
    lifecycle.submit(first.pk)
    lifecycle.submit(second.pk)  # our limit (5) allows it; the account's (1) does not
    second.refresh_from_db()
    assert second.status == Status.QUEUED and "busy" in second.wait_reason
    assert second.next_attempt_at > lifecycle.now()
    # A 1303 created nothing, so the job is free to take any key.
    assert second.api_key_id is None and not second.create_sent


def _in_flight_since(gen: Generation, minutes: float) -> None:
    from datetime import timedelta

    Generation.objects.filter(pk=gen.pk).update(
        submitted_at=lifecycle.now() - timedelta(minutes=minutes), next_attempt_at=lifecycle.now()
    )


def test_a_task_without_an_end_after_70_minutes_is_read_then_failed_as_lost(cometapi, alice):
    gen = queued(alice, prompt="[never] stays processing")
    lifecycle.submit(gen.pk)
    _in_flight_since(gen, 71)
    reads = cometapi.state()["requests"]["read"]
    lifecycle.poll_due()
    gen.refresh_from_db()
    assert cometapi.state()["requests"]["read"] == reads + 1  # read once more
    assert gen.status == Status.FAILED and "lost upstream" in gen.error_message


def test_a_task_that_ends_on_its_last_read_is_not_lost(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    cometapi.advance(15)  # past the simulator's 12 s clip
    assert cometapi.tasks()[0]["task_status"] == "succeed"
    _in_flight_since(gen, 71)
    read_now(gen)
    assert gen.status == Status.SUCCEEDED


def test_an_unreadable_task_is_lost_only_after_the_grace(cometapi, alice):
    gen = queued(alice, prompt="[never] stays processing")
    lifecycle.submit(gen.pk)
    cometapi.set_faults(unreachable=True)
    _in_flight_since(gen, 75)
    lifecycle.poll_due()
    gen.refresh_from_db()
    assert gen.status in (Status.SUBMITTED, Status.PROCESSING)  # still trying
    _in_flight_since(gen, 86)
    lifecycle.poll_due()
    gen.refresh_from_db()
    assert gen.status == Status.FAILED and "lost upstream" in gen.error_message


def test_a_failed_download_is_retried_later(cometapi, alice):
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    cometapi.set_faults(unreachable=True)
    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.STORING,
        remote_status="succeed",
        remote_video_url=cometapi.base_url + f"/media/{gen.task_id}.mp4",
    )
    assert lifecycle.store_clip(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.STORING and gen.claimed_until is None
    assert gen.next_attempt_at > lifecycle.now()


def test_an_archive_that_breaks_unexpectedly_gives_its_claim_back(cometapi, alice, monkeypatch):
    """Not held for the ten-minute lease: tried again a minute later."""
    gen = queued(alice)
    lifecycle.submit(gen.pk)
    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.STORING,
        remote_status="succeed",
        remote_video_url="https://x/c.mp4",
    )

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive, "extract_poster", disk_full)
    monkeypatch.setattr(CometAPIClient, "download", lambda *a, **k: None)
    with pytest.raises(OSError):
        lifecycle.store_clip(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.STORING and gen.claimed_until is None
    wait = (gen.next_attempt_at - lifecycle.now()).total_seconds()
    assert 0 < wait <= lifecycle.scaled(lifecycle.ARCHIVE_RETRY).total_seconds()


# -- the engine: leases, claims and their heartbeat


def test_a_claimed_row_is_not_claimed_again_until_released(cometapi, alice):
    """Every engine reads: what one claimed, another passes over."""
    from generations.lifecycle import claims

    gens = [queued(alice, prompt=f"[slow] {i}") for i in range(3)]
    for gen in gens:
        lifecycle.submit(gen.pk)
    Generation.objects.update(next_attempt_at=lifecycle.now())
    to_read = Generation.objects.to_read()

    def claim(limit: int) -> list[int]:
        return [gen.pk for gen in claims.claim_due(to_read, limit)]

    first = claim(2)
    assert len(first) == 2
    second = claim(10)
    assert second == [gen.pk for gen in gens if gen.pk not in first]
    assert claim(10) == []
    claims.release(to_read, first)
    assert sorted(claim(10)) == sorted(first)


@pytest.mark.django_db(transaction=True)
def test_engines_claiming_at_once_share_the_rows_without_overlap(alice, api_key):
    """Eight threads (engines) claim from 200 due rows at once: every row is taken by
    exactly one of them (on PostgreSQL through FOR UPDATE SKIP LOCKED)."""
    import threading

    from django.db import connection

    from generations.lifecycle import claims

    Generation.objects.bulk_create(
        Generation(
            owner=alice,
            prompt=f"row {i}",
            model_name="kling-v1",
            duration="5",
            aspect_ratio="16:9",
            status=Status.PROCESSING,
            api_key=api_key,
            task_id=f"t-{i}",
        )
        for i in range(200)
    )
    taken: list[list[int]] = []
    start = threading.Barrier(8)

    def engine() -> None:
        try:
            start.wait(timeout=10)
            mine: list[int] = []
            while batch := claims.claim_due(Generation.objects.to_read(), 7):
                mine += [gen.pk for gen in batch]
            taken.append(mine)
        finally:
            connection.close()

    threads = [threading.Thread(target=engine) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [pk for mine in taken for pk in mine]
    assert len(taken) == 8
    assert len(every) == len(set(every)) == 200


def test_claims_are_kept_alive_while_their_holder_works_and_run_out_after(alice, clock):
    """A claim lasts CLAIM_TTL past its holder's last heartbeat: renewed while the step runs,
    however long, and free soon after the holder stops (a machine that died)."""
    from generations.lifecycle import claims

    gen = queued(alice)
    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.SUBMITTING,
        **claims.claim_fields(lifecycle.now()),
    )
    with claims.holding(gen.pk):
        clock.advance(lifecycle.CLAIM_TTL * 1.5)  # longer than the claim...
        claims.keeper.beat()  # ...and the heartbeat renews it
        gen.refresh_from_db()
        assert gen.claimed_until > lifecycle.now()
        assert gen.claimed_by == claims.holder()
    clock.advance(lifecycle.CLAIM_TTL * 1.5)  # no heartbeat now: as if the process had died
    gen.refresh_from_db()
    assert gen.claimed_until < lifecycle.now()
    assert Generation.objects.filter(pk=gen.pk).unclaimed(lifecycle.now()).exists()


def test_another_holders_claim_is_not_renewed(db, alice, settings):
    from datetime import timedelta

    from generations.lifecycle import claims

    gen = queued(alice)
    until = lifecycle.now() + timedelta(seconds=5)
    Generation.objects.filter(pk=gen.pk).update(claimed_until=until, claimed_by="elsewhere:1:1")
    with claims.holding(gen.pk):
        claims.keeper.beat()
    gen.refresh_from_db()
    assert gen.claimed_until == until


def test_a_submit_whose_holder_died_is_redriven_once_its_claim_runs_out(cometapi, alice):
    """The dead holder may have sent the create: the re-drive looks it up first, so the task
    is created upstream exactly once."""
    from datetime import timedelta

    gen = queued(alice)
    cometapi.set_faults(lost_create=1.0)  # the create reaches Kling, the answer is lost...
    lifecycle.submit(gen.pk)
    cometapi.set_faults(lost_create=0.0)
    # ...and the process "dies" holding the claim (as if killed before it could requeue).
    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.SUBMITTING,
        claimed_by="dead-machine:1:1",
        claimed_until=lifecycle.now() + timedelta(seconds=20),
    )
    lifecycle.dispatch()
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTING  # still held: nobody else touches it
    Generation.objects.filter(pk=gen.pk).update(claimed_until=lifecycle.now())
    lifecycle.dispatch()
    gen.refresh_from_db()
    assert gen.status in (Status.SUBMITTED, Status.PROCESSING) and gen.task_id
    assert cometapi.create_count(gen.external_task_id) == 1


def test_a_clip_held_by_a_live_claim_is_not_stored_twice(cometapi, alice):
    from datetime import timedelta

    gen = queued(alice)
    lifecycle.submit(gen.pk)
    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.STORING,
        remote_status="succeed",
        remote_video_url="https://x/c.mp4",
        claimed_by="another-machine:1:1",
        claimed_until=lifecycle.now() + timedelta(seconds=20),
    )
    assert not lifecycle.store_clip(gen.pk)
    assert store_finished() == 0


@pytest.mark.django_db(transaction=True)
def test_the_store_loop_stores_clips_concurrently(cometapi, alice, monkeypatch):
    """Every engine stores several clips at once: 8 clips whose downloads take 1 s each are
    all under way together."""
    import threading

    from django.db import connection

    from generations.lifecycle import store

    gens = [queued(alice, prompt=f"clip {i}") for i in range(8)]
    for gen in gens:
        lifecycle.submit(gen.pk)
        gen.refresh_from_db()
        put(
            Generation.objects.filter(pk=gen.pk),
            status=Status.STORING,
            remote_status="succeed",
            remote_video_url=cometapi.base_url + f"/media/{gen.task_id}.mp4",
        )
    at_once, peak, started, lock = 0, 0, 0, threading.Lock()
    enough, all_started = threading.Event(), threading.Event()
    real_download = CometAPIClient.download

    def slow_download(self, *args, **kwargs):
        # Each download is held until six run at once (or 10 s pass, and peak tells).
        nonlocal at_once, peak, started
        with lock:
            at_once += 1
            started += 1
            peak = max(peak, at_once)
            if peak >= 6:
                enough.set()
            if started == 8:
                all_started.set()
        enough.wait(timeout=10)
        try:
            return real_download(self, *args, **kwargs)
        finally:
            with lock:
                at_once -= 1

    monkeypatch.setattr(CometAPIClient, "download", slow_download)
    stop = threading.Event()

    def run_loop() -> None:
        try:
            store.StoreLoop(8).run(stop)
        finally:
            # The loop's own connection (it looks for clips): left open, it would be
            # garbage-collected in a later test, a ResourceWarning on PostgreSQL.
            connection.close()

    loop = threading.Thread(target=run_loop)
    loop.start()
    try:
        all_started.wait(timeout=30)
    finally:
        stop.set()  # the downloads under way finish, then the loop returns
        loop.join(timeout=30)
    assert Generation.objects.filter(status=Status.SUCCEEDED).count() == 8
    assert peak >= 6, f"only {peak} downloads ran at once"


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_ends_lets_its_engine_finish_its_work(monkeypatch, tmp_path):
    """django-q2 recycles a worker every `recycle` tasks and stops them with the cluster:
    the engine in it must end its pass (a create, a download) rather than die in it and
    leave the row claimed until its claim runs out."""
    import multiprocessing
    import threading
    from multiprocessing.util import Finalize

    from django.db import connection

    from generations import signals
    from generations.models import ClusterHeartbeat

    finished = tmp_path / "finished"
    # Both used in the child only (the fork copies them): its pass has begun; it is exiting.
    started, exiting = threading.Event(), threading.Event()

    def slow_pass() -> int:
        started.set()
        exiting.wait(timeout=10)  # a pass still under way when the worker begins to exit
        finished.touch()
        return 1

    def worker() -> None:  # what a django-q2 worker does: post_spawn, tasks, return
        signals.start_engine(sender="django_q", proc_name="Process-test")
        started.wait(timeout=10)
        # Runs as the process exits, before the engine is told to stop (priority 10).
        Finalize(None, exiting.set, exitpriority=20)

    monkeypatch.setattr(engine, "pump_pass", slow_pass)
    connection.close()  # the child must not share this process's connection
    child = multiprocessing.get_context("fork").Process(target=worker)
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert finished.exists(), "the worker exited in the middle of the pump's pass"
    # The engine's process said that its cluster lives (its one heartbeat).
    assert ClusterHeartbeat.objects.get().pid == child.pid


def test_the_pump_schedule_is_gone(db):
    """Every worker process runs the engine: no one-minute sweeper task is needed."""
    from django_q.models import Schedule

    assert not Schedule.objects.filter(func="generations.tasks.pump").exists()

"""Fault tests: the bundled simulator misbehaving, a real qcluster subprocess, and the rule
that every generation reaches its true end with exactly one paid create upstream.

The simulator runs 20x faster than its default clock and the cluster's claims, backoffs and
poll delays are shrunk alike (KLING_LIFECYCLE_SPEED), so a run takes seconds, not hours.
Nothing here asserts how fast anything happened: the waits are generous ceilings.
"""

import random
import time

import httpx
import pytest

from generations import lifecycle
from generations.models import IN_FLIGHT, ApiKey, Generation, Status
from generations.simulator.server import Simulator, key_id

from .stack import running_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SIM_SPEED = 20.0
LIFECYCLE_SPEED = "30"
# Two keys: "steady" is limited to the simulator's 5 running tasks per account and must
# never be refused with 1303; "eager" claims 12, so the simulator answers 1303 and the jobs
# back off and retry.
STEADY, EAGER = "sk-steady-0123456789abcdef", "sk-eager-0123456789abcdef"


def make_keys() -> None:
    ApiKey.objects.create(name="steady", secret=STEADY, concurrency_limit=5)
    ApiKey.objects.create(name="eager", secret=EAGER, concurrency_limit=12)


def prompt_for(i: int) -> str:
    if i % 10 == 3:
        return f"[fail] clip {i}: a lighthouse in a storm"
    if i % 10 == 7:
        return f"[slow] clip {i}: a glacier calving"
    return f"clip {i}: a fox in the snow"


def create_many(owners, count: int) -> list[Generation]:
    """Rows created as the studio form does (queued rows the engine dispatches), owners
    alternating."""
    return [
        lifecycle.create_generation(
            owners[i % len(owners)],
            prompt=prompt_for(i),
            model_name="kling-v1",
            mode="std",
            duration="5",
            aspect_ratio="16:9",
        )
        for i in range(count)
    ]


def unfinished() -> int:
    return Generation.objects.exclude(
        status__in=[Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    ).count()


def wait_all_finished(timeout: float = 150.0) -> None:
    try:
        wait_for(lambda: unfinished() == 0, timeout=timeout, interval=0.5, message="every job")
    except AssertionError:
        # Say where the stragglers are, so a failure here can be diagnosed from the log.
        stuck = Generation.objects.exclude(
            status__in=[Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
        ).values_list(
            "pk",
            "status",
            "remote_status",
            "create_sent",
            "submit_attempts",
            "poll_count",
            "next_attempt_at",
            "claimed_until",
            "wait_reason",
        )
        raise AssertionError(
            f"{len(stuck)} jobs unfinished at {lifecycle.now():%H:%M:%S}: "
            + "; ".join(map(str, stuck[:15]))
        ) from None


def assert_true_ends(sim: Simulator, gens: list[Generation]) -> None:
    """Each job ended as its prompt says, and the simulator stored one task per job."""
    for gen in gens:
        gen.refresh_from_db()
        assert sim.create_count(gen.external_task_id) == 1, (gen.pk, gen.prompt)
        if "[fail]" in gen.prompt:
            assert gen.status == Status.FAILED, (gen.pk, gen.status, gen.error_message)
            assert "moderation" in gen.error_message
        else:
            assert gen.status == Status.SUCCEEDED, (gen.pk, gen.status, gen.error_message)
            assert gen.video.storage.exists(gen.video.name)
            assert gen.poster.storage.exists(gen.poster.name)
            assert gen.video_duration and gen.video_duration > 4
    assert sim.create_count() == len(gens)
    # Our own limit kept the steady key under the simulator's: it was never refused.
    assert sim.state()["concurrency_refusals"].get(key_id(STEADY), 0) == 0


@pytest.fixture
def faulty_sim():
    with Simulator(
        speed=SIM_SPEED, seed=11, fault_5xx=0.10, lost_create=0.05, concurrency=5
    ) as sim:
        yield sim


def test_every_job_ends_right_and_is_paid_once_despite_faults(
    live_server, settings, alice, bob, faulty_sim
):
    """5xx on 10% of calls, 5% of creates stored but answered with an error, 1303 on the
    eager key; callbacks on, so pushes and polls both drive the rows."""
    make_keys()
    settings.KLING_LIFECYCLE_SPEED = float(LIFECYCLE_SPEED)
    with running_cluster(
        cometapi_base_url=faulty_sim.base_url,
        site_url=live_server.url,
        KLING_LIFECYCLE_SPEED=LIFECYCLE_SPEED,
    ):
        gens = create_many([alice, bob], 100)
        wait_all_finished()
    assert_true_ends(faulty_sim, gens)
    state = faulty_sim.state()
    assert state["callbacks_sent"] > 0
    # The faults really happened: 1303s on the eager key and lost creates that were found.
    assert state["concurrency_refusals"].get(key_id(EAGER), 0) > 0
    assert any(g.submit_attempts > 1 for g in Generation.objects.all())


KILL_SEED = 18  # the three kill moments; another seed tries other moments


def test_killed_workers_lose_nothing_and_pay_once(alice, bob, faulty_sim):
    """The same faults, and the whole cluster SIGKILLed at three random moments (mid-create,
    mid-poll, mid-download, whatever it was doing) and started again. Polling only."""
    make_keys()
    rng = random.Random(KILL_SEED)
    with running_cluster(
        cometapi_base_url=faulty_sim.base_url, KLING_LIFECYCLE_SPEED=LIFECYCLE_SPEED
    ) as cluster:
        gens = create_many([alice, bob], 100)
        for _ in range(3):
            time.sleep(rng.uniform(1.0, 5.0))
            cluster.restart_after_kill()
        assert cluster.starts == 4
        wait_all_finished()
    assert_true_ends(faulty_sim, gens)


def test_an_unreachable_upstream_loses_nothing_and_duplicates_nothing(alice, bob, settings):
    """CometAPI drops every connection for a while (creates, reads and downloads alike),
    then comes back."""
    make_keys()
    with (
        Simulator(speed=SIM_SPEED, seed=5, concurrency=5) as sim,
        running_cluster(cometapi_base_url=sim.base_url, KLING_LIFECYCLE_SPEED=LIFECYCLE_SPEED),
    ):
        gens = create_many([alice, bob], 40)
        wait_for(
            lambda: Generation.objects.filter(status__in=IN_FLIGHT).count() >= 5,
            timeout=60,
            message="jobs in flight",
        )
        sim.set_faults(unreachable=True)
        time.sleep(4)  # two hours at the lifecycle's clock: retries back off meanwhile
        assert unfinished() > 0, "the outage began while work was open"
        # Waiting to be sent: queued, or retrying (a create whose answer was lost, issue 18).
        waiting = Generation.objects.filter(status__in=[Status.QUEUED, Status.RETRYING])
        assert waiting.exclude(wait_reason="").exists(), "waiting jobs say why they wait"
        sim.set_faults(unreachable=False)
        wait_all_finished()
    assert_true_ends(sim, gens)


def test_replayed_reordered_and_forged_callbacks_leave_state_right(live_server, alice, settings):
    """Every push the simulator made is delivered again, in reverse and shuffled; forged
    pushes (a wrong token) are refused with 4xx. The rows keep their true end."""
    make_keys()
    settings.KLING_LIFECYCLE_SPEED = float(LIFECYCLE_SPEED)
    with (
        Simulator(speed=SIM_SPEED, seed=3) as sim,
        running_cluster(
            cometapi_base_url=sim.base_url,
            site_url=live_server.url,
            KLING_LIFECYCLE_SPEED=LIFECYCLE_SPEED,
        ),
        httpx.Client(timeout=10) as http,
    ):
        gens = create_many([alice], 10)
        wait_all_finished(timeout=90)
        before = {g.pk: (g.status, g.remote_updated_at_ms, g.video.name) for g in _fresh(gens)}
        pushes = sim.callbacks_sent()
        assert len(pushes) >= 3 * len(gens)  # submitted, processing, and the end, each

        replays = list(reversed(pushes)) + random.Random(4).sample(pushes, len(pushes))
        for url, body in replays:
            assert http.post(url, json=body).status_code == 200
        for url, body in pushes[:10]:
            forged = str(httpx.URL(url).copy_set_param("token", "not-the-token"))
            assert http.post(forged, json=body).status_code == 404
            failed = {**body, "task_status": "failed", "updated_at": body["updated_at"] + 10**6}
            assert http.post(forged, json=failed).status_code == 404

        time.sleep(1)  # any confirming reads the replays asked for have run
        after = {g.pk: (g.status, g.remote_updated_at_ms, g.video.name) for g in _fresh(gens)}
        assert after == before
    assert_true_ends(sim, gens)


def _fresh(gens: list[Generation]) -> list[Generation]:
    return list(Generation.objects.filter(pk__in=[g.pk for g in gens]).order_by("pk"))

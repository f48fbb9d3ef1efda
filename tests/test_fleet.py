"""A fleet: two `qcluster` processes standing for two machines share 200 generations on
PostgreSQL, and one of them dies (SIGKILL to its whole process group) while it is
downloading clips. The other carries on: every generation ends right, each is created
upstream exactly once, and every finished clip is stored with its poster.

It runs in the Makefile's PostgreSQL pass (the ORM broker) and again in its Redis pass (the
Redis broker, on PostgreSQL too); elsewhere it is deselected (the `postgres` marker, see
conftest.py). The two clusters are two process groups with their own logs and their own
machine name (KLING_NODE_NAME), as two machines would: the dead cluster's claims must run
out before the other takes its rows over. Nothing here
asserts how fast anything happened: the waits are generous ceilings.
"""

import time

import pytest
from django.conf import settings

from generations import lifecycle
from generations.models import ApiKey, Generation, Status
from generations.simulator.server import Simulator

from .stack import Cluster, cluster_env, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SIM_SPEED = 20.0
LIFECYCLE_SPEED = "30"
COUNT = 200
# Seconds of the simulator's clock a clip's download takes (1.5 s at 20x): long enough that
# a kill finds downloads under way, short enough for 180 of them.
DOWNLOAD_DELAY = 30.0
# The kill comes while a download is in its first half, so it is still under way when the
# process dies (one seen near its end could be sent in full before the kill lands).
FRESH = DOWNLOAD_DELAY / SIM_SPEED / 2
# The victim dies once this many clips are stored, at a moment it is downloading.
KILL_AFTER_STORED = 20
KEYS = {"fleet-one": "sk-fleet-one-0123456789abcdef", "fleet-two": "sk-fleet-two-0123456789abcdef"}
KEY_LIMIT = 20


def prompt_for(i: int) -> str:
    if i % 50 == 11:
        return f"[policy] clip {i}: refused at create"
    if i % 10 == 3:
        return f"[fail] clip {i}: a lighthouse in a storm"
    if i % 10 == 7:
        return f"[slow] clip {i}: a glacier calving"
    return f"clip {i}: a fox in the snow"


def unfinished() -> int:
    return Generation.objects.exclude(
        status__in=[Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    ).count()


def machine(name: str, sim: Simulator) -> Cluster:
    env = cluster_env(
        cometapi_base_url=sim.base_url,
        KLING_LIFECYCLE_SPEED=LIFECYCLE_SPEED,
        KLING_NODE_NAME=f"fleet-{name}",
        DJANGO_SETTINGS_MODULE="tests.cluster_settings",
        LOG_FORMAT="plain",
    )
    return Cluster(env, name=name)


def downloads_under_way(sim: Simulator, cluster: Cluster, begun_within: float = 0) -> set[str]:
    """Task ids whose clip `cluster` is downloading now: it sent the request and the
    simulator has not finished sending a copy of the clip (and began less than
    `begun_within` seconds ago, if given)."""
    started = set(cluster.downloads_started())
    if not started:
        return set()
    since = (time.time() - begun_within) * 1000 if begun_within else 0
    return {
        task["task_id"]
        for task in sim.tasks()
        if task["task_id"] in started
        and task["_sim"]["downloads_completed"] == 0
        and task["_sim"]["downloads"][-1] >= since
    }


def describe_stragglers() -> str:
    stuck = Generation.objects.exclude(
        status__in=[Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    ).values_list(
        "pk", "status", "remote_status", "create_sent", "submit_attempts", "claimed_until"
    )
    return f"{len(stuck)} unfinished at {lifecycle.now():%H:%M:%S}: " + "; ".join(
        map(str, stuck[:15])
    )


def test_two_machines_share_the_work_and_one_dying_loses_nothing(alice, bob):
    for name, secret in KEYS.items():
        ApiKey.objects.create(name=name, secret=secret, concurrency_limit=KEY_LIMIT)
    broker = "redis" if "redis" in settings.Q_CLUSTER else "orm"
    print(f"broker: {broker}, database: {settings.DATABASES['default']['ENGINE']}")
    with Simulator(
        speed=SIM_SPEED,
        seed=13,
        fault_5xx=0.05,
        lost_create=0.05,
        concurrency=KEY_LIMIT,
        download_delay=DOWNLOAD_DELAY,
    ) as sim:
        victim, survivor = machine("a", sim), machine("b", sim)
        try:
            victim.start()
            survivor.start()
            gens = [
                lifecycle.create_generation(
                    (alice, bob)[i % 2],
                    prompt=prompt_for(i),
                    model_name="kling-v1",
                    mode="std",
                    duration="5",
                    aspect_ratio="16:9",
                )
                for i in range(COUNT)
            ]

            def victim_downloading() -> set[str]:
                """Mid-run, the victim has stored clips (the fleet shares the downloads)
                and is downloading more."""
                stored = Generation.objects.filter(status=Status.SUCCEEDED).count()
                if stored < KILL_AFTER_STORED:
                    return set()
                assert unfinished(), "everything ended before the victim was seen downloading"
                if not victim.work()["stored"]:
                    return set()
                return downloads_under_way(sim, victim, begun_within=FRESH)

            wait_for(
                victim_downloading,
                timeout=120,
                interval=0.1,
                message="cluster a to have stored clips and to be downloading more",
            )
            victim.kill()
            victim_work = victim.work()  # its log is complete: the process is gone
            killed_at = time.monotonic()
            time.sleep(0.3)  # the simulator notices the dropped connections
            interrupted = downloads_under_way(sim, victim)
            left_at_kill = unfinished()
            assert interrupted, "the kill came while the victim was downloading"
            assert left_at_kill > 0

            try:
                wait_for(lambda: unfinished() == 0, timeout=150, interval=0.5, message="all")
            except AssertionError:
                raise AssertionError(describe_stragglers()) from None
            recovered_in = time.monotonic() - killed_at
            survivor_work = survivor.work()
        except BaseException:
            for cluster in (victim, survivor):
                cluster.stop()  # the victim only if the test failed before it was killed
                cluster.close(keep=True)  # for diagnosis: the paths are printed
            raise
        survivor.stop()
        tasks = {t["_sim"]["request"]["external_task_id"]: t for t in sim.tasks()}
        state = sim.state()
    print(
        f"{COUNT} generations, {left_at_kill} unfinished when the victim died with "
        f"{len(interrupted)} downloads under way; all ended {recovered_in:.1f} s later"
    )
    for name, work in (("victim", victim_work), ("survivor", survivor_work)):
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(work.items())))
    print(f"simulator: {state['requests']}, peak running per key {state['peak_active']}")
    try:
        check_the_outcome(sim, gens, interrupted, tasks, victim_work, survivor_work)
    except BaseException:
        for cluster in (victim, survivor):
            cluster.close(keep=True)
        raise
    for cluster in (victim, survivor):
        cluster.close()


def check_the_outcome(sim, gens, interrupted, tasks, victim_work, survivor_work) -> None:
    # Every generation ended as its prompt says, created upstream once (a refused create
    # made nothing), and every finished clip is in our storage with its poster.
    for gen in Generation.objects.filter(pk__in=[g.pk for g in gens]):
        paid = sim.create_count(gen.external_task_id)
        if "[policy]" in gen.prompt:
            assert gen.status == Status.FAILED, (gen.pk, gen.status, gen.error_message)
            assert paid == 0, (gen.pk, paid)
            continue
        assert paid == 1, (gen.pk, gen.prompt, paid)
        if "[fail]" in gen.prompt:
            assert gen.status == Status.FAILED, (gen.pk, gen.status, gen.error_message)
            assert "moderation" in gen.error_message
        else:
            assert gen.status == Status.SUCCEEDED, (gen.pk, gen.status, gen.error_message)
            assert gen.video.storage.exists(gen.video.name), gen.pk
            assert gen.poster.storage.exists(gen.poster.name), gen.pk
            assert gen.video_duration and gen.video_duration > 4
    refused = sum("[policy]" in prompt_for(i) for i in range(COUNT))
    assert sim.create_count() == COUNT - refused

    # The clips the victim was downloading when it died were downloaded again and stored.
    by_task = {t["task_id"]: t for t in tasks.values()}
    for task_id in interrupted:
        assert len(by_task[task_id]["_sim"]["downloads"]) >= 2, task_id
        assert Generation.objects.get(task_id=task_id).status == Status.SUCCEEDED
    # Both machines did the work: the victim stored clips before it died (it was killed
    # only once it had), and the survivor finished what was left.
    # No clip was stored twice (a "stored" line is written only by the store that won).
    assert victim_work["stored"] > 0
    succeeded = Generation.objects.filter(status=Status.SUCCEEDED).count()
    assert victim_work["stored"] + survivor_work["stored"] <= succeeded
    assert survivor_work["downloads"] >= len(interrupted)

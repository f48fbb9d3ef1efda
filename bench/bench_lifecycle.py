"""Lifecycle benchmark: 500 generations in flight against the simulator, one cluster of 2
workers, once with callbacks and once with polling only, in two scenarios:

- realistic: every clip takes 60 to 300 s upstream (uniform; Kling's 5 s clips take 1-2
  minutes with a long tail), so the 500 are in flight together and finish spread out, about
  two a second;
- burst (stress): every clip takes exactly 12 s (one in ten 48 s), so clips finish as fast
  as they were created, 5-20 a second, far beyond what Kling does; it shows where the
  cluster saturates.

Measures, per run:
- latency from upstream completion (the simulator's `updated_at` of the terminal state) to
  the row being finished (`finished_at`: clip stored and poster made), p50 and p95;
- upstream calls per generation (the simulator's request counters: create, read, download),
  and, without callbacks, the count the poll schedule predicts;
- peak memory (RSS) of the cluster: the qcluster process and every descendant (workers and
  the ffmpeg they start), sampled from /proc.

It uses its own throwaway database and media (KLING_VAR_DIR in a temporary directory) and
production timings (KLING_LIFECYCLE_SPEED=1). Run it with `make bench` or
`python -m bench lifecycle` (about 14 minutes); BENCH_LIFECYCLE_SCENARIOS and
BENCH_LIFECYCLE_MODES pick runs, BENCH_LIFECYCLE_AFTER and BENCH_LIFECYCLE_SPREAD set the
realistic clip times (default 60 and 240 s), BENCH_LIFECYCLE_GENERATIONS the count.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
# BENCH_LIFECYCLE_GENERATIONS=20 gives the unloaded path for comparison.
GENERATIONS = int(os.environ.get("BENCH_LIFECYCLE_GENERATIONS", "500"))
SLOW_EVERY = 10  # one in ten prompts is `[slow]`: 48 s instead of 12 s upstream
# The realistic scenario's clip times: BENCH_LIFECYCLE_AFTER plus up to BENCH_LIFECYCLE_SPREAD
# seconds (uniform). Smaller values shorten the run (and raise the completion rate).
REALISTIC_AFTER = float(os.environ.get("BENCH_LIFECYCLE_AFTER", "60"))
REALISTIC_SPREAD = float(os.environ.get("BENCH_LIFECYCLE_SPREAD", "240"))
# Simulator timing per scenario: (finish_after, finish_spread, slow every N prompts or 0).
SCENARIOS = {
    "realistic": (REALISTIC_AFTER, REALISTIC_SPREAD, 0),
    "burst": (12.0, 0.0, SLOW_EVERY),
}
RUN_GRACE = 180.0  # seconds a run may take beyond its slowest clip before giving up
TARGET_P95_CALLBACKS = 2.0
TARGET_P95_POLLING = 10.0
TARGET_CALLS_CALLBACKS = 3.0
POLL_CALLS_TOLERANCE = 0.20


@dataclass
class RunResult:
    scenario: str
    mode: str
    latencies: list[float]
    calls: dict[str, int]
    predicted_calls: float
    schedule_waits: list[float]
    peak_rss_mb: float
    wall: float
    unfinished: int

    @property
    def calls_per_generation(self) -> float:
        return sum(self.calls.values()) / GENERATIONS

    def pct(self, q: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if values is None else values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def setup_django(var_dir: str) -> None:
    os.environ["KLING_VAR_DIR"] = var_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "kling_site.settings"
    for name in ("DATABASE_URL", "REDIS_URL", "Q_BROKER", "SITE_URL", "MEDIA_ROOT"):
        os.environ.pop(name, None)
    os.environ["KLING_LIFECYCLE_SPEED"] = "1"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # one line per callback is noise
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def start_web_server() -> tuple[WSGIServer, str]:
    """The site, for the simulator's callbacks: Django's WSGI app on a loopback port."""
    from django.core.wsgi import get_wsgi_application

    server = make_server(
        "127.0.0.1",
        0,
        get_wsgi_application(),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def reset_database() -> None:
    from django_q.models import OrmQ, Schedule, Task

    from generations.models import ApiKey, Generation, WorkerLease

    Generation.objects.all().delete()
    ApiKey.objects.all().delete()
    WorkerLease.objects.all().delete()
    OrmQ.objects.all().delete()
    Task.objects.all().delete()
    Schedule.objects.all().delete()


def scheduled_reads(seconds_upstream: float, schedule: tuple[float, ...]) -> tuple[int, float]:
    """What a read schedule does for a task that ends `seconds_upstream` after submit: the
    reads up to and including the first one after it ends, and how long that first read
    comes after the end (the wait the schedule itself imposes). With callbacks (the
    reconciliation schedule) the confirming read takes the place of that last read."""
    elapsed, reads = 0.0, 0
    while True:
        elapsed += schedule[min(reads, len(schedule) - 1)]
        reads += 1
        if elapsed >= seconds_upstream:
            return reads, elapsed - seconds_upstream


def rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def report_stragglers(sim, cluster_log: str) -> None:
    """What each unfinished row looks like to us and to the simulator, and what the cluster
    logged about it: a row that never ends is a bug to chase, not a figure."""
    from generations.models import TERMINAL, Generation

    upstream = {t["_sim"]["request"]["external_task_id"]: t for t in sim.tasks()}
    for gen in Generation.objects.exclude(status__in=TERMINAL):
        task = upstream.get(gen.external_task_id, {})
        print(
            f"  straggler {gen.pk}: status={gen.status} remote={gen.remote_status!r} "
            f"task={gen.task_id!r} create_sent={gen.create_sent} attempts={gen.submit_attempts} "
            f"polls={gen.poll_count} next={gen.next_attempt_at} claimed={gen.claimed_until} "
            f"wait={gen.wait_reason!r} error={gen.error_code!r} {gen.error_message[:80]!r}; "
            f"upstream: {task.get('task_status', 'no task')}"
        )
        for line in cluster_log.splitlines():
            if f"generation {gen.pk}:" in line or f"generation {gen.pk} " in line:
                print(f"    {line}")
    errors = [line for line in cluster_log.splitlines() if "ERROR" in line or "Error" in line]
    for line in errors[-20:]:
        print(f"  cluster: {line}")


def run_once(scenario: str, mode: str) -> RunResult:
    from django.contrib.auth import get_user_model

    from generations import lifecycle
    from generations.lifecycle import POLL_SCHEDULE, PUSH_QUIET, RECONCILE_SCHEDULE
    from generations.models import TERMINAL, ApiKey, Generation
    from generations.simulator import SLOW_FACTOR, Simulator
    from tests.stack import Cluster, database_url

    reset_database()
    users = [get_user_model().objects.get_or_create(username=f"bench-{i}")[0] for i in range(5)]
    ApiKey.objects.create(name="bench", secret="sk-bench-0123456789abcdef", concurrency_limit=1000)
    web = None
    finish_after, finish_spread, slow_every = SCENARIOS[scenario]
    with Simulator(
        speed=1.0, seed=1, finish_after=finish_after, finish_spread=finish_spread
    ) as sim:
        site_url = ""
        if mode == "callbacks":
            web, site_url = start_web_server()
        env = os.environ.copy()
        env.update(
            DATABASE_URL=database_url(),
            COMETAPI_BASE_URL=sim.base_url,
            SITE_URL=site_url,
            Q_WORKERS="2",
            PYTHONUNBUFFERED="1",
        )
        cluster = Cluster(env)
        cluster.start()
        started = time.monotonic()
        peak = 0.0
        try:
            for i in range(GENERATIONS):
                slow = "[slow] " if slow_every and i % slow_every == slow_every - 1 else ""
                lifecycle.create_generation(
                    users[i % len(users)],
                    prompt=f"{slow}bench clip {i}: waves on a pier",
                    model_name="kling-v1",
                    mode="std",
                    duration="5",
                    aspect_ratio="16:9",
                )
            left = GENERATIONS
            from django_q.models import OrmQ

            slowest = finish_after * (SLOW_FACTOR if slow_every else 1) + finish_spread
            while time.monotonic() - started < slowest + RUN_GRACE:
                peak = max(peak, rss_mb(cluster.pids()))
                left = Generation.objects.exclude(status__in=TERMINAL).count()
                if os.environ.get("BENCH_TRACE"):
                    by = dict(
                        Generation.objects.order_by()
                        .values_list("status")
                        .annotate(n=__import__("django.db.models").db.models.Count("id"))
                    )
                    print(f"{time.monotonic() - started:6.1f} queue={OrmQ.objects.count()} {by}")
                if left == 0:
                    break
                time.sleep(0.5)
            wall = time.monotonic() - started
        finally:
            cluster.stop()
            if left:
                report_stragglers(sim, cluster.output())
            cluster.close()
            if web is not None:
                web.shutdown()
                web.server_close()
        tasks = sim.tasks()
        ended_at = {t["_sim"]["request"]["external_task_id"]: t["updated_at"] / 1000 for t in tasks}
        # What the read schedule predicts for these very tasks (each one's actual time
        # upstream): create, the reads up to the first one after its end, download. With
        # callbacks the "processing" push asks for a confirming read, which puts the next
        # one PUSH_QUIET away; the terminal push's read takes the place of the last one.
        if mode == "callbacks":
            schedule = (sim.processing_after, PUSH_QUIET, *RECONCILE_SCHEDULE)
        else:
            schedule = POLL_SCHEDULE
        planned = [
            scheduled_reads((t["updated_at"] - t["created_at"]) / 1000, schedule) for t in tasks
        ]
        predicted = 2 + statistics.fmean(reads for reads, _ in planned)
        requests = sim.state()["requests"]
    latencies = [
        gen.finished_at.timestamp() - ended_at[gen.external_task_id]
        for gen in Generation.objects.filter(finished_at__isnull=False)
        if gen.external_task_id in ended_at
    ]
    return RunResult(
        scenario=scenario,
        mode=mode,
        latencies=latencies,
        calls={k: requests[k] for k in ("create", "read", "list", "download")},
        predicted_calls=predicted,
        schedule_waits=[wait for _, wait in planned],
        peak_rss_mb=peak,
        wall=wall,
        unfinished=left,
    )


def report(results: list[RunResult]) -> bool:
    ok = True
    print(
        "| scenario | run | p50 | p95 | max | calls/generation (create+read+download) | peak RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        if not r.latencies:
            print(f"| {r.scenario} | {r.mode} | nothing finished ({r.unfinished} left) |")
            ok = False
            continue
        c = r.calls
        calls = f"{r.calls_per_generation:.2f} ({c['create']}+{c['read']}+{c['download']})"
        if r.mode == "polling":
            calls += f"; schedule predicts {r.predicted_calls:.2f}"
        else:
            calls += f"; reconciliation predicts {r.predicted_calls:.2f}"
        print(
            f"| {r.scenario} | {r.mode} | {statistics.median(r.latencies):.2f} s | "
            f"{r.pct(0.95):.2f} s | "
            f"{max(r.latencies):.2f} s | {calls} | {r.peak_rss_mb:.0f} MB |"
        )
        print(
            f"  ({r.scenario} {r.mode}: {len(r.latencies)} finished, {r.unfinished} left, "
            f"{r.wall:.0f} s)"
        )
        if r.mode == "polling":
            waits = r.schedule_waits
            print(
                f"  (of the latency, the poll schedule alone waits p50 "
                f"{statistics.median(waits):.2f} s, p95 {r.pct(0.95, waits):.2f} s)"
            )
        if r.unfinished:
            ok = False
        if r.scenario != "realistic":
            continue  # the burst is a stress figure, reported beside the targets
        if r.mode == "callbacks":
            ok &= r.pct(0.95) <= TARGET_P95_CALLBACKS
            ok &= r.calls_per_generation <= TARGET_CALLS_CALLBACKS
        else:
            ok &= r.pct(0.95) <= TARGET_P95_POLLING
            deviation = (r.calls_per_generation - r.predicted_calls) / r.predicted_calls
            ok &= abs(deviation) <= POLL_CALLS_TOLERANCE
            print(f"  (calls vs the schedule's prediction: {deviation:+.0%})")
    print("targets met" if ok else "a target was missed", flush=True)
    return ok


def run() -> bool:
    var_dir = tempfile.mkdtemp(prefix="kling-bench-")
    try:
        setup_django(var_dir)
        modes = os.environ.get("BENCH_LIFECYCLE_MODES", "callbacks,polling").split(",")
        scenarios = os.environ.get("BENCH_LIFECYCLE_SCENARIOS", "realistic,burst").split(",")
        results = []
        for scenario in scenarios:
            for mode in modes:
                print(f"-- {scenario}, {mode}: {GENERATIONS} generations", flush=True)
                results.append(run_once(scenario, mode))
                report(results[-1:])  # each run's figures as soon as it ends
        print("-- all runs", flush=True)
        return report(results)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if run() else 1)

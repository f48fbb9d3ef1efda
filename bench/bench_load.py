"""Load: gunicorn on loopback, 200 members each with a page polling its live card every 2 s
(the page's one poll, POST /live/) and 20 submitting.

Production mode (DJANGO_DEBUG=0, collected static files, gunicorn.conf.py with its defaults:
2 workers of 4 threads) on PostgreSQL, as the web machine of docs/deploy.md, without a task
cluster (the workers live on other machines there). Locust (bench/load_users.py) drives the
members for a bounded time; a thread here plays the workers' part for the cards, moving one
in-flight card to its next state every 0.2 s, so some polls find a change and render the card.

Targets (issue 8): no errors; p99 ≤ 100 ms for the page poll and the studio page.
Figures and the conditions they were measured in: docs/benchmarks.md.

Besides p50/p99 and errors per request, it prints what makes them comparable: gunicorn's CPU
per request of each kind sent one at a time before the load (independent of the machine's
load), gunicorn's CPU per request under load, the CPU used during the run by gunicorn,
locust, PostgreSQL's backends and by everything else on the machine (psutil), and the
load average before and after. Latencies mean something only when "the rest of the machine"
is near zero: on a shared machine they measure the neighbours.

    .venv/bin/python -m bench load        # about two minutes

Environment: KLING_BENCH_LOAD_KEEP=1 (keep the run's directory: gunicorn's log, each request's
time), KLING_BENCH_LOAD_PORT (8126), KLING_BENCH_LOAD_DB (kling_prod_bench, dropped and
made anew), KLING_BENCH_PG (the PostgreSQL server), KLING_BENCH_LOAD_SECONDS (75), and for
comparing configurations KLING_BENCH_ENV_<NAME>=value (sets NAME for gunicorn, e.g.
KLING_BENCH_ENV_WEB_CONCURRENCY=4) and KLING_BENCH_GUNICORN_CONF (another config file).
"""

import http.client
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
POLLERS, SUBMITTERS = 200, 20
PORT = int(os.environ.get("KLING_BENCH_LOAD_PORT", "8126"))
RUN_FOR = int(os.environ.get("KLING_BENCH_LOAD_SECONDS", "75"))  # locust's run, ramp included
WARMUP = 20  # seconds left out of the figures: the ramp (20 users/s) and first renders
TARGET_P99_MS = 100.0
MOVE_EVERY = 0.2  # seconds between two card changes (the workers' part)
HISTORY = 20  # finished generations per member, so the studio page lists full cards
# Another configuration to compare (a file that execs the repository's and changes a line).
GUNICORN_CONF = os.environ.get("KLING_BENCH_GUNICORN_CONF", str(ROOT / "gunicorn.conf.py"))
SEQUENTIAL = 300  # requests of each kind, one at a time, for the CPU per request
DB = os.environ.get("KLING_BENCH_LOAD_DB", "kling_prod_bench")  # dropped and made anew
ADMIN_URL = os.environ.get("KLING_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")

SEED = """
import json, secrets, sys
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from generations.models import ApiKey, Generation

ApiKey.objects.create(name="bench", secret="sk-bench-0000000000000000")
User = get_user_model()
out = {"pollers": [], "submitters": []}
rows = []
for i in range(%(members)d):
    user = User.objects.create(username=f"member{i:03d}")
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    member = {"sessionid": session.session_key, "csrftoken": secrets.token_hex(16)}
    for j in range(%(history)d):
        rows.append(Generation(owner=user, prompt=f"an old clip {j}", model_name="kling-v1",
            mode="std", duration="5", aspect_ratio="16:9", cfg_scale=0.5, status="succeeded",
            remote_status="succeed", video="videos/bench.mp4", poster="posters/bench.jpg",
            finished_at=timezone.now()))
    if i < %(pollers)d:
        card = Generation.objects.create(owner=user, prompt="a lighthouse at dawn",
            model_name="kling-v1", mode="std", duration="5", aspect_ratio="16:9",
            cfg_scale=0.5, status="processing", remote_status="processing",
            task_id=f"bench-{i}", submitted_at=timezone.now())
        member.update(card=str(card.public_id), version=card.card_version)
        out["pollers"].append(member)
    else:
        out["submitters"].append(member)
Generation.objects.bulk_create(rows, batch_size=1000)
print(json.dumps(out))
"""


def bench_database(create: bool) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {DB}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and its descendants (gunicorn's master and workers), with
    the descendants that have ended since."""
    try:
        procs = [psutil.Process(root)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        # children_*: descendants it has reaped, such as a gunicorn worker replaced after
        # max_requests (its CPU leaves the tree when it exits, and lands here).
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _wakeups(stop: threading.Event, late: list[float]) -> None:
    """How late a sleeping thread wakes: the machine's scheduling delay during the run. Every
    request wakes several processes (gunicorn's threads, PostgreSQL's backend, locust), and
    on a busy machine each wake-up waits its turn for a core; near 0 on a quiet machine."""
    while not stop.is_set():
        start = time.perf_counter()
        time.sleep(0.005)
        late.append(1000 * (time.perf_counter() - start - 0.005))


def _postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the bench's database (same machine)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        pids = [
            r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [DB])
        ]
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue  # PostgreSQL on another machine, or the backend just ended
        out[pid] = t.user + t.system
    return out


def _sequential_cpu(web_pid: int, sessions: Path, n: int = SEQUENTIAL) -> dict[str, float]:
    """gunicorn's CPU per request of each kind, one request at a time over one keep-alive
    connection: what a request costs the server whatever else the machine is doing (the
    latencies under load depend on that; these don't)."""
    members = json.loads(sessions.read_text())
    poller, submitter = members["pollers"][0], members["submitters"][0]

    def cookie(member: dict) -> str:
        return f"sessionid={member['sessionid']}; csrftoken={member['csrftoken']}"

    card = poller["card"].replace("-", "")

    def token(version: str) -> str:
        return f"live={card}%3A{quote(version, safe='')}%3Acard"

    kinds = {
        "page poll, unchanged (204)": ("/live/", poller, token(poller["version"])),
        "page poll, changed (200)": ("/live/", poller, token("old")),
        "studio page": ("/", submitter, None),
    }
    figures = {}
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    try:
        for name, (url, member, body) in kinds.items():
            headers = {"Cookie": cookie(member)}
            if body is not None:  # the page's poll: htmx's headers and the CSRF token
                headers |= {
                    "HX-Request": "true",
                    "X-CSRFToken": member["csrftoken"],
                    "Content-Type": "application/x-www-form-urlencoded",
                }
            for i in range(n + 20):  # the first 20 warm up (connections, templates)
                if i == 20:
                    before = _cpu_seconds(web_pid)
                conn.request("POST" if body else "GET", url, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status not in (200, 204):
                    raise RuntimeError(f"{name}: {response.status}")
            figures[name] = 1000 * (_cpu_seconds(web_pid) - before) / n
    finally:
        conn.close()
    return figures


def _move_cards(stop: threading.Event, rng: random.Random) -> int:
    """The workers' part: one in-flight card to its next state every MOVE_EVERY seconds."""
    moved = 0
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB}"
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [
            r[0] for r in conn.execute("SELECT id FROM generations_generation WHERE task_id <> ''")
        ]
        while not stop.wait(MOVE_EVERY):
            conn.execute(
                "UPDATE generations_generation SET wait_reason = %s, updated_at = now() "
                "WHERE id = %s",
                [f"step {moved}", rng.choice(ids)],
            )
            moved += 1
    return moved


def environment(var: Path) -> dict:
    """The web machine's environment: production mode on PostgreSQL, plain HTTP on loopback."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "Q_", "AWS_", "GUNICORN_"))
        and k not in {"SITE_URL", "MEDIA_ROOT", "STATIC_ROOT", "WEB_CONCURRENCY"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="kling_site.settings",
        KLING_VAR_DIR=str(var),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=ADMIN_URL.rsplit("/", 1)[0] + f"/{DB}",
        # Plain HTTP on loopback: the proxy's TLS is not what is measured.
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SECURE_HSTS_SECONDS="0",
        GUNICORN_BIND=f"127.0.0.1:{PORT}",
        PYTHONUNBUFFERED="1",
    )
    # What the bench is asked to compare (gunicorn's workers and threads, ...) passes through.
    env.update({k: v for k, v in os.environ.items() if k.startswith("KLING_BENCH_ENV_")})
    for key in [k for k in env if k.startswith("KLING_BENCH_ENV_")]:
        env[key.removeprefix("KLING_BENCH_ENV_")] = env.pop(key)
    return env


def prepare(env: dict, var: Path) -> Path:
    """A fresh database, migrated and seeded; the members' sessions and cards as JSON."""
    manage = [sys.executable, str(ROOT / "manage.py")]
    bench_database(create=True)
    for argv in (["migrate", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([*manage, *argv], cwd=ROOT, env=env, check=True)
    seed = SEED % {"members": POLLERS + SUBMITTERS, "pollers": POLLERS, "history": HISTORY}
    seeded = subprocess.run(
        [*manage, "shell", "-c", seed], cwd=ROOT, env=env, check=True, capture_output=True
    )
    sessions = var / "sessions.json"
    sessions.write_text(seeded.stdout.decode().strip().splitlines()[-1])
    return sessions


def run() -> bool:
    rng = random.Random(8)
    var = Path(tempfile.mkdtemp(prefix="kling-bench-load-"))
    env = environment(var)
    web = None
    try:
        sessions = prepare(env, var)

        with socket.socket() as probe:  # another server there would be measured instead
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
            try:
                probe.bind(("127.0.0.1", PORT))
            except OSError:
                raise RuntimeError(f"port {PORT} is in use: set KLING_BENCH_LOAD_PORT") from None
        web_log = (var / "gunicorn.log").open("w")
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF],
            cwd=ROOT,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or web.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.3)

        sequential = _sequential_cpu(web.pid, sessions)
        stop = threading.Event()
        moves: list[int] = []
        mover = threading.Thread(target=lambda: moves.append(_move_cards(stop, rng)))
        late: list[float] = []
        prober = threading.Thread(target=_wakeups, args=(stop, late))
        prober.start()
        mover.start()
        results = var / "results.json"
        started = time.time()
        cpu_before = _cpu_seconds(web.pid)
        pg_before = _postgres_cpu()
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        busy_before, load_before = _machine_busy(), os.getloadavg()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        locust = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "bench" / "load_users.py"),
                "--headless",
                "--host",
                f"http://127.0.0.1:{PORT}",
                "-u",
                str(POLLERS + SUBMITTERS),
                "-r",
                "20",
                "-t",
                f"{RUN_FOR}s",
                "--stop-timeout",
                "5",
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env={**env, "LOAD_SESSIONS": str(sessions), "LOAD_RESULTS": str(results)},
            capture_output=True,
            text=True,
            check=False,
        )
        cpu_used = _cpu_seconds(web.pid) - cpu_before
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        locust_cpu = (children.ru_utime + children.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        pg_after = _postgres_cpu()
        pg_cpu = sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items())
        busy = _machine_busy() - busy_before
        load = os.getloadavg()
        own = resource.getrusage(resource.RUSAGE_SELF)
        bench_cpu = (own.ru_utime + own.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
        wall = time.time() - started
        stop.set()
        mover.join()
        prober.join()
        if not results.exists():
            print(locust.stdout, locust.stderr, sep="\n")
            return False
        records = json.loads(results.read_text())
    finally:
        if web is not None:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=40)
        bench_database(create=False)
        if os.environ.get("KLING_BENCH_LOAD_KEEP") == "1":  # gunicorn's log, every request
            print(f"kept: {var} (gunicorn.log, results.json)")
        else:
            shutil.rmtree(var, ignore_errors=True)

    ok = True
    print(
        f"{POLLERS} polling every 2 s, {SUBMITTERS} submitting every 8-12 s; "
        f"{RUN_FOR} s run, first {WARMUP} s left out; {moves[0] if moves else 0} card changes"
    )
    print("| request | requests | per s | p50 ms | p99 ms | max ms | errors | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    measured_for = None
    for name in ("page poll", "studio page", "submit"):
        rows = [r for r in records if r[1] == name and r[0] >= started + WARMUP]
        if not rows:
            print(f"| {name} | 0 | | | | | | no requests |")
            ok = False
            continue
        measured_for = max(r[0] for r in records) - (started + WARMUP)
        times = [r[2] for r in rows]
        errors = sum(1 for r in rows if r[3])
        p50, p99 = _percentile(times, 0.50), _percentile(times, 0.99)
        target = ""
        if name in ("page poll", "studio page"):
            met = p99 <= TARGET_P99_MS and errors == 0
            ok &= met
            target = f"p99 ≤ {TARGET_P99_MS:.0f} ms, no errors: {'met' if met else 'MISSED'}"
        rate = len(rows) / measured_for if measured_for else 0
        print(
            f"| {name} | {len(rows)} | {rate:.1f} | {p50:.1f} | {p99:.1f} | {max(times):.1f} "
            f"| {errors} | {target} |"
        )
    served = sum(1 for r in records if r[1] in ("page poll", "studio page", "submit"))
    per_request = 1000 * cpu_used / served if served else 0
    print(
        f"gunicorn CPU under load: {cpu_used:.1f} s for {served} requests = "
        f"{per_request:.2f} ms per request"
    )
    print(
        "gunicorn CPU per request, one at a time: "
        + "; ".join(f"{name} {ms:.2f} ms" for name, ms in sequential.items())
    )
    others = busy - cpu_used - locust_cpu - pg_cpu - bench_cpu
    print(
        f"CPU over the {wall:.0f} s run (2 cores = {2 * wall:.0f} s): gunicorn {cpu_used:.1f} s, "
        f"locust {locust_cpu:.1f} s, PostgreSQL {pg_cpu:.1f} s, this bench {bench_cpu:.1f} s, "
        f"the rest of the machine {max(0.0, others):.1f} s"
    )
    starts = [r[0] - r[2] / 1000 for r in records if r[1] == "page poll"]
    bins = [0] * 20
    for start in starts:
        bins[int(start % 2.0 * 10) % 20] += 1
    print(
        f"poll starts per 100 ms of the 2 s period: fewest {min(bins)}, most {max(bins)} "
        f"(even: {len(starts) / 20:.0f}; KLING_BENCH_LOAD_HERD=1 puts the pollers in step)"
    )
    print(
        f"scheduling delay (a thread waking from a 5 ms sleep, {len(late)} times): "
        f"p50 {_percentile(late, 0.5):.2f} ms, p99 {_percentile(late, 0.99):.2f} ms, "
        f"max {max(late):.1f} ms (a quiet machine: well under 1 ms)"
    )
    errors = {r[3] for r in records if r[3]}
    if errors:
        print("errors seen:", *sorted(errors)[:5], sep="\n  ")
    print(
        f"load average (1, 5, 15 min): before the run {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}, at its end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores); "
        "figures are comparable only when the rest of the machine is near 0 s"
    )
    return ok


if __name__ == "__main__":
    sys.exit(0 if run() else 1)

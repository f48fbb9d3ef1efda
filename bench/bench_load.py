"""Load: gunicorn on loopback, 200 members each polling a card every 2 s and 20 submitting.

Production mode (DJANGO_DEBUG=0, collected static files, gunicorn.conf.py with its defaults:
2 workers of 4 threads) on PostgreSQL, as the web machine of docs/deploy.md, without a task
cluster (the workers live on other machines there). Locust (bench/load_users.py) drives the
members for a bounded time; a thread here plays the workers' part for the cards, moving one
in-flight card to its next state every 0.2 s, so some polls find a change and render the card.

Targets (issue 8): no errors; p99 ≤ 100 ms for the status partial and the studio page.
Figures and the conditions they were measured in: docs/benchmarks.md.

    .venv/bin/python -m bench load        # about two minutes
"""

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

import psutil
import psycopg
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
POLLERS, SUBMITTERS = 200, 20
PORT = 8126
RUN_FOR = int(os.environ.get("KLING_BENCH_LOAD_SECONDS", "75"))  # locust's run, ramp included
WARMUP = 20  # seconds left out of the figures: the ramp (20 users/s) and first renders
TARGET_P99_MS = 100.0
MOVE_EVERY = 0.2  # seconds between two card changes (the workers' part)
HISTORY = 20  # finished generations per member, so the studio page lists full cards
DB = "kling_prod_bench"
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


def _database(create: bool) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {DB}")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and its descendants (gunicorn's master and workers)."""
    total = 0.0
    try:
        procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for proc in procs:
        with suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


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


def run() -> bool:
    rng = random.Random(8)
    var = Path(tempfile.mkdtemp(prefix="kling-bench-load-"))
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
    manage = [sys.executable, str(ROOT / "manage.py")]
    _database(create=True)
    web = None
    try:
        for argv in (["migrate", "-v0"], ["collectstatic", "--noinput", "-v0"]):
            subprocess.run([*manage, *argv], cwd=ROOT, env=env, check=True)
        seed = SEED % {"members": POLLERS + SUBMITTERS, "pollers": POLLERS, "history": HISTORY}
        seeded = subprocess.run(
            [*manage, "shell", "-c", seed], cwd=ROOT, env=env, check=True, capture_output=True
        )
        sessions = var / "sessions.json"
        sessions.write_text(seeded.stdout.decode().strip().splitlines()[-1])

        web_log = (var / "gunicorn.log").open("w")
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")],
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

        stop = threading.Event()
        moves: list[int] = []
        mover = threading.Thread(target=lambda: moves.append(_move_cards(stop, rng)))
        mover.start()
        results = var / "results.json"
        started = time.time()
        cpu_before = _cpu_seconds(web.pid)
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
        stop.set()
        mover.join()
        if not results.exists():
            print(locust.stdout, locust.stderr, sep="\n")
            return False
        records = json.loads(results.read_text())
    finally:
        if web is not None:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=40)
        _database(create=False)

    ok = True
    print(
        f"{POLLERS} polling every 2 s, {SUBMITTERS} submitting every 8-12 s; "
        f"{RUN_FOR} s run, first {WARMUP} s left out; {moves[0] if moves else 0} card changes"
    )
    print("| request | requests | per s | p50 ms | p99 ms | max ms | errors | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    measured_for = None
    for name in ("status partial", "studio page", "submit"):
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
        if name in ("status partial", "studio page"):
            met = p99 <= TARGET_P99_MS and errors == 0
            ok &= met
            target = f"p99 ≤ {TARGET_P99_MS:.0f} ms, no errors: {'met' if met else 'MISSED'}"
        rate = len(rows) / measured_for if measured_for else 0
        print(
            f"| {name} | {len(rows)} | {rate:.1f} | {p50:.1f} | {p99:.1f} | {max(times):.1f} "
            f"| {errors} | {target} |"
        )
    served = sum(1 for r in records if r[1] in ("status partial", "studio page", "submit"))
    per_request = 1000 * cpu_used / served if served else 0
    print(
        f"gunicorn CPU: {cpu_used:.1f} s for {served} requests = {per_request:.1f} ms per "
        f"request on average, whatever else the machine is doing (2 cores: room for "
        f"~{2000 / per_request if per_request else 0:.0f} requests/s of this mix)"
    )
    errors = {r[3] for r in records if r[3]}
    if errors:
        print("errors seen:", *sorted(errors)[:5], sep="\n  ")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    return ok


if __name__ == "__main__":
    sys.exit(0 if run() else 1)

"""A real django-q2 cluster in a subprocess, sharing the test database (SQLite or PostgreSQL).

Used by the end-to-end, fault and browser tests: the web side runs in pytest (test client or
live_server), the cluster runs exactly as `make run` starts it, and the fault tests kill it
with SIGKILL and start it again.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection

# Debian's Chromium (`playwright install` can't download here) and the flags every headless
# run uses: the browser tests, the poll bench and docs/screenshots.py.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the test database this process uses, for a subprocess to share it."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    return f"postgres://{user}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class Cluster:
    """One `manage.py qcluster` process group; every start appends to one log file."""

    def __init__(self, env: dict[str, str], name: str = "") -> None:
        self.env = env
        self.name = name
        prefix = f"qcluster-{name}-" if name else "qcluster-"
        self.log = tempfile.NamedTemporaryFile(prefix=prefix, suffix=".log", delete=False)  # noqa: SIM115 (outlives this call)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches every worker
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL to the whole group: the main process and its workers die mid-step, as in
        a power cut or an OOM kill. Nothing gets to clean up."""
        assert self.proc is not None
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def restart_after_kill(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        """SIGTERM to the main qcluster process (not its group) stops its workers cleanly;
        SIGINT may be ignored when the suite runs from a background shell."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def pids(self) -> list[int]:
        """The main process and every descendant (its workers, monitor, pusher)."""
        if self.proc is None:
            return []
        return process_tree(self.proc.pid)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def close(self, *, keep: bool = False) -> None:
        """Close the log and delete it, unless `keep` (a failed fleet test keeps its logs
        for diagnosis and names them) or KLING_TEST_KEEP_CLUSTER_LOGS is set."""
        self.log.close()
        if os.environ.get("KLING_TEST_SHOW_CLUSTER_LOG"):
            print(Path(self.log.name).read_text(errors="replace"))
        if keep or os.environ.get("KLING_TEST_KEEP_CLUSTER_LOGS"):
            print(f"cluster {self.name} log kept: {self.log.name}")
            return
        os.unlink(self.log.name)

    def work(self) -> Counter:
        """What this cluster did, from its own log: upstream requests (creates, reads,
        downloads: httpx's lines, logged with tests.cluster_settings) and lifecycle events
        (the `generations.events` logger: submitted, stored, failed, ...)."""
        return work_counts(self.output())

    def downloads_started(self) -> list[str]:
        """Task ids of the clips this cluster began to download (one per request)."""
        return DOWNLOAD_LINE.findall(self.output())


REQUEST_LINE = re.compile(r"HTTP Request: (GET|POST) (\S+)")
DOWNLOAD_LINE = re.compile(r"HTTP Request: GET \S+/media/([^/\s]+)\.mp4")
EVENT_LINE = re.compile(r" generations\.events: generation \d+(?: \(task [^)]*\))? (\w+)")


def work_counts(log: str) -> Counter:
    """Requests and lifecycle events counted in one cluster's log (see Cluster.work)."""
    counts: Counter = Counter()
    for line in log.splitlines():
        if match := REQUEST_LINE.search(line):
            method, url = match.groups()
            if "/media/" in url:
                counts["downloads"] += 1
            elif method == "POST":
                counts["creates"] += 1
            else:
                counts["reads"] += 1  # by task id, or a look-up by external_task_id
        elif match := EVENT_LINE.search(line):
            counts[match.group(1)] += 1
    return counts


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (none if `root` has ended)."""
    try:
        parent = psutil.Process(root)
        return [root, *(child.pid for child in parent.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def cluster_env(
    *, cometapi_base_url: str, site_url: str = "", workers: int = 2, **extra: str
) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="kling_site.settings",
        DATABASE_URL=database_url(),
        KLING_VAR_DIR=str(settings.VAR_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        COMETAPI_BASE_URL=cometapi_base_url,
        SITE_URL=site_url,
        Q_WORKERS=str(workers),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def running_cluster(*, cometapi_base_url: str, site_url: str = "", workers: int = 2, **extra: str):
    """A started cluster, stopped on exit. `extra` are more environment variables (e.g.
    KLING_LIFECYCLE_SPEED). Yields the Cluster (kill/restart it in fault tests)."""
    cluster = Cluster(
        cluster_env(
            cometapi_base_url=cometapi_base_url, site_url=site_url, workers=workers, **extra
        )
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        cluster.close()


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")

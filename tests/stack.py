"""A real django-q2 cluster in a subprocess, sharing the test database (SQLite or PostgreSQL).

Used by the end-to-end, fault and browser tests: the web side runs in pytest (test client or
live_server), the cluster runs exactly as `make run` starts it, and the fault tests kill it
with SIGKILL and start it again.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection

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

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix="qcluster-", suffix=".log", delete=False)  # noqa: SIM115 (outlives this call)
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

    def close(self) -> None:
        self.log.close()
        if os.environ.get("KLING_TEST_SHOW_CLUSTER_LOG"):
            print(Path(self.log.name).read_text(errors="replace"))
        os.unlink(self.log.name)


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

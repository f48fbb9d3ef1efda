"""A real django-q2 cluster in a subprocess, sharing the test database file.

Used by the end-to-end and browser tests: the web side runs in pytest (test client or
live_server), the cluster runs exactly as `make run` starts it.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def running_cluster(*, cometapi_base_url: str, site_url: str = "", workers: int = 2):
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
    log = tempfile.NamedTemporaryFile(prefix="qcluster-", suffix=".log", delete=False)  # noqa: SIM115 (outlives this block)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        # SIGTERM to the main qcluster process (not its group) stops its workers cleanly;
        # SIGINT may be ignored when the suite runs from a background shell.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        if os.environ.get("KLING_TEST_SHOW_CLUSTER_LOG"):
            print(Path(log.name).read_text())
        os.unlink(log.name)


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")

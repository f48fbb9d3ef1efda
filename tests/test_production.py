"""Production mode: `make run` serves through gunicorn, and the deploy check is clean.

Both run the real commands in subprocesses with a production environment of their own (a
throwaway SQLite file), as an operator following the README would.
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from cryptography.fernet import Fernet

from .stack import process_tree, wait_for

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The README's production environment (docs/deploy.md's environment file), minus the
    database and broker servers: SQLite in tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "FIELD_", "DATABASE_", "KLING_", "REDIS_", "Q_", "AWS_"))
        and k not in {"SITE_URL", "MEDIA_ROOT", "STATIC_ROOT", "GUNICORN_BIND"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="kling_site.settings",
        KLING_VAR_DIR=str(tmp_path),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DJANGO_ALLOWED_HOSTS="studio.example.com",
        SITE_URL="https://studio.example.com",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def test_deploy_check_reports_nothing_with_the_production_environment(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout, result.stdout


def test_plain_http_trial_switches_are_honoured(tmp_path):
    """The loopback trial turns HTTPS enforcement off; the deploy check then says so."""
    env = production_env(
        tmp_path,
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SECURE_HSTS_SECONDS="0",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr + result.stdout


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_make_run_in_production_mode_serves_through_gunicorn_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = production_env(
        tmp_path,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        SITE_URL="",
        # A plain-HTTP trial on loopback (the README's switches).
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_COOKIES="0",
        DJANGO_SECURE_HSTS_SECONDS="0",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
        Q_WORKERS="1",
    )
    log = (tmp_path / "run_studio.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_studio", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # as a terminal would: Ctrl-C goes to run_studio itself
    )
    base = f"http://127.0.0.1:{port}"

    def login_page() -> httpx.Response | None:
        try:
            response = httpx.get(f"{base}/accounts/login/", timeout=5)
        except httpx.TransportError:
            assert proc.poll() is None, Path(log.name).read_text()
            return None
        return response

    try:
        page = wait_for(login_page, timeout=90, message="the login page")
        assert page.status_code == 200
        assert page.headers["server"].startswith("gunicorn")
        # Static files come from collectstatic's manifest, through WhiteNoise.
        css = re.search(r'href="(/static/css/[^"]+\.[0-9a-f]{12}\.css)"', page.text)
        assert css, page.text
        static = httpx.get(base + css[1], timeout=5)
        assert static.status_code == 200
        assert "max-age=315360000" in static.headers["cache-control"]
        # Kling's callback URL carries a token: the access log has the line, not the token.
        token = secrets.token_urlsafe(24)
        hook = httpx.post(f"{base}/hooks/kling/{uuid.uuid4()}/?token={token}", timeout=5)
        assert hook.status_code == 404
        wait_for(
            lambda: "/hooks/kling/" in Path(log.name).read_text(), timeout=10, message="access log"
        )
        assert token not in Path(log.name).read_text()

        children = [pid for pid in process_tree(proc.pid) if pid != proc.pid]
        assert len(children) >= 3  # gunicorn's master and worker, qcluster and its workers

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0, Path(log.name).read_text()
        time.sleep(0.5)
        alive = [pid for pid in children if running(pid)]
        assert not alive, f"still running after Ctrl-C: {alive}"
        assert "Stopped." in Path(log.name).read_text()
    finally:
        if proc.poll() is None:
            for pid in process_tree(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.wait()
        log.close()

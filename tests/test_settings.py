"""Production mode refuses to start without secrets and serves static files itself."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "FIELD_", "DATABASE_", "KLING_"))
    }
    env.update(KLING_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="kling_site.settings", **extra)
    return env


def test_production_mode_needs_a_secret_key(tmp_path):
    result = manage("check", env=clean_env(tmp_path, DJANGO_DEBUG="0"))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_mode_needs_an_encryption_key(tmp_path):
    env = clean_env(tmp_path, DJANGO_DEBUG="0", DJANGO_SECRET_KEY="x" * 50)
    result = manage("check", env=env)
    assert result.returncode != 0 and "FIELD_ENCRYPTION_KEY" in result.stderr


def test_production_mode_without_secrets_says_so_in_one_sentence(tmp_path):
    """Issue 19: `DJANGO_DEBUG=0 make run` without the secrets printed a 30-line traceback."""
    result = manage("run_studio", env=clean_env(tmp_path, DJANGO_DEBUG="0"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "DJANGO_SECRET_KEY" in result.stderr and "FIELD_ENCRYPTION_KEY" in result.stderr


@pytest.mark.parametrize("key", ["not-a-fernet-key", ",", f"{Fernet.generate_key().decode()},junk"])
def test_a_malformed_encryption_key_is_refused_at_start(tmp_path, key):
    """Not at the first job that needs a secret (issue 8, finding 7)."""
    result = manage("check", env=clean_env(tmp_path, FIELD_ENCRYPTION_KEY=key))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "Fernet keys" in result.stderr
    assert "junk" not in result.stderr.split("ImproperlyConfigured")[-1]


def test_bad_values_are_refused_at_start(tmp_path):
    result = manage("check", env=clean_env(tmp_path, DJANGO_DEBUG="maybe"))
    assert result.returncode != 0 and "DJANGO_DEBUG" in result.stderr


def test_production_mode_serves_collected_static_files(tmp_path):
    env = clean_env(
        tmp_path,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="s" * 50,
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        DJANGO_ALLOWED_HOSTS="testserver",
    )
    assert manage("collectstatic", "--noinput", "-v0", env=env).returncode == 0
    assert manage("migrate", "-v0", env=env).returncode == 0
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "c = Client();"
        "r = c.get('/accounts/login/', secure=True); assert r.status_code == 200, r.status_code;"
        'import re; src = re.search(r\'src="(/static/django_htmx/[^"]+)"\', r.content.decode())[1];'
        "print(src);"
        "s = c.get(src, secure=True); assert s.status_code == 200, s.status_code;"
        "print(b''.join(s.streaming_content)[:20])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert ".js" in result.stdout

"""What the in-process benches share: a child process with its own throwaway database and
media, in production mode (DEBUG=0, collected static files), so a bench never touches a
real database and one bench's settings can't leak into another."""

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def production_env(prefix: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "KLING_VAR_DIR": tempfile.mkdtemp(prefix=prefix),
        "DJANGO_SETTINGS_MODULE": "kling_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        # The test client speaks plain HTTP: no redirect to HTTPS, cookies over HTTP.
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        **extra,
    }
    for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "STATIC_ROOT", "SITE_URL"):
        env.pop(name, None)
    return env


def measure_in_child(module: str, env: dict[str, str]) -> dict | None:
    """Run `python -m <module> --measure` and return the JSON its last line prints (None,
    after printing its output, if it failed)."""
    child = subprocess.run(
        [sys.executable, "-m", module, "--measure"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        print(child.stdout, child.stderr, sep="\n")
        return None
    return json.loads(child.stdout.strip().splitlines()[-1])

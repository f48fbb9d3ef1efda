"""Test settings: the real settings, with data in a throwaway directory.

The variables are set before kling_site.settings reads them, and stay in the environment so
subprocesses (qcluster, the simulator) started by tests use the same database and media.
"""

import os
import tempfile

os.environ["KLING_VAR_DIR"] = tempfile.mkdtemp(prefix="kling-test-")
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # live_server with sync Playwright
for name in (
    "SITE_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "COMETAPI_BASE_URL",
    "Q_BROKER",
    "DJANGO_DEBUG",
    "MEDIA_ROOT",
    "STATIC_ROOT",
):
    os.environ.pop(name, None)
# `make test` runs the service-backed parts of the suite again on PostgreSQL and with the
# Redis broker, through these two variables (see the Makefile).
if url := os.environ.get("KLING_TEST_DATABASE_URL"):
    os.environ["DATABASE_URL"] = url
if url := os.environ.get("KLING_TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = url
    os.environ["Q_BROKER"] = "redis"

from kling_site.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Login throttling counts failures in the database on every login; only the tests of it
# (tests/test_login_throttling.py) switch it on, so the rest stay fast and never lock out.
AXES_ENABLED = False

"""Logs: one line per lifecycle event with the generation's id and Kling's task id, JSON lines
with LOG_FORMAT=json, and never a secret or a callback token (issue 8, "Logs")."""

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from generations import lifecycle
from generations.models import Generation, Status
from kling_site.logs import JsonFormatter
from tests.factories import drive

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


class JsonLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def every_line(caplog):
    """Every record of every logger at DEBUG, as plain text (caplog) and as JSON lines."""
    caplog.set_level(logging.DEBUG)
    json_lines = JsonLines()
    root = logging.getLogger()
    root.addHandler(json_lines)
    # Loggers that don't propagate to the root (runserver's access log) are read directly.
    server = logging.getLogger("django.server")
    server.addHandler(json_lines)
    yield caplog, json_lines
    root.removeHandler(json_lines)
    server.removeHandler(json_lines)


def test_a_whole_lifecycle_logs_each_event_and_no_secret(
    every_line, settings, cometapi, api_key, alice, client
):
    caplog, json_lines = every_line
    settings.SITE_URL = "http://127.0.0.1:9"  # callbacks on: creates carry the token URL
    fine, failing, cancelled = lifecycle.create_generations(
        alice,
        [
            {"prompt": p, "model_name": "kling-v1", "mode": "std", "duration": "5"}
            | {"aspect_ratio": "16:9"}
            for p in ("a heron takes off", "[fail] a storm", "a slow tide")
        ],
    )
    for gen in (fine, failing, cancelled):
        lifecycle.submit(gen.pk)
    fine.refresh_from_db()
    url = reverse("kling-callback", args=[fine.public_id])
    body = {"task_id": fine.task_id, "task_status": "processing", "updated_at": 1}
    response = client.post(
        f"{url}?{urlencode({'token': fine.callback_token})}", body, "application/json"
    )
    assert response.status_code == 200
    cancelled.refresh_from_db()
    assert lifecycle.cancel(cancelled)
    assert drive(fine, cometapi).status == Status.SUCCEEDED
    assert drive(failing, cometapi).status == Status.FAILED

    text = caplog.text + "\n".join(json_lines.lines)
    secrets = [api_key.secret, api_key.secret[3:]] + [
        g.callback_token for g in Generation.objects.all()
    ]
    for secret in secrets:
        assert secret not in text

    records = [json.loads(line) for line in json_lines.lines]
    events = [r for r in records if r["logger"] == "generations.events"]
    seen = {(r["generation"], r["event"]) for r in events}
    for gen in (fine, failing, cancelled):
        assert (gen.pk, "queued") in seen and (gen.pk, "submitted") in seen
    assert {(fine.pk, "status"), (fine.pk, "stored"), (failing.pk, "failed")} <= seen
    assert (cancelled.pk, "cancelled") in seen
    fine.refresh_from_db()
    stored = next(r for r in events if r["event"] == "stored")
    assert stored["task_id"] == fine.task_id and fine.task_id in stored["message"]


SERVER_ERROR = """
from unittest import mock
from django.core.management import call_command
from django.contrib.auth import get_user_model
from django.test import Client
from generations.models import Generation
call_command("migrate", verbosity=0)
owner = get_user_model().objects.create_user("ann")
gen = Generation.objects.create(
    owner=owner, prompt="p", model_name="kling-v1", mode="std", duration="5", aspect_ratio="16:9"
)
with mock.patch("generations.lifecycle.push_received", side_effect=RuntimeError("deliberate")):
    response = Client(raise_request_exception=False).post(
        f"/hooks/kling/{gen.public_id}/{gen.callback_token}/",
        data=b'{"task_id": "1", "task_status": "processing"}',
        content_type="application/json",
    )
print("STATUS", response.status_code, "TOKEN", gen.callback_token)
"""


def test_a_server_error_in_production_logs_its_traceback_and_no_secret(tmp_path):
    """Issue 19, finding 1: with DJANGO_DEBUG=0 a 500 left nothing in any log (django.request
    had a filter and no handler, and ADMINS is empty)."""
    secret_key, field_key = "s3cret-" + "k" * 50, Fernet.generate_key().decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="kling_site.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secret_key,
        FIELD_ENCRYPTION_KEY=field_key,
        DJANGO_ALLOWED_HOSTS="testserver",
        DJANGO_SECURE_SSL_REDIRECT="0",
        KLING_VAR_DIR=str(tmp_path),
    )
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SERVER_ERROR],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    status, token = re.search(r"STATUS (\d+) TOKEN (\S+)", result.stdout).groups()
    assert status == "500"
    log = result.stderr
    assert "Internal Server Error" in log and "Traceback" in log
    assert "RuntimeError: deliberate" in log
    for secret in (secret_key, field_key, token):
        assert secret not in log


def test_json_lines_carry_the_traceback():
    """LOG_FORMAT=json keeps a server error's traceback, in the line's `exception`."""
    try:
        raise RuntimeError("deliberate")
    except RuntimeError:
        record = logging.getLogger("django.request").makeRecord(
            "django.request",
            logging.ERROR,
            __file__,
            1,
            "Internal Server Error: %s",
            ("/x/",),
            sys.exc_info(),
        )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Internal Server Error: /x/"
    assert "Traceback" in line["exception"] and "RuntimeError: deliberate" in line["exception"]


def test_log_format_json_prints_json_lines():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_"))}
    env.update(LOG_FORMAT="json", DJANGO_SETTINGS_MODULE="kling_site.settings")
    code = (
        "import logging; logging.getLogger('generations.events').info("
        "'generation 7 (task 42) stored', extra={'generation': 7, 'task_id': '42'})"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["generation"] == 7 and line["task_id"] == "42"
    assert line["level"] == "INFO" and line["message"] == "generation 7 (task 42) stored"


def test_a_bad_log_format_is_refused_at_start():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_"))}
    env.update(LOG_FORMAT="xml", DJANGO_SETTINGS_MODULE="kling_site.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "LOG_FORMAT" in result.stderr

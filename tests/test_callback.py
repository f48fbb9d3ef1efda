"""The callback view: Kling's pushes, authenticated only by the token in the URL."""

import json
import logging
import threading
from urllib.parse import urlencode

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.db import connections
from django.urls import reverse

from generations import lifecycle
from generations.kling import parse_callback
from generations.models import Generation, Status
from kling_site.logs import RedactCallbackTokens
from tests.factories import drive, make_generation, put, read_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_flight(cometapi, alice) -> Generation:
    gen = make_generation(alice, prompt="[slow] a heron takes off")
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED
    return gen


def callback_path(gen: Generation, token: str) -> str:
    return f"{reverse('kling-callback', args=[gen.public_id])}?{urlencode({'token': token})}"


def push(client, gen: Generation, body, *, token: str | None = None):
    url = callback_path(gen, token or gen.callback_token)
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json")


def task(gen: Generation, status: str, updated_at: int, **extra) -> dict:
    return {
        "task_id": gen.task_id,
        "task_status": status,
        "task_status_msg": "",
        "task_info": {"external_task_id": gen.external_task_id},
        "task_result": {},
        "created_at": 1,
        "updated_at": updated_at,
        **extra,
    }


def test_a_push_makes_us_read_the_task_and_stores_nothing_it_says(client, in_flight):
    body = task(in_flight, "processing", 2_000_000_000_000)
    assert push(client, in_flight, body).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUBMITTED  # moved only by our own read
    assert in_flight.remote_status == "submitted"
    assert in_flight.remote_updated_at_ms != 2_000_000_000_000
    assert in_flight.next_attempt_at <= lifecycle.now()


def test_an_enveloped_push_is_accepted(client, in_flight):
    body = {"code": 0, "message": "SUCCEED", "data": task(in_flight, "processing", 2 * 10**12)}
    assert push(client, in_flight, body).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.last_push_at is not None


def test_a_forged_far_future_push_cannot_stall_the_job(client, in_flight, cometapi):
    """Issue 8, finding 1: a forged "processing" dated in the year 2286 used to be stored,
    after which every real read looked older and the job never ended."""
    forged = {"task_status": "processing", "updated_at": 9999999999999}
    push(client, in_flight, forged)
    assert push(client, in_flight, {"task_id": in_flight.task_id, **forged}).status_code == 200
    gen = drive(in_flight, cometapi)
    assert gen.status == Status.SUCCEEDED, gen.error_message
    assert gen.video.name.endswith(".mp4") and gen.video.size > 1000
    assert gen.remote_updated_at_ms < 9999999999999


def test_our_own_terminal_read_wins_over_any_earlier_timestamp(cometapi, in_flight):
    """A row that already holds a far-future timestamp (stored by an older version from a
    forged push) still ends when our own read says the task ended."""
    put(
        Generation.objects.filter(pk=in_flight.pk),
        status=Status.PROCESSING,
        remote_status="processing",
        remote_updated_at_ms=9999999999999,
    )
    gen = drive(in_flight, cometapi)
    assert gen.status == Status.SUCCEEDED, gen.error_message


@pytest.mark.parametrize("token", ["wrong-token", "ünïcode-tökén", "x" * 43])
def test_a_forged_push_is_refused(client, in_flight, token):
    response = push(client, in_flight, task(in_flight, "failed", 3 * 10**12), token=token)
    assert response.status_code == 404
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUBMITTED


def test_a_push_for_an_unknown_job_is_refused(client, in_flight):
    url = reverse("kling-callback", args=["00000000-0000-4000-8000-000000000000"]) + "?token=t"
    assert client.post(url, data="{}", content_type="application/json").status_code == 404


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"task_status": "succeed"})])
def test_junk_is_refused_with_400(client, in_flight, body):
    assert push(client, in_flight, body).status_code == 400


@pytest.mark.parametrize("size", [300 * 1024, 3 * 1024 * 1024])
def test_an_oversized_push_gets_json_413(client, in_flight, size):
    """Issue 19, finding 5: past Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) reading the
    body raised, and the push got Django's HTML 400 instead of the JSON 413 below it."""
    response = push(client, in_flight, b'{"task_id": "' + b"x" * size + b'"}')
    assert response.status_code == 413
    assert response.json() == {"error": "body too large"}


def test_a_terminal_push_is_confirmed_by_a_read_before_it_counts(client, in_flight):
    """The token is right but the body lies: the task is still running upstream."""
    lie = task(in_flight, "failed", 3 * 10**12, task_status_msg="forged")
    assert push(client, in_flight, lie).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUBMITTED
    assert in_flight.next_attempt_at <= lifecycle.now()  # the confirming read is due now
    lifecycle.poll_due()  # the pump's next pass
    in_flight.refresh_from_db()
    assert in_flight.status in (Status.SUBMITTED, Status.PROCESSING)
    assert in_flight.error_message == ""
    assert in_flight.remote_updated_at_ms != 3 * 10**12


def test_a_push_after_the_end_changes_nothing(client, in_flight):
    put(Generation.objects.filter(pk=in_flight.pk), status=Status.SUCCEEDED)
    assert push(client, in_flight, task(in_flight, "failed", 9 * 10**12)).status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.status == Status.SUCCEEDED


def test_the_callback_needs_no_login_and_only_takes_post(client, in_flight):
    url = callback_path(in_flight, in_flight.callback_token)
    assert client.get(url).status_code == 405


# Reads with callbacks on: one confirming read per clip while pushes reach us, polling when
# they don't (lifecycle.RECONCILE_SCHEDULE).

UNREACHABLE_SITE = "http://127.0.0.1:9"  # the simulator's pushes to it are refused at once


def due_in(gen: Generation) -> float:
    gen.refresh_from_db()
    return (gen.next_attempt_at - lifecycle.now()).total_seconds()


def seconds(delay: float) -> float:
    return lifecycle.scaled(delay).total_seconds()


@pytest.fixture
def with_callbacks(settings, cometapi, alice) -> Generation:
    settings.SITE_URL = UNREACHABLE_SITE
    gen = make_generation(alice, prompt="[slow] a heron takes off")
    lifecycle.submit(gen.pk)
    first = seconds(lifecycle.RECONCILE_SCHEDULE[0])
    assert first - 2 < due_in(gen) <= first  # time for the first push to arrive
    return gen


def test_after_a_push_reads_wait_and_then_only_reconcile(client, with_callbacks):
    gen = with_callbacks
    push(client, gen, task(gen, "processing", 2 * 10**12))
    assert due_in(gen) <= 0  # the push's confirming read, at once
    assert gen.last_push_at is not None
    read_now(gen)  # that read: the task is still running
    quiet = seconds(lifecycle.PUSH_QUIET)
    assert quiet - 2 < due_in(gen) <= quiet
    # Five quiet minutes later (no push since), reads reconcile every minute or two.
    Generation.objects.filter(pk=gen.pk).update(
        last_push_at=lifecycle.now() - lifecycle.scaled(lifecycle.PUSH_QUIET)
    )
    read_now(gen)
    minute = seconds(lifecycle.RECONCILE_SCHEDULE[-1])
    assert seconds(lifecycle.RECONCILE_SCHEDULE[0]) - 2 < due_in(gen) <= minute


def test_without_pushes_the_task_is_polled(with_callbacks):
    gen = with_callbacks
    read_now(gen)  # the first read, and no push has come
    step = seconds(lifecycle.POLL_SCHEDULE[0])
    assert step - 2 < due_in(gen) <= step
    assert gen.last_push_at is None


def test_a_terminal_push_asks_for_the_read_now(client, with_callbacks):
    gen = with_callbacks
    push(client, gen, task(gen, "succeed", 3 * 10**12))
    assert due_in(gen) <= 0


def test_kling_s_submitted_push_racing_our_submit_asks_no_read(with_callbacks):
    """Kling pushes "submitted" as it creates the task. The callback view may have loaded
    the row before our submit recorded the same: the push is compared with the row as it
    is now, so it costs no read."""
    gen = with_callbacks
    stale = Generation.objects.get(pk=gen.pk)
    stale.remote_status = ""  # as loaded before the submit's UPDATE
    before = due_in(gen)
    assert not lifecycle.push_received(stale, parse_callback(task(gen, "submitted", 2 * 10**12)))
    assert due_in(gen) == pytest.approx(before, abs=1)
    # A push of something newer still asks for the read.
    assert lifecycle.push_received(stale, parse_callback(task(gen, "processing", 2 * 10**12)))
    assert due_in(gen) <= 0


# The callback token stays out of logs and admin (issue 8, finding 2).


def test_the_callback_url_carries_the_token_in_its_query(settings, alice):
    settings.SITE_URL = "https://studio.example.com"
    gen = make_generation(alice)
    url = httpx.URL(lifecycle.callback_url(gen))
    assert url.path == f"/hooks/kling/{gen.public_id}/"
    assert url.params["token"] == gen.callback_token


def test_a_push_to_the_old_path_form_still_counts(client, in_flight):
    """Tasks submitted before the token moved to the query still call back in that form."""
    url = f"/hooks/kling/{in_flight.public_id}/{in_flight.callback_token}/"
    body = json.dumps(task(in_flight, "processing", 2 * 10**12))
    assert client.post(url, data=body, content_type="application/json").status_code == 200
    in_flight.refresh_from_db()
    assert in_flight.last_push_at is not None
    wrong = f"/hooks/kling/{in_flight.public_id}/not-the-token/"
    assert client.post(wrong, data=body, content_type="application/json").status_code == 404


def test_a_push_without_a_token_is_refused(client, in_flight):
    url = reverse("kling-callback", args=[in_flight.public_id])
    body = json.dumps(task(in_flight, "processing", 2 * 10**12))
    assert client.post(url, data=body, content_type="application/json").status_code == 404
    assert (
        client.post(url + "?token=", data=body, content_type="application/json").status_code == 404
    )


class Lines(logging.Handler):
    """Collects formatted lines; `seen` is set once `count` lines have arrived."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.count = count
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        if len(self.lines) >= self.count:
            self.seen.set()


def test_runservers_access_log_never_prints_a_token(alice):
    """Django's development server, as `make run` serves with DEBUG on: its access line
    (`django.server`) and the 404 warning (`django.request`) of a callback, in both forms."""
    gen = make_generation(alice)
    token = gen.callback_token
    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    handler = WSGIHandler()

    def app(environ, start_response):
        # The server thread's own database connection is closed after each request: on
        # PostgreSQL a persistent one would be left open and garbage-collected in a later test.
        try:
            return handler(environ, start_response)
        finally:
            connections.close_all()

    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    access, warnings = Lines(2), Lines(2)
    logging.getLogger("django.server").addHandler(access)
    logging.getLogger("django.request").addHandler(warnings)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/hooks/kling/{gen.public_id}/"
        # This test's row is not committed, so the server answers 404: logged both ways.
        for url in (f"{base}?token={token}", f"{base}{token}/"):
            assert httpx.post(url, json={"task_id": "1"}).status_code == 404
        assert access.seen.wait(5) and warnings.seen.wait(5)
    finally:
        server.shutdown()
        server.server_close()
        logging.getLogger("django.server").removeHandler(access)
        logging.getLogger("django.request").removeHandler(warnings)
    lines = access.lines + warnings.lines
    assert all(token not in line for line in lines), lines
    assert sum("[redacted]" in line for line in lines) >= 3  # the path form too


def test_gunicorns_access_record_is_redacted_too():
    """gunicorn logs `access_log_format % atoms`; attach the filter in gunicorn.conf.py."""
    atoms = {"r": "POST /hooks/kling/x/?token=s3cr3t-t0ken HTTP/1.1", "q": "token=s3cr3t-t0ken"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, '"%(r)s" %(q)s', (), None)
    record.args = atoms
    assert RedactCallbackTokens().filter(record)
    assert "s3cr3t" not in record.getMessage() and "[redacted]" in record.getMessage()


def test_admin_does_not_show_the_token(client, charlie, alice):
    charlie.is_superuser = True
    charlie.save()
    client.force_login(charlie)
    gen = make_generation(alice)
    page = client.get(reverse("admin:generations_generation_change", args=[gen.pk]))
    assert page.status_code == 200
    assert gen.callback_token not in page.content.decode()
    assert gen.external_task_id in page.content.decode()  # the page itself did render

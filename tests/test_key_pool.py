"""The key pool: rotation with tasks in flight, disabled keys, the probe that brings a key
back, the admin list, and the secret kept out of every place it could leak to."""

import io
import json
import logging
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.views.debug import ExceptionReporter
from django_q.models import OrmQ, Schedule

from generations import lifecycle
from generations.governance import audit, keypool
from generations.models import ApiKey, AuditEvent, Generation, RetiredSecret, Status
from generations.simulator.server import key_id
from tests.factories import drive, make_generation, put

pytestmark = pytest.mark.django_db

OLD = "sk-old-secret-aaaaaaaaaaaa1111"
NEW = "sk-new-secret-bbbbbbbbbbbb2222"


@pytest.fixture
def root_client(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="root-pass")
    client.force_login(root)
    return client


@pytest.fixture
def pool(settings, simulator):
    settings.COMETAPI_BASE_URL = simulator.base_url
    return ApiKey.objects.create(name="team", secret=OLD, concurrency_limit=5)


def submitted(owner, **kw) -> Generation:
    gen = make_generation(owner, **kw)
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.status in (Status.SUBMITTED, Status.PROCESSING), gen.error_message
    return gen


def creator_of(simulator, gen: Generation) -> str:
    (task,) = [t for t in simulator.tasks() if t["task_id"] == gen.task_id]
    return task["_sim"]["key_id"]


# -- rotation


def test_rotation_moves_new_creates_at_once_and_lets_old_tasks_finish(pool, simulator, alice):
    before = submitted(alice, prompt="[slow] made with the old secret")
    assert before.key_version == 1
    keypool.rotate(pool, NEW)
    assert RetiredSecret.objects.filter(api_key=pool, version=1).exists()

    after = submitted(alice, prompt="made with the new secret")
    assert after.key_version == 2
    assert creator_of(simulator, after) == key_id(NEW)
    assert creator_of(simulator, before) == key_id(OLD)

    # The simulator shows a task only to the secret that created it: the old job still
    # finishes, read and downloaded with the old secret.
    assert drive(before, simulator).status == Status.SUCCEEDED
    assert drive(after, simulator).status == Status.SUCCEEDED
    assert keypool.forget_retired_secrets() == 1
    assert not RetiredSecret.objects.exists()


def test_a_retired_secret_stays_while_a_job_needs_it(pool, alice):
    gen = submitted(alice)
    keypool.rotate(pool, NEW)
    assert keypool.forget_retired_secrets() == 0
    put(Generation.objects.filter(pk=gen.pk), status=Status.SUCCEEDED)
    assert keypool.forget_retired_secrets() == 1


def test_rotation_with_nothing_in_flight_forgets_the_old_secret_at_once(pool):
    keypool.rotate(pool, NEW)
    assert not RetiredSecret.objects.exists()
    pool.refresh_from_db()
    assert (pool.secret, pool.secret_version) == (NEW, 2)


def test_a_lost_create_is_looked_up_with_the_secret_that_sent_it(pool, simulator, alice):
    gen = make_generation(alice)
    simulator.set_faults(lost_create=1.0)
    lifecycle.submit(gen.pk)
    simulator.set_faults(lost_create=0.0)
    gen.refresh_from_db()
    assert gen.status == Status.RETRYING and gen.create_sent and gen.key_version == 1
    keypool.rotate(pool, NEW)
    Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.key_version == 1 and gen.task_id
    assert simulator.create_count(gen.external_task_id) == 1  # found, not paid twice


def test_rotate_api_key_command(pool, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(NEW + "\n"))
    out = io.StringIO()
    call_command("rotate_api_key", "team", stdout=out)
    pool.refresh_from_db()
    assert pool.secret == NEW and pool.secret_version == 2
    assert NEW not in out.getvalue() and "…2222" in out.getvalue()
    event = AuditEvent.objects.get(action=audit.KEY_ROTATED)
    assert event.actor.startswith("manage.py rotate_api_key (OS user ")


@pytest.mark.parametrize("given", ["", "two words", OLD])
def test_rotate_api_key_refuses_junk_and_the_same_secret(pool, monkeypatch, given):
    monkeypatch.setattr("sys.stdin", io.StringIO(given))
    with pytest.raises(CommandError):
        call_command("rotate_api_key", "team", stdout=io.StringIO())
    pool.refresh_from_db()
    assert pool.secret_version == 1


def test_rotate_api_key_names_an_unknown_key(db):
    with pytest.raises(CommandError, match="No API key is called"):
        call_command("rotate_api_key", "nope", stdout=io.StringIO())


def test_admin_rotates_by_pasting_a_new_secret(pool, root_client, alice):
    gen = submitted(alice)
    url = f"/admin/generations/apikey/{pool.pk}/change/"
    form = {"name": "team", "secret": NEW, "is_active": "on", "concurrency_limit": "5"}
    assert root_client.post(url, form).status_code == 302
    pool.refresh_from_db()
    assert (pool.secret, pool.secret_version) == (NEW, 2)
    gen.refresh_from_db()
    assert lifecycle.key_secret(pool, gen.key_version) == OLD
    # Saving without a secret keeps it (no rotation).
    form["secret"] = ""
    assert root_client.post(url, form).status_code == 302
    pool.refresh_from_db()
    assert pool.secret_version == 2


# -- disabled keys


def test_a_disabled_key_takes_no_new_jobs_and_finishes_its_own(pool, alice, simulator):
    running = submitted(alice)
    keypool.set_active([pool], False)
    waiting = make_generation(alice)
    lifecycle.submit(waiting.pk)
    waiting.refresh_from_db()
    assert waiting.status == Status.QUEUED and "no working CometAPI key" in waiting.wait_reason
    assert drive(running, simulator).status == Status.SUCCEEDED
    keypool.set_active([pool], True)
    assert drive(waiting, simulator).status == Status.SUCCEEDED


def test_a_disabled_key_still_looks_up_a_create_it_may_have_made(pool, simulator, alice):
    gen = make_generation(alice)
    simulator.set_faults(lost_create=1.0)
    lifecycle.submit(gen.pk)
    simulator.set_faults(lost_create=0.0)
    keypool.set_active([pool], False)
    Generation.objects.filter(pk=gen.pk).update(next_attempt_at=lifecycle.now())
    lifecycle.submit(gen.pk)
    gen.refresh_from_db()
    assert gen.task_id and simulator.create_count(gen.external_task_id) == 1


def test_disable_and_enable_from_the_shell_and_admin(pool, root_client):
    call_command("disable_api_key", "team", stdout=io.StringIO())
    pool.refresh_from_db()
    assert not pool.is_active
    call_command("disable_api_key", "team", "--enable", stdout=io.StringIO())
    pool.refresh_from_db()
    assert pool.is_active
    actions = {"action": "disable_keys", "_selected_action": [pool.pk]}
    assert root_client.post("/admin/generations/apikey/", actions).status_code == 302
    pool.refresh_from_db()
    assert not pool.is_active
    actions["action"] = "enable_keys"
    root_client.post("/admin/generations/apikey/", actions)
    pool.refresh_from_db()
    assert pool.is_active
    assert list(
        AuditEvent.objects.filter(action__startswith="key")
        .order_by("id")
        .values_list("action", flat=True)
    ) == [
        audit.KEY_DISABLED,
        audit.KEY_ENABLED,
        audit.KEY_DISABLED,
        audit.KEY_ENABLED,
    ]


# -- the probe


def test_the_probe_brings_a_key_back_when_cometapi_accepts_it(settings, db):
    from generations.simulator.server import Simulator

    with Simulator(speed=20.0, seed=3, keys=[OLD]) as sim:
        settings.COMETAPI_BASE_URL = sim.base_url
        key = ApiKey.objects.create(name="team", secret="sk-unknown-000000000000", is_healthy=False)
        assert keypool.probe_unhealthy_keys() == 0
        key.refresh_from_db()
        assert not key.is_healthy and key.last_probe_result.startswith("Still refused")
        assert "1002" in key.last_probe_result and key.last_probe_at is not None
        # The account is fixed (here: the simulator now knows the key).
        ApiKey.objects.filter(pk=key.pk).update(secret=OLD)
        assert keypool.probe_unhealthy_keys() == 1
        key.refresh_from_db()
        assert key.is_healthy and key.last_error == "" and key.unhealthy_since is None
        assert key.last_probe_result.startswith("OK")
        assert sim.create_count() == 0  # a probe is a read, never a paid create


@pytest.mark.parametrize(
    ("secret", "code"), [("sk-arrears-00000000", "1101"), ("sk-noaccess-0000000", "1103")]
)
def test_the_probe_keeps_a_billing_or_access_refusal_unhealthy(cometapi, secret, code):
    key = ApiKey.objects.create(name="bad", secret=secret, is_healthy=False)
    assert keypool.probe(key) is False
    key.refresh_from_db()
    assert not key.is_healthy and code in key.last_probe_result


def test_an_outage_says_nothing_about_the_key(cometapi):
    key = ApiKey.objects.create(name="bad", secret=OLD, is_healthy=False)
    cometapi.set_faults(unreachable=True)
    assert keypool.probe(key) is None
    key.refresh_from_db()
    assert not key.is_healthy and key.last_probe_result.startswith("Inconclusive")


def test_the_probe_runs_on_a_schedule_made_by_a_migration(db):
    schedule = Schedule.objects.get(name="kling-key-probe")
    assert schedule.func == "generations.tasks.probe_keys" and schedule.minutes == 5


# -- the admin list


def test_admin_list_shows_each_keys_figures_in_a_fixed_number_of_queries(
    pool, root_client, alice, django_assert_max_num_queries
):
    other = ApiKey.objects.create(name="spare", secret=NEW, is_healthy=False, last_error="401 x")
    for status in (Status.PROCESSING, Status.SUCCEEDED, Status.FAILED):
        make_generation(alice, api_key=pool, status=status, price_usd=Decimal("0.5"))
    make_generation(alice, api_key=other, status=Status.SUCCEEDED, price_usd=Decimal("2"))
    with django_assert_max_num_queries(8) as few:
        page = root_client.get("/admin/generations/apikey/")
    for i in range(10):
        ApiKey.objects.create(name=f"k{i}", secret=f"sk-more-keys-0000{i:04d}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        root_client.get("/admin/generations/apikey/")
    text = page.text
    assert OLD not in text and NEW not in text
    assert "…1111" in text and "…2222" in text
    row = text[text.index(f'class="field-name"><a href="/admin/generations/apikey/{pool.pk}/') :]
    row = row[: row.index("</tr>")]
    # in flight 1, jobs 3, spend $1 (the failed job is refunded)
    assert '<td class="field-in_flight">1</td>' in row
    assert '<td class="field-jobs_this_month">3</td>' in row
    assert '<td class="field-spend_this_month">$1</td>' in row


# -- secrecy: the raw secret in no page, log, error report, history, task row, cache, fixture


def test_no_admin_page_or_history_entry_shows_the_secret(pool, root_client):
    url = f"/admin/generations/apikey/{pool.pk}/change/"
    form = {"name": "team", "secret": NEW, "is_active": "on", "concurrency_limit": "7"}
    root_client.post(url, form)
    add = {"name": "extra", "secret": "sk-added-cccccccccc3333", "concurrency_limit": "5"}
    root_client.post("/admin/generations/apikey/add/", add)
    pages = [
        root_client.get(url),
        root_client.get(f"/admin/generations/apikey/{pool.pk}/history/"),
        root_client.get("/admin/generations/apikey/"),
        root_client.get("/admin/generations/auditevent/"),
        root_client.get("/admin/"),
    ]
    for page in pages:
        assert page.status_code == 200
        for secret in (OLD, NEW, "sk-added-cccccccccc3333"):
            assert secret not in page.text
    for entry in LogEntry.objects.all():
        for secret in (OLD, NEW, "sk-added-cccccccccc3333"):
            assert secret not in entry.change_message and secret not in entry.object_repr
    for event in AuditEvent.objects.all():
        assert OLD not in json.dumps(event.details) and NEW not in json.dumps(event.details)


def test_no_log_line_holds_the_secret(pool, alice, caplog, settings, simulator):
    caplog.set_level(logging.DEBUG)
    gen = submitted(alice)
    keypool.rotate(pool, NEW)
    drive(gen, simulator)
    bad = ApiKey.objects.create(name="bad", secret="sk-expired-dddddddd4444", is_healthy=False)
    keypool.probe(bad)
    gen2 = make_generation(alice)
    ApiKey.objects.filter(pk=pool.pk).update(secret="sk-expired-eeeeeeee5555")
    lifecycle.submit(gen2.pk)
    text = caplog.text
    assert "rotated" in text and "marked unhealthy" in text
    for secret in (OLD, NEW, "sk-expired-dddddddd4444", "sk-expired-eeeeeeee5555"):
        assert secret not in text


def test_no_error_report_holds_the_secret(pool, alice, monkeypatch):
    """A crash inside a request to CometAPI: Django's error report (the 500 e-mail, the
    debug page) shows every frame's variables."""
    gen = make_generation(alice, api_key=pool, key_version=1, task_id="t1", status="submitted")

    def boom(*args, **kwargs):
        raise RuntimeError("the network stack broke")

    monkeypatch.setattr("httpx.Client.send", boom)
    try:
        with lifecycle.client_for(pool, gen.key_version) as client:
            client.get_task(gen.task_id)
    except RuntimeError:
        import sys

        request = RequestFactory().get("/")
        reporter = ExceptionReporter(request, *sys.exc_info())
        report = reporter.get_traceback_text() + reporter.get_traceback_html()
    assert "the network stack broke" in report
    assert OLD not in report


def test_no_task_row_holds_the_secret(pool, alice, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    lifecycle.create_generation(
        alice, prompt="a fox", model_name="kling-v1", mode="std", duration="5", aspect_ratio="16:9"
    )
    keypool.rotate(pool, NEW)
    from django_q.tasks import async_task

    async_task("generations.tasks.probe_keys")
    rows = list(OrmQ.objects.all())
    assert rows
    for row in rows:
        blob = row.payload if isinstance(row.payload, str) else str(row.payload)
        assert OLD not in blob and NEW not in blob
        assert OLD not in json.dumps(row.task, default=str)


def test_no_cache_entry_holds_the_secret(pool, root_client, alice, simulator):
    cache.clear()
    gen = submitted(alice)
    keypool.rotate(pool, NEW)
    drive(gen, simulator)
    root_client.get("/admin/generations/apikey/")
    root_client.get("/")
    store = getattr(cache, "_cache", {})
    for value in store.values():
        assert OLD.encode() not in value and NEW.encode() not in value


def test_no_fixture_holds_the_secret(pool, alice, tmp_path):
    gen = submitted(alice)
    keypool.rotate(pool, NEW)
    assert gen.pk
    out = io.StringIO()
    call_command("dumpdata", "generations", stdout=out)
    assert OLD not in out.getvalue() and NEW not in out.getvalue()
    # The dump holds the encrypted token, which loads back to the same key.
    fixture = tmp_path / "backup.json"
    fixture.write_text(out.getvalue())
    ApiKey.objects.all().delete()
    call_command("loaddata", str(fixture), stdout=io.StringIO())
    assert ApiKey.objects.get(name="team").secret == NEW
    assert RetiredSecret.objects.get().secret == OLD

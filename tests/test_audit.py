"""The audit trail: who changed what that matters to money or access, from admin and from
the shell, read-only in admin and without secrets."""

import io
import json

import pytest
from django.core.management import call_command

from generations.governance import audit
from generations.models import ApiKey, AuditEvent, MemberLimits, Price

pytestmark = pytest.mark.django_db
SECRET = "sk-audit-secret-ffffffff9999"


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-pass")


@pytest.fixture
def root_client(client, root):
    client.force_login(root)
    AuditEvent.objects.all().delete()  # making root staff was recorded; start clean
    return client


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_a_key_added_in_admin_names_the_admin_and_only_the_mask(root_client, root):
    add = {"name": "team", "secret": SECRET, "is_active": "on", "concurrency_limit": "5"}
    assert root_client.post("/admin/generations/apikey/add/", add).status_code == 302
    (event,) = events(audit.KEY_ADDED)
    assert event.actor == "root (admin)" and event.actor_user == root
    assert event.target == "API key team" and event.details == {"mask": "…9999"}


def test_a_key_added_from_the_shell_names_the_command_and_os_user(monkeypatch, db):
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET))
    monkeypatch.setattr("getpass.getuser", lambda: "deploy")
    call_command("add_api_key", "team", stdout=io.StringIO())
    (event,) = events(audit.KEY_ADDED)
    assert event.actor == "manage.py add_api_key (OS user deploy)" and event.actor_user is None
    assert SECRET not in json.dumps(event.details)


def test_marking_a_key_healthy_is_recorded(root_client):
    key = ApiKey.objects.create(name="team", secret=SECRET, is_healthy=False)
    root_client.post(
        "/admin/generations/apikey/", {"action": "mark_healthy", "_selected_action": [key.pk]}
    )
    (event,) = events(audit.KEY_MARKED_HEALTHY)
    assert event.target == "API key team"


def test_limits_changed_in_admin_and_shell_record_old_and_new(root_client, alice):
    url = f"/admin/auth/user/{alice.pk}/change/"
    form = {
        "username": "alice",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-user": str(alice.pk),
        "limits-0-jobs_per_day": "2",
        "limits-0-monthly_spend": "",
    }
    assert root_client.post(url, form).status_code == 302
    call_command("set_limits", "alice", "--monthly-spend", "25", stdout=io.StringIO())
    call_command("set_limits", "--team", "--monthly-spend", "100", stdout=io.StringIO())
    first, second, team = events(audit.LIMITS_CHANGED)
    assert first.actor == "root (admin)" and first.target == "user alice"
    assert first.details == {"jobs_per_day": [None, 2]}
    assert second.actor.startswith("manage.py set_limits (OS user ")
    assert second.details == {"monthly_spend": [None, "25.00"]}
    assert team.target == "the team" and team.details == {"monthly_spend": [None, "100.00"]}
    assert MemberLimits.objects.get(user=alice).jobs_per_day == 2


def test_saving_limits_unchanged_records_nothing(alice, db):
    call_command("set_limits", "alice", "--jobs-per-day", "3", stdout=io.StringIO())
    call_command("set_limits", "alice", "--jobs-per-day", "3", stdout=io.StringIO())
    assert len(events(audit.LIMITS_CHANGED)) == 1


def test_price_changes_are_recorded_from_the_form_and_the_list(root_client):
    price = Price.objects.get(model_name="kling-v1", mode="std", duration="5")
    url = f"/admin/generations/price/{price.pk}/change/"
    form = {
        "model_name": "kling-v1",
        "mode": "std",
        "duration": "5",
        "usd": "0.15",
        "units": "1",
        "confirmed": "on",
    }
    assert root_client.post(url, form).status_code == 302
    (event,) = events(audit.PRICE_CHANGED)
    assert event.details == {"usd": ["0.130", "0.15"]}
    assert event.target.startswith("price kling-v1 std 5s")


def test_a_member_made_staff_in_admin_or_from_the_shell(root_client, alice, bob, monkeypatch):
    form = {
        "username": "alice",
        "is_active": "on",
        "is_staff": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "limits-TOTAL_FORMS": "0",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
    }
    assert root_client.post(f"/admin/auth/user/{alice.pk}/change/", form).status_code == 302
    monkeypatch.setattr("sys.argv", ["manage.py", "shell"])
    monkeypatch.setattr("getpass.getuser", lambda: "ops")
    bob.is_staff = True
    bob.save()
    by_admin, by_shell = events(audit.MADE_STAFF)
    assert by_admin.actor == "root (admin)" and by_admin.target == "user alice"
    assert by_shell.actor == "manage.py shell (OS user ops)" and by_shell.target == "user bob"
    bob.save()  # still staff: nothing new
    assert len(events(audit.MADE_STAFF)) == 2


def test_a_login_costs_no_staff_look_up(client, alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.post("/accounts/login/", {"username": "alice", "password": "alice-pass"})
    assert response.status_code == 302
    # The login saves last_login only: the staff signal doesn't read the row again.
    assert not [q for q in queries if '"auth_user"."is_staff" FROM' in q["sql"]]
    assert not AuditEvent.objects.exists()


def test_the_trail_is_read_only_in_admin(root_client):
    event = audit.record("someone", audit.KEY_ADDED, "API key x", {"mask": "…abcd"})
    assert root_client.get("/admin/generations/auditevent/").status_code == 200
    assert root_client.get("/admin/generations/auditevent/add/").status_code == 403
    change = root_client.post(
        f"/admin/generations/auditevent/{event.pk}/change/", {"actor": "forged"}
    )
    assert change.status_code == 403
    delete = root_client.post(f"/admin/generations/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    event.refresh_from_db()
    assert event.actor == "someone"

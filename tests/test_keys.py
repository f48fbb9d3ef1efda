"""API keys: encrypted at rest, added from standard input, never shown back."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from generations import lifecycle
from generations.crypto import DecryptionError
from generations.models import ApiKey, Generation, Status
from tests.factories import make_generation

pytestmark = pytest.mark.django_db
SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz0123"


def raw_secret(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM generations_apikey WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_it_stores_the_secret_encrypted(db):
    key = ApiKey.objects.create(name="team", secret=SECRET)
    stored = raw_secret(key.pk)
    assert SECRET not in stored and stored.startswith("gAAAA")  # a Fernet token
    assert ApiKey.objects.get(pk=key.pk).secret == SECRET
    assert key.hint == "…0123"


def test_a_rotated_key_still_reads_old_rows(db, settings):
    key = ApiKey.objects.create(name="team", secret=SECRET)
    settings.FIELD_ENCRYPTION_KEY = (
        f"{Fernet.generate_key().decode()},{settings.FIELD_ENCRYPTION_KEY}"
    )
    assert ApiKey.objects.get(pk=key.pk).secret == SECRET


def test_a_lost_key_fails_loudly_instead_of_leaking_ciphertext(db, settings):
    key = ApiKey.objects.create(name="team", secret=SECRET)
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(DecryptionError):
        ApiKey.objects.get(pk=key.pk).secret  # noqa: B018 (reading it is the test)


# One key that can't be decrypted (a botched FIELD_ENCRYPTION_KEY change) must not stop the
# others (issue 8, finding 7).

UNREADABLE = "sk-lost-abcdefghijklmnopqrstuvwxyz0123"


def unreadable_key(settings, **fields) -> ApiKey:
    """A key saved under a Fernet key that is no longer configured."""
    kept = settings.FIELD_ENCRYPTION_KEY
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    key = ApiKey.objects.create(name="lost", secret=UNREADABLE, **fields)
    settings.FIELD_ENCRYPTION_KEY = kept
    return key


def test_an_unreadable_key_is_marked_and_dispatch_carries_on(cometapi, alice, settings, caplog):
    lost = unreadable_key(settings, concurrency_limit=50)  # the most free slots: tried first
    gens = [make_generation(alice, prompt=f"clip {i}") for i in range(3)]
    assert lifecycle.free_slots() == 55  # counted without decrypting
    lifecycle.dispatch()
    lifecycle.dispatch()  # the jobs the lost key bounced go to the working key
    for gen in gens:
        gen.refresh_from_db()
        assert gen.status == Status.SUBMITTED, gen.wait_reason
        assert gen.api_key.name == "team"
        assert cometapi.create_count(gen.external_task_id) == 1
    lost = ApiKey.objects.get(pk=lost.pk)
    assert not lost.is_healthy and lost.unhealthy_since is not None
    assert "cannot be decrypted with FIELD_ENCRYPTION_KEY" in lost.last_error
    assert UNREADABLE not in lost.last_error + caplog.text


def test_a_poll_pass_reads_the_other_keys_tasks(cometapi, alice, api_key, settings):
    ours, theirs = make_generation(alice), make_generation(alice, prompt="another")
    for gen in (ours, theirs):
        lifecycle.submit(gen.pk)
    lost = unreadable_key(settings)
    Generation.objects.filter(pk=theirs.pk).update(api_key=lost)  # as if made before the change
    Generation.objects.update(next_attempt_at=lifecycle.now())
    assert lifecycle.poll_due() == 2
    ours.refresh_from_db()
    assert ours.poll_count == 1 and ours.status in (Status.SUBMITTED, Status.PROCESSING)
    lost = ApiKey.objects.get(pk=lost.pk)
    assert not lost.is_healthy and "decrypted" in lost.last_error


def test_admin_opens_an_unreadable_key_to_fix_it(client, django_user_model, settings):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    lost = unreadable_key(settings)
    client.force_login(admin)
    listing = client.get("/admin/generations/apikey/")
    assert listing.status_code == 200 and "(cannot be decrypted)" in listing.content.decode()
    assert client.get(f"/admin/generations/apikey/{lost.pk}/change/").status_code == 200
    fixed = "sk-new-abcdefghijklmnopqrstuvwxyz0123"
    response = client.post(
        f"/admin/generations/apikey/{lost.pk}/change/",
        {"name": "lost", "secret": fixed, "is_active": "on", "concurrency_limit": "5"},
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=lost.pk).secret == fixed


def test_add_api_key_reads_standard_input(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    out = io.StringIO()
    call_command("add_api_key", "team-main", "--concurrency", "3", stdout=out)
    key = ApiKey.objects.get(name="team-main")
    assert key.secret == SECRET and key.concurrency_limit == 3
    assert SECRET not in out.getvalue() and "…0123" in out.getvalue()


def test_add_api_key_replaces_and_revives_a_key(monkeypatch):
    ApiKey.objects.create(
        name="team", secret="sk-old-000000000000", is_healthy=False, last_error="1004 expired"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET))
    call_command("add_api_key", "team", stdout=io.StringIO())
    key = ApiKey.objects.get(name="team")
    assert key.secret == SECRET and key.is_healthy and key.last_error == ""


@pytest.mark.parametrize("given", ["", "   \n", "two words", "x" * 501])
def test_add_api_key_refuses_junk(monkeypatch, given):
    monkeypatch.setattr("sys.stdin", io.StringIO(given))
    with pytest.raises(CommandError):
        call_command("add_api_key", "team", stdout=io.StringIO())
    assert not ApiKey.objects.exists()


def test_admin_never_renders_the_secret(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    key = ApiKey.objects.create(name="team", secret=SECRET)
    client.force_login(admin)
    for url in ("/admin/generations/apikey/", f"/admin/generations/apikey/{key.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 200
        assert SECRET not in response.content.decode()


def test_admin_keeps_the_secret_when_the_field_is_left_empty(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    key = ApiKey.objects.create(name="team", secret=SECRET)
    client.force_login(admin)
    response = client.post(
        f"/admin/generations/apikey/{key.pk}/change/",
        {"name": "team", "secret": "", "is_active": "on", "concurrency_limit": "4"},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.secret == SECRET and key.concurrency_limit == 4

"""Issue 8, finding 9: wrong passwords are throttled per username and address, the member
is told when to try again, the admin login too, and the client's address comes from the
proxy's header only when one is configured."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
ADMIN_LOGIN = reverse("admin:login")


@pytest.fixture(autouse=True)
def throttled(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.CLIENT_IP_HEADER = ""


def attempt(client: Client, username: str, password: str, url: str = LOGIN, **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


def test_it_locks_a_username_after_five_failures_and_says_until_when(client, alice, settings):
    settings.TIME_ZONE = "UTC"
    for _ in range(4):
        response = attempt(client, "alice", "wrong")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    before = timezone.now()
    response = attempt(client, "alice", "wrong")
    assert response.status_code == 429
    until = before + timedelta(minutes=15)
    text = response.content.decode()
    assert "Too many failed attempts for “alice” from your address." in text
    assert f"try again at {timezone.localtime(until):%H:%M} UTC" in text
    assert "in about 14\xa0minutes" in text or "in about 15\xa0minutes" in text
    assert 14 * 60 <= int(response["Retry-After"]) <= 15 * 60
    assert 'value="alice"' in text  # the form is there again, name filled in

    # Even the right password is refused until then, and the clock doesn't restart.
    response = attempt(client, "alice", "alice-pass")
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    assert f"{timezone.localtime(until):%H:%M} UTC" in response.content.decode()


def test_the_lock_ends_after_the_cool_off(client, alice):
    for _ in range(5):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "alice-pass").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    response = attempt(client, "alice", "alice-pass")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(alice.pk)


def test_the_lock_is_per_username_and_address(client, alice, bob):
    for _ in range(5):
        attempt(client, "alice", "wrong", REMOTE_ADDR="203.0.113.7")
    assert attempt(client, "alice", "alice-pass", REMOTE_ADDR="203.0.113.7").status_code == 429
    # Bob, behind the same office address, is not locked out by someone guessing Alice's.
    assert attempt(Client(), "bob", "bob-pass", REMOTE_ADDR="203.0.113.7").status_code == 302
    # Alice from home still gets in.
    assert attempt(Client(), "alice", "alice-pass", REMOTE_ADDR="198.51.100.2").status_code == 302


def test_a_success_clears_the_count(client, alice):
    for _ in range(4):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "alice-pass").status_code == 302
    client.logout()
    for _ in range(4):
        assert attempt(client, "alice", "wrong").status_code == 200


def test_the_admin_login_is_throttled_too(client, charlie):
    for _ in range(5):
        response = attempt(client, "charlie", "wrong", ADMIN_LOGIN)
    assert response.status_code == 429
    assert "Too many failed attempts for “charlie”" in response.content.decode()
    assert attempt(client, "charlie", "charlie-pass", ADMIN_LOGIN).status_code == 429


def test_a_forwarded_header_is_ignored_unless_configured(client, alice):
    """Without CLIENT_IP_HEADER anyone could rotate X-Forwarded-For to dodge the lock."""
    for n in range(5):
        attempt(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    assert attempt(client, "alice", "alice-pass", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == (
        429
    )


def test_behind_a_proxy_the_header_names_the_client(client, alice, settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    # The proxy appends the address it saw; what the client sent before it proves nothing.
    for n in range(5):
        attempt(client, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 203.0.113.7", **proxy)
    locked = attempt(
        client, "alice", "alice-pass", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7", **proxy
    )
    assert locked.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    # Another client behind the same proxy is someone else.
    other = attempt(Client(), "alice", "alice-pass", HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy)
    assert other.status_code == 302
    # A garbled header counts against the proxy's own address, not "anything goes".
    for _ in range(5):
        attempt(Client(), "bob", "wrong", HTTP_X_FORWARDED_FOR="not-an-ip", **proxy)
    assert AccessAttempt.objects.filter(username="bob", ip_address="127.0.0.1").exists()


@pytest.mark.parametrize("url", [LOGIN, ADMIN_LOGIN])
@pytest.mark.parametrize("username", ["a" * 300, "é" * 256, "x" * 151])
def test_an_overlong_username_is_refused_with_a_message(client, url, username):
    """Issue 19, finding 2: a 300-character username answered 500 on PostgreSQL (axes wrote
    it into a 255-character column). No member's name is that long (the model takes 150)."""
    response = attempt(client, username, "wrong", url=url)
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert not AccessAttempt.objects.filter(username__startswith=username[:100]).exists()

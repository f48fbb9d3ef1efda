"""Issue 8, finding 10: password reset is offered only when the studio can send mail."""

import re
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from tests.test_settings import ROOT, clean_env

pytestmark = pytest.mark.django_db

RESET_URLS = [
    reverse("password_reset"),
    reverse("password_reset_done"),
    reverse("password_reset_confirm", args=["MQ", "set-password"]),
    reverse("password_reset_complete"),
]


@pytest.fixture
def alice_with_email(alice):
    alice.email = "alice@example.com"
    alice.save()
    return alice


@pytest.mark.parametrize("url", RESET_URLS)
def test_without_mail_the_reset_pages_are_not_there(client, settings, url, mailoutbox):
    settings.PASSWORD_RESET_ENABLED = False
    assert client.get(url).status_code == 404
    assert client.post(url, {"email": "alice@example.com"}).status_code == 404
    assert mailoutbox == []


def test_without_mail_the_login_page_says_to_ask_an_admin(client, settings):
    settings.PASSWORD_RESET_ENABLED = False
    text = client.get(reverse("login")).content.decode()
    assert "Ask an admin of this studio to set a new one." in text
    assert reverse("password_reset") not in text


def test_with_mail_a_member_resets_their_password(client, settings, alice_with_email, mailoutbox):
    settings.PASSWORD_RESET_ENABLED = True
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    login_page = client.get(reverse("login")).content.decode()
    assert f'href="{reverse("password_reset")}"' in login_page

    assert client.get(reverse("password_reset")).status_code == 200
    response = client.post(reverse("password_reset"), {"email": "alice@example.com"})
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    (mail,) = mailoutbox
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+/)", mail.body).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-long-new-pass-42", "new_password2": "a-long-new-pass-42"},
    )
    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    assert client.login(username="alice", password="a-long-new-pass-42")


def settings_in(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Load the real settings in a fresh interpreter with this environment."""
    code = (
        "import kling_site.settings as s; "
        "m = getattr(s, 'MAILERS', {}).get('default', {'BACKEND': 'no.mailer.'}); "
        "o = m.get('OPTIONS', {}); "
        "print(s.PASSWORD_RESET_ENABLED, o.get('port'), o.get('use_tls'), o.get('use_ssl'), "
        "m['BACKEND'].split('.')[-2])"
    )
    environment = clean_env(tmp_path, **env)
    for name in ("EMAIL_HOST", "EMAIL_CONSOLE", "EMAIL_PORT"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_offer_reset_only_with_a_way_to_send_mail(tmp_path):
    debug = settings_in(tmp_path).stdout.split()  # inbox mail on the console, but no reset
    assert debug == ["False", "None", "None", "None", "console"]
    smtp = settings_in(tmp_path, EMAIL_HOST="smtp.example.com").stdout.split()
    assert smtp == ["True", "587", "True", "False", "smtp"]
    ssl = settings_in(tmp_path, EMAIL_HOST="smtp.example.com", EMAIL_PORT="465").stdout.split()
    assert ssl[:4] == ["True", "465", "False", "True"]
    console = settings_in(tmp_path, EMAIL_CONSOLE="1").stdout.split()
    assert console[0] == "True" and console[-1] == "console"
    secrets = {
        "DJANGO_SECRET_KEY": "x" * 50,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    quiet = settings_in(tmp_path, DJANGO_DEBUG="0", **secrets).stdout.split()
    assert quiet == ["False", "None", "None", "None", "mailer"]  # no mail at all
    production = settings_in(
        tmp_path,
        EMAIL_CONSOLE="1",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="x" * 50,
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    assert production.returncode != 0
    assert "EMAIL_CONSOLE=1 is for debug only" in production.stderr

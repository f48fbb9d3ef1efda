"""The pages issue 8's fixes changed, in Chromium, light and dark: each message is shown
where it belongs and announced (role=alert). With KLING_SCREENSHOTS=<dir> each page is also
saved there (docs/img/security-*.png were made so). axe-core checks each of them too."""

import os
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import Page, expect

from generations.galleries import zipslots
from generations.models import Generation, Status
from tests.browser.test_every_page import axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCHEMES = ["light", "dark"]


def shoot(page: Page, name: str, scheme: str) -> None:
    """Each page these tests reach: axe-core finds nothing on it; and its screenshot, asked."""
    assert axe_violations(page) == [], name
    if folder := os.environ.get("KLING_SCREENSHOTS"):
        page.screenshot(path=f"{folder}/security-{name}-{scheme}.png", full_page=True)


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pass")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_locked_out_member_is_told_when_to_try_again(
    page: Page, live_server, alice, settings, scheme
):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.PASSWORD_RESET_ENABLED = False
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.get_by_text("Ask an admin of this studio to set a new one.")).to_be_visible()
    for _ in range(3):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed attempts for “alice” from your address.")
    expect(alert).to_contain_text("try again at")
    expect(page.get_by_label("Username")).to_have_value("alice")
    shoot(page, "login-locked", scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_reset_is_offered_when_mail_is_set_up(page: Page, live_server, alice, settings, scheme):
    settings.PASSWORD_RESET_ENABLED = True
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
    shoot(page, "password-reset", scheme)
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_invisible_character_in_a_prompt_is_named(page: Page, live_server, alice, scheme):
    page.emulate_media(color_scheme=scheme)
    log_in(page, live_server.url, "alice")
    page.get_by_label("Prompt", exact=True).fill("A fox in \u202esnow")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_text("U+202E RIGHT-TO-LEFT OVERRIDE")).to_be_visible()
    assert not Generation.objects.exists()
    shoot(page, "prompt-invisible", scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_date_out_of_range_is_reported(page: Page, live_server, alice, scheme):
    page.emulate_media(color_scheme=scheme)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/mine/?until=9999-12-31")
    expect(page.get_by_role("alert")).to_contain_text(
        "To: Pick a date between 0001-01-02 and 9999-12-29."
    )
    shoot(page, "gallery-date", scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_too_many_zips_at_once_get_a_page_not_a_broken_file(
    page: Page, live_server, alice, settings, scheme
):
    settings.KLING_ZIPS_PER_MEMBER = 2
    gen = Generation.objects.create(
        owner=alice,
        prompt="a fox",
        status=Status.SUCCEEDED,
        model_name="kling-v1",
        mode="std",
        duration="5",
        aspect_ratio="16:9",
    )
    gen.video.save("clip.mp4", ContentFile(b"mp4"))
    page.emulate_media(color_scheme=scheme)
    log_in(page, live_server.url, "alice")
    zipslots.claim(alice), zipslots.claim(alice)  # two downloads running elsewhere
    page.goto(f"{live_server.url}/mine/")
    page.get_by_role("link", name="Download these as zip").click()
    expect(page.get_by_role("heading", name="Your zip downloads are busy")).to_be_visible()
    expect(page.get_by_text("You already have 2 zip downloads running")).to_be_visible()
    shoot(page, "zip-busy", scheme)

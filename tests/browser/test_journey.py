"""A member logs in, submits a prompt, watches the card finish and plays the clip."""

import pytest
from playwright.sync_api import Page, expect

from generations.models import Generation
from generations.simulator.server import Simulator
from tests.stack import running_cluster

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="New video")).to_be_visible()


def test_submit_watch_and_play(page: Page, live_server, alice, api_key):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    with Simulator(speed=4.0, seed=2) as sim, running_cluster(cometapi_base_url=sim.base_url):
        log_in(page, live_server.url, "alice", "alice-pass")
        page.get_by_label("Prompt", exact=True).fill("A lighthouse in a storm, waves crashing")
        page.get_by_role("button", name="Generate").click()

        card = page.locator("article.gen").first
        expect(card).to_be_visible()
        expect(page.get_by_label("Prompt", exact=True)).to_have_value("")  # ready for the next
        expect(card.locator(".badge")).to_have_text("Finished", timeout=60_000)

        card.locator(".tile-open").click()  # the clip opens in the viewer
        video = page.locator("#viewer video")
        expect(video).to_be_visible()
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function(
            "() => document.querySelector('#viewer video').currentTime > 0.2",
            timeout=15_000,
        )
        assert sim.create_count() == 1
        assert Generation.objects.get().video
    assert not [e for e in errors if "Content Security Policy" in e], errors

"""The studio's journeys in Chromium: every parameter reaches CometAPI, remix fills the form,
and a failed clip is edited and retried. Each test keeps an eye on the console for CSP errors."""

import importlib
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from generations.models import Generation, Price, Status
from generations.simulator.server import Simulator
from tests.browser.test_journey import log_in
from tests.stack import running_cluster, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def prices(db):
    """The seeded price table: a transactional test before this one may have flushed it."""
    seeded = importlib.import_module("generations.migrations.0003_seed_prices").PRICES
    for (model_name, mode, duration), (usd, units) in seeded.items():
        Price.objects.get_or_create(
            model_name=model_name,
            mode=mode,
            duration=duration,
            defaults={"usd": Decimal(usd), "units": Decimal(units)},
        )


@pytest.fixture
def console_errors(page: Page):
    errors: list[str] = []
    page.on(
        "console",
        # A missing poster (a 404) is not what this watches for: CSP refusals and script errors.
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield errors
    assert not errors, errors


def test_every_parameter_reaches_cometapi(page: Page, live_server, alice, api_key, console_errors):
    with Simulator(speed=20.0, seed=3) as sim, running_cluster(cometapi_base_url=sim.base_url):
        log_in(page, live_server.url, "alice", "alice-pass")
        form = page.locator("#prompt-form")
        form.get_by_label("Prompt", exact=True).fill("A heron lands on a misty lake")
        expect(form.locator("#prompt-count")).to_have_text("29 / 500")
        form.get_by_label("Model").select_option("kling-v1-6")
        form.get_by_text("Professional", exact=True).click()
        form.get_by_text("10 s", exact=True).click()
        form.get_by_text("Portrait 9:16").click()
        form.get_by_text("More options").click()
        form.get_by_label("Negative prompt").fill("blurry, text")
        form.get_by_label("CFG scale").fill("0.8")
        expect(form.locator("#cfg-value")).to_have_text("0.80")
        expect(form.get_by_label("Down and back")).to_be_disabled()  # v1-6: no camera control
        form.get_by_text("Only me").click()
        expect(form.locator("#estimate-value")).to_have_text("$0.92 · 7 units")
        form.get_by_role("button", name="Generate").click()

        card = page.locator("article.gen").first
        expect(card).to_contain_text("A heron lands on a misty lake")
        expect(card.locator(".chip")).to_have_text("Private")
        expect(form.get_by_label("Prompt", exact=True)).to_be_focused()  # ready for the next
        wait_for(lambda: sim.tasks(), timeout=20, message="the create request")
        body = sim.tasks()[0]["_sim"]["request"]
        gen = Generation.objects.get()
        assert body == {
            "prompt": "A heron lands on a misty lake",
            "negative_prompt": "blurry, text",
            "model_name": "kling-v1-6",
            "mode": "pro",
            "duration": "10",
            "aspect_ratio": "9:16",
            "cfg_scale": 0.8,
            "external_task_id": gen.external_task_id,
        }
        assert gen.visibility == "private"


def test_remix_fills_the_form(page: Page, live_server, alice, bob, console_errors):
    mine = Generation.objects.create(
        owner=alice,
        prompt="Waves on black sand, aerial",
        model_name="kling-v2-master",
        duration="10",
        aspect_ratio="1:1",
        status=Status.CANCELLED,
    )
    Generation.objects.create(
        owner=bob,
        prompt="A paper lantern rises over a river",
        negative_prompt="people",
        model_name="kling-v1",
        mode="std",
        duration="5",
        aspect_ratio="16:9",
        cfg_scale=0.3,
        camera_control={
            "type": "simple",
            "config": {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": -3, "roll": 0, "zoom": 0},
        },
        status=Status.SUCCEEDED,
        video="videos/none.mp4",
    )
    log_in(page, live_server.url, "alice", "alice-pass")
    form = page.locator("#prompt-form")

    # In place, from one's own card: the form is swapped, the page stays.
    page.locator(f"#gen-{mine.public_id}").get_by_role("link", name="Remix").click()
    expect(form.get_by_label("Prompt", exact=True)).to_have_value("Waves on black sand, aerial")
    expect(form.get_by_label("Prompt", exact=True)).to_be_focused()
    expect(form.get_by_label("Model")).to_have_value("kling-v2-master")
    expect(form.get_by_label("Square 1:1")).to_be_checked()
    expect(form.get_by_label("10 s")).to_be_checked()
    expect(form.locator("#mode-none")).to_be_visible()  # the master models have one mode
    expect(form.locator("#cfg-field")).to_be_hidden()
    expect(form.locator("#estimate-value")).to_have_text("$2.64 · 20 units")

    # From a teammate's shared clip in the team gallery: the studio opens with its values.
    page.goto(f"{live_server.url}/gallery/")
    page.get_by_role("link", name="Remix").first.click()
    expect(page).to_have_url(
        f"{live_server.url}/?remix={Generation.objects.get(owner=bob).public_id}#composer"
    )
    expect(form).to_contain_text("bob’s clip")
    expect(form.get_by_label("Prompt", exact=True)).to_have_value(
        "A paper lantern rises over a river"
    )
    expect(form.get_by_label("Negative prompt")).to_have_value("people")
    expect(form.get_by_label("CFG scale")).to_have_value("0.3")
    expect(form.get_by_label("Simple move")).to_be_checked()
    expect(form.get_by_label("Axis")).to_have_value("tilt")
    expect(form.get_by_label("Amount (−10 to 10)")).to_have_value("-3")


def test_a_failed_clip_is_edited_and_retried(
    page: Page, live_server, alice, api_key, console_errors
):
    with Simulator(speed=20.0, seed=5) as sim, running_cluster(cometapi_base_url=sim.base_url):
        log_in(page, live_server.url, "alice", "alice-pass")
        form = page.locator("#prompt-form")
        form.get_by_label("Prompt", exact=True).fill("[fail] A stadium cheering, confetti")
        form.get_by_text("Portrait 9:16").click()
        form.get_by_role("button", name="Generate").click()

        card = page.locator("article.gen").first
        expect(card.locator(".badge")).to_have_text("Failed", timeout=30_000)
        expect(card).to_contain_text("did not pass moderation")
        # The notice reaches the member even when the card is out of sight.
        expect(page.locator("#toasts")).to_contain_text("Failed: “[fail] A stadium cheering")

        card.get_by_role("link", name="Edit and retry").click()
        expect(form).to_contain_text("The last try failed")
        prompt = form.get_by_label("Prompt", exact=True)
        expect(prompt).to_have_value("[fail] A stadium cheering, confetti")
        expect(form.get_by_label("Portrait 9:16")).to_be_checked()
        prompt.fill("A stadium cheering, confetti")
        form.get_by_role("button", name="Generate").click()

        expect(page.locator("article.gen")).to_have_count(2)
        wait_for(lambda: sim.create_count() == 2, timeout=20, message="the second create")
        retried = sim.tasks()[1]["_sim"]["request"]
        assert retried["prompt"] == "A stadium cheering, confetti"
        assert retried["aspect_ratio"] == "9:16"
        assert [g.status for g in Generation.objects.order_by("created_at")][0] == Status.FAILED

"""Issue 12 in Chromium: the clip's page follows its job, Generate on a phone shows the
queued job, "Copy prompt" copies. Rows are moved on directly (no cluster needed)."""

import re

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import Generation, Status
from tests.browser.test_gallery_journeys import log_in
from tests.browser.test_studio_journeys import prices  # noqa: F401 (autouse: the seeded prices)
from tests.factories import make_generation, put

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_clips_page_follows_its_job_to_the_end(page: Page, live_server, alice):
    gen = make_generation(
        alice, status=Status.PROCESSING, task_id="t-9", submitted_at=timezone.now()
    )
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/g/{gen.public_id}/")
    side = page.locator(".detail-side")
    expect(side.get_by_role("button", name="Stop tracking…")).to_be_visible()
    expect(side.locator("dd").filter(has_text="Generating")).to_have_count(1)

    gen.video.save("clip.mp4", ContentFile(b"not really mp4"), save=False)
    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.SUCCEEDED,
        finished_at=timezone.now(),
        video=gen.video.name,
    )
    # Every panel moves on together, without a reload.
    expect(side.locator("dd").filter(has_text="Finished")).to_have_count(1, timeout=10_000)
    expect(side.get_by_role("link", name="Download mp4")).to_be_visible()
    expect(side.get_by_role("button", name="Delete…")).to_be_visible()
    expect(side.get_by_role("button", name="Stop tracking…")).to_have_count(0)
    expect(side.get_by_text("so far")).to_have_count(0)
    expect(page.locator(".detail-media video")).to_have_count(1)


def test_copy_prompt_copies_it(page: Page, live_server, alice):
    gen = make_generation(alice, status=Status.FAILED, prompt="A fox in  the snow")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/g/{gen.public_id}/")
    page.get_by_role("button", name="Copy prompt").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "A fox in  the snow"


def test_generate_on_a_phone_shows_the_queued_job(page: Page, live_server, alice):
    for i in range(3):
        make_generation(alice, status=Status.SUCCEEDED, prompt=f"older clip {i}")
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server.url, "alice")
    page.get_by_label("Prompt", exact=True).fill("A heron on a misty lake")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#my-cards article.gen").first
    expect(card).to_contain_text("A heron on a misty lake")
    expect(card).to_be_in_viewport()


def test_variations_multiply_the_estimate_and_ctrl_enter_submits(page: Page, live_server, alice):
    log_in(page, live_server.url, "alice")
    form = page.locator("#prompt-form")
    form.get_by_label("Model").select_option("kling-v1")
    form.get_by_text("Standard", exact=True).click()
    form.locator("#variations-group").get_by_text("3", exact=True).click()
    expect(form.locator("#estimate-total")).to_have_text("× 3 jobs = $0.39")
    prompt = form.get_by_label("Prompt", exact=True)
    form.get_by_label("One prompt per line").check()
    prompt.fill("A fox\nAn owl")
    expect(form.locator("#estimate-total")).to_have_text("× 6 jobs = $0.78")
    expect(form.locator("#prompt-count")).to_contain_text("2 / 20 prompts")
    prompt.press("Control+Enter")
    expect(page.locator("#my-cards article.gen")).to_have_count(6)
    assert Generation.objects.count() == 6


def finished_clip(owner, prompt: str, minutes_ago: int, **kw) -> Generation:
    gen = make_generation(
        owner,
        prompt=prompt,
        status=Status.SUCCEEDED,
        finished_at=timezone.now(),
        **kw,
    )
    gen.video.save("clip.mp4", ContentFile(b"mp4"), save=False)
    gen.poster.save("poster.jpg", ContentFile(b"jpeg"), save=False)
    gen.created_at = timezone.now() - timezone.timedelta(minutes=minutes_ago)
    gen.save()
    return gen


def test_the_viewer_steps_with_arrow_keys_and_escape_closes(page: Page, live_server, alice):
    older = finished_clip(alice, "a fox, older", 20)
    finished_clip(alice, "an owl", 15)
    newer = finished_clip(alice, "a fox, newer", 10)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/?q=fox")
    page.locator(f"#gen-{newer.public_id} .tile-open").click()
    expect(page).to_have_url(f"{live_server.url}/gallery/view/{newer.public_id}/?q=fox")
    expect(page.locator("#viewer-prompt")).to_have_text("a fox, newer")
    page.keyboard.press("ArrowRight")  # the next clip of this filter: the owl is skipped
    expect(page).to_have_url(f"{live_server.url}/gallery/view/{older.public_id}/?q=fox")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-prompt")).to_have_text("a fox, newer")
    page.keyboard.press("Escape")
    expect(page).to_have_url(f"{live_server.url}/gallery/?q=fox#gen-{newer.public_id}")


def test_filters_apply_as_they_change_and_fold_on_a_phone(page: Page, live_server, alice):
    finished_clip(alice, "a fox", 5, model_name="kling-v1-6")
    finished_clip(alice, "an owl", 5)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    expect(page.get_by_role("button", name="Apply")).to_be_hidden()
    page.get_by_label("Model").select_option("kling-v1-6")
    expect(page).to_have_url(re.compile(r"/gallery/\?model=kling-v1-6"))
    expect(page.locator("#gallery-cards article.gen")).to_have_count(1)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/gallery/")
    expect(page.get_by_label("Model")).to_be_hidden()
    page.get_by_text("Filters", exact=True).click()
    expect(page.get_by_label("Model")).to_be_visible()

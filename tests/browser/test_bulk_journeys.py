"""Several clips at once in Chromium: tick boxes, a shift-click range, the bar with its
count, one confirmation before a change to the lot (none for the zip), and the list it
returns to (filters kept)."""

import re

import pytest
from playwright.sync_api import Page, expect

from generations.models import Generation, Visibility
from tests.browser.test_gallery_journeys import cards, finished, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_shift_click_a_range_then_delete_them_with_one_confirmation(page: Page, live_server, alice):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for i in range(6):
        finished(alice, f"fox {i}")
    finished(alice, "an owl, not a match")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/mine/?q=fox")
    expect(cards(page)).to_have_count(6)
    bar = page.locator("#bulk-form")
    expect(bar).to_be_hidden()  # nothing ticked yet

    boxes = page.locator("input.pick")
    boxes.nth(1).check()
    expect(bar).to_be_visible()
    expect(bar).to_contain_text("1 selected")
    boxes.nth(4).click(modifiers=["Shift"])  # ticks 1 to 4
    expect(bar).to_contain_text("4 selected")
    assert [boxes.nth(i).is_checked() for i in range(6)] == [False, True, True, True, True, False]
    boxes.nth(2).click(modifiers=["Shift"])  # unticks 4 to 2: the range from the last click
    expect(bar).to_contain_text("1 selected")
    boxes.nth(2).check()
    expect(bar).to_contain_text("2 selected")
    assert [boxes.nth(i).is_checked() for i in range(6)] == [False, True, True, False, False, False]
    expect(cards(page).nth(1)).to_have_class(re.compile(r"\bpicked\b"))

    dialogs: list[str] = []

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    # Newest first: the cards are fox 5 … fox 0, so boxes 1 and 2 are fox 4 and fox 3.
    kept_prompts = {"fox 5", "fox 2", "fox 1", "fox 0", "an owl, not a match"}
    bar.get_by_role("button", name="Delete…").click()
    expect(page.locator(".messages")).to_contain_text("Deleted 2 clips.")
    assert dialogs == ["Delete 2 clips and their stored files? This cannot be undone."]
    assert set(Generation.objects.values_list("prompt", flat=True)) == kept_prompts
    expect(page).to_have_url(re.compile(r"/mine/\?q=fox$"))  # the filtered list
    expect(cards(page)).to_have_count(4)
    expect(bar).to_be_hidden()
    assert errors == []


def test_dismissing_the_confirmation_changes_nothing_then_share_and_clear(
    page: Page, live_server, alice
):
    for i in range(3):
        finished(alice, f"heron {i}", visibility=Visibility.PRIVATE)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/mine/")
    boxes = page.locator("input.pick")
    boxes.nth(0).check()
    boxes.nth(2).click(modifiers=["Shift"])
    bar = page.locator("#bulk-form")
    expect(bar).to_contain_text("3 selected")

    page.once("dialog", lambda d: d.dismiss())
    bar.get_by_role("button", name="Share with team").click()
    expect(bar).to_contain_text("3 selected")  # still here, nothing sent
    assert set(Generation.objects.values_list("visibility", flat=True)) == {"private"}

    page.once("dialog", lambda d: d.accept())
    bar.get_by_role("button", name="Share with team").click()
    expect(page.locator(".messages")).to_contain_text("3 clips are now shared with the team.")
    assert set(Generation.objects.values_list("visibility", flat=True)) == {"team"}

    boxes.nth(0).check()
    expect(bar).to_be_visible()
    bar.get_by_role("button", name="Clear").click()
    expect(bar).to_be_hidden()
    assert not boxes.nth(0).is_checked()


def test_zip_of_the_ticked_clips(page: Page, live_server, alice, bob):
    finished(alice, "A lighthouse at night")
    finished(bob, "A shared fox")
    finished(bob, "Not ticked")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    page.get_by_label("Select “A lighthouse at night”").check()
    page.get_by_label("Select “A shared fox”").check()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with page.expect_download() as info:
        page.locator("#bulk-form").get_by_role("button", name="Download zip").click()
    download = info.value
    assert download.suggested_filename.startswith("kling-selection-")
    import zipfile

    with zipfile.ZipFile(download.path()) as zf:
        videos = [n for n in zf.namelist() if n.endswith(".mp4")]
    assert len(videos) == 2
    assert dialogs == []  # a download changes nothing: it doesn't ask first


def test_without_javascript_a_page_confirms(new_page, live_server, alice, bob):
    finished(alice, "mine one")
    finished(bob, "bob's")
    page = new_page(java_script_enabled=False)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/?q=mine")
    bar = page.locator("#bulk-form")
    expect(bar).to_be_visible()  # a plain bar: tick, then choose
    page.get_by_label("Select “mine one”").check()
    bar.get_by_role("button", name="Make private").click()
    expect(page.get_by_role("heading", name="Make private 1 clip?")).to_be_visible()
    page.get_by_role("button", name="Make private 1 clip").click()
    expect(page.locator(".messages")).to_contain_text("1 clip is now private.")
    expect(page).to_have_url(re.compile(r"/gallery/\?q=mine$"))
    assert Generation.objects.get(prompt="mine one").visibility == "private"

"""Picture-first galleries in Chromium (issue 19): tiles packed without gaps, their actions on
hover and keyboard focus, one tick box and Compare from the selection, the search applied as
it is typed, "Add to board" in place; on a 390 px phone, filters that don't move the page."""

import re

import pytest
from playwright.sync_api import Page, expect

from generations.models import BoardItem
from tests.browser.test_gallery_journeys import cards, finished, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_tiles_fill_their_rows_without_gaps(page: Page, live_server, alice):
    for i, shape in enumerate(["16:9", "9:16", "1:1", "16:9", "9:16", "16:9", "1:1", "9:16"] * 2):
        finished(alice, f"clip {i}", aspect_ratio=shape)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    expect(cards(page)).to_have_count(16)
    boxes = page.evaluate(
        """() => {
          const grid = document.getElementById("gallery-cards").getBoundingClientRect();
          const cards = document.getElementById("gallery-cards");
          const gap = parseFloat(getComputedStyle(cards).columnGap);
          const tiles = [...document.querySelectorAll("#gallery-cards article.tile")].map((t) => {
            const b = t.getBoundingClientRect();
            const m = t.querySelector(".gen-media").getBoundingClientRect();
            return {
              top: Math.round(b.top), left: b.left, right: b.right,
              height: b.height, media: m.height,
            };
          });
          return { left: grid.left, right: grid.right, gap, tiles };
        }"""
    )
    rows: dict[int, list[dict]] = {}
    for tile in boxes["tiles"]:
        assert abs(tile["media"] - tile["height"]) < 1, tile  # the picture is the whole tile
        rows.setdefault(tile["top"], []).append(tile)
    assert len(rows) > 1
    for top, row in list(rows.items())[:-1]:  # every full row, edge to edge, one height
        assert abs(row[0]["left"] - boxes["left"]) < 1, top
        assert abs(row[-1]["right"] - boxes["right"]) < 1.5, (top, row[-1], boxes["right"])
        for a, b in zip(row, row[1:], strict=False):
            assert abs(b["left"] - a["right"] - boxes["gap"]) < 1.5, (a, b)
        assert max(t["height"] for t in row) - min(t["height"] for t in row) < 1.5, row


def test_a_tile_shows_its_actions_on_hover_and_keyboard_focus(page: Page, live_server, alice):
    errors = watch_errors(page)
    finished(alice, "A heron in the reeds")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    tile = cards(page).first
    info = tile.locator(".tile-info")
    expect(info).to_have_css("opacity", "0")  # the picture alone
    expect(tile.locator('input[type="checkbox"]')).to_have_count(1)
    tile.hover()
    expect(info).to_have_css("opacity", "1")
    for name in ("Favourite", "Copy prompt"):
        expect(tile.get_by_role("button", name=name)).to_be_visible()
    for name in ("Download", "Add to board", "Remix"):
        expect(tile.get_by_role("link", name=name)).to_be_visible()
    page.mouse.move(0, 0)
    expect(info).to_have_css("opacity", "0")
    tile.locator(".tile-open").focus()  # Tab lands here: the keyboard sees the same
    expect(info).to_have_css("opacity", "1")
    page.keyboard.press("Tab")  # the tick box
    expect(tile.locator(".pick")).to_be_focused()
    expect(tile.locator(".pick")).to_have_css("opacity", "1")
    assert errors == []


def test_compare_works_from_the_selection(page: Page, live_server, alice):
    errors = watch_errors(page)
    for n in (1, 2, 3):
        finished(alice, f"Take {n}")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/mine/")
    bar = page.locator("#bulk-form")
    compare = bar.get_by_role("button", name="Compare")
    page.get_by_label("Select “Take 1”").check()
    expect(compare).to_be_disabled()  # one clip: nothing to compare it with
    page.get_by_label("Select “Take 3”").check()
    expect(compare).to_be_enabled()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    compare.click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    expect(page.locator(".compare-grid video")).to_have_count(2)
    expect(page.locator(".compare-clip").first).to_contain_text("Take 3")  # newest first, as ticked
    page.get_by_role("link", name="Back").click()
    expect(page).to_have_url(f"{live_server.url}/mine/")
    assert dialogs == [] and errors == []


def test_the_search_applies_as_you_type(page: Page, live_server, alice):
    errors = watch_errors(page)
    finished(alice, "A red fox in fresh snow", model_name="kling-v1-6")
    finished(alice, "A fox cub asleep")
    finished(alice, "An owl at dusk")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    page.evaluate("window.samePage = true")
    search = page.get_by_label("Search prompts")
    search.press_sequentially("fox", delay=40)  # no Enter, no leaving the box
    expect(page).to_have_url(f"{live_server.url}/gallery/?q=fox&order=newest")
    expect(cards(page)).to_have_count(2)
    expect(search).to_be_focused()  # still typing: the bar was not redrawn
    expect(page.get_by_role("link", name="Clear filters")).to_be_visible()
    page.get_by_label("Model").select_option("kling-v1-6")
    expect(page).to_have_url(f"{live_server.url}/gallery/?q=fox&model=kling-v1-6&order=newest")
    expect(cards(page)).to_have_count(1)
    assert page.evaluate("window.samePage") is True  # no page load: htmx swapped the results
    # Back loads the list of that address afresh (htmx keeps no copy of the page).
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/gallery/?q=fox&order=newest")
    page.wait_for_function("window.samePage === undefined")
    expect(cards(page)).to_have_count(2)
    expect(page.get_by_label("Search prompts")).to_have_value("fox")
    assert errors == []


def test_the_search_without_javascript_applies_on_enter(new_page, live_server, alice):
    finished(alice, "A red fox in fresh snow")
    finished(alice, "An owl at dusk")
    page = new_page(java_script_enabled=False)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    page.get_by_label("Search prompts").fill("owl")
    page.get_by_label("Search prompts").press("Enter")
    expect(page).to_have_url(re.compile(r"/gallery/\?q=owl&"))
    expect(cards(page)).to_have_count(1)
    expect(page.get_by_role("button", name="Apply")).to_be_visible()


def test_add_to_board_in_place_keeps_the_gallery(page: Page, live_server, alice):
    errors = watch_errors(page)
    clips = [finished(alice, f"Clip number {i}") for i in range(30)]
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/mine/?q=Clip")
    expect(cards(page)).to_have_count(24)
    page.evaluate("window.samePage = true")
    tile = page.locator(f"#gen-{clips[10].public_id}")
    tile.scroll_into_view_if_needed()
    scrolled = page.evaluate("scrollY")
    assert scrolled > 0
    tile.hover()
    tile.get_by_role("link", name="Add to board").click()
    dialog = page.locator("#board-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="Add to a board")).to_be_visible()
    dialog.get_by_label("New board").fill("Picks")
    dialog.get_by_role("button", name="Make it and add the clip").click()
    expect(dialog).to_contain_text("Added to “Picks”.")
    expect(dialog).to_contain_text("already on it")
    assert BoardItem.objects.filter(board__name="Picks", generation=clips[10]).count() == 1
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(f"{live_server.url}/mine/?q=Clip")
    assert page.evaluate("window.samePage") is True
    assert page.evaluate("scrollY") == scrolled  # the place in the list is kept
    assert errors == []


def test_add_to_board_without_javascript_is_a_page(new_page, live_server, alice):
    gen = finished(alice, "A lantern")
    page = new_page(java_script_enabled=False)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    cards(page).first.get_by_role("link", name="Add to board").click()
    expect(page).to_have_url(f"{live_server.url}/g/{gen.public_id}/boards/")
    page.get_by_label("New board").fill("Lanterns")
    page.get_by_role("button", name="Make it and add the clip").click()
    expect(page.locator(".msg")).to_contain_text("Added to “Lanterns”.")


# ---------------------------------------------------------------------------------------
# A 390 px phone


def test_on_a_phone_the_gallery_does_not_move_as_it_loads(new_page, live_server, alice):
    for i, shape in enumerate(["16:9", "9:16", "1:1"] * 4):
        finished(alice, f"clip {i}", aspect_ratio=shape)
    page = new_page(**PHONE)
    log_in(page, live_server.url, "alice")
    page.add_init_script(
        """window.shifts = 0;
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) if (!e.hadRecentInput) window.shifts += e.value;
        }).observe({ type: "layout-shift", buffered: true });"""
    )
    page.goto(f"{live_server.url}/gallery/")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_label("Model")).to_be_hidden()  # folded as drawn
    assert page.evaluate("document.querySelector('details.filters-fold').open") is False
    assert page.evaluate("window.shifts") < 0.01
    # A tile holds its place before its poster arrives.
    heights = page.eval_on_selector_all(
        "#gallery-cards .gen-media", "ms => ms.map(m => m.getBoundingClientRect().height)"
    )
    assert heights and min(heights) > 50
    page.get_by_text("Filters", exact=True).click()
    expect(page.get_by_label("Model")).to_be_visible()

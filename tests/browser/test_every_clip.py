"""Every clip, everywhere: "Copy prompt" and the muted preview on hover or focus, on the
studio page as in the galleries (one script for both: studio.js)."""

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import Page, expect

from generations.simulator.server import clip_bytes
from tests.browser.test_gallery_journeys import finished, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("where", ["/", "/mine/", "/gallery/"])
def test_copy_prompt_and_preview_on_every_list(page: Page, live_server, alice, where):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    gen = finished(alice, "A kite over  the dunes")
    gen.video.save("clip.mp4", ContentFile(clip_bytes("5", "16:9")))  # a real, playable one
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}{where}")
    card = page.locator("article.gen").first
    card.get_by_role("button", name="Copy prompt").click()
    expect(card.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "A kite over  the dunes"

    tile = card.locator(".tile-open")
    preview = tile.locator("video.tile-preview")
    assert preview.get_attribute("src") is None  # nothing loads until asked
    tile.hover()
    expect(tile).to_have_class("tile-open previewing")
    assert preview.get_attribute("src").endswith("/video.mp4")
    assert preview.evaluate("v => v.muted && !v.controls")
    page.mouse.move(0, 0)
    expect(tile).to_have_class("tile-open")
    tile.focus()  # the keyboard gets the same preview
    expect(tile).to_have_class("tile-open previewing")
    expect(preview).to_have_js_property("paused", False)
    assert errors == []


def test_copy_prompt_on_every_page_that_shows_a_clip(page: Page, live_server, alice):
    from generations.models import Board
    from generations.review import boards

    gen = finished(alice, "A lantern on the water")
    other = finished(alice, "A second lantern")
    board = Board.objects.create(owner=alice, name="Lanterns")
    boards.add_to_board(board, gen, alice)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, live_server.url, "alice")
    pages = [
        f"/g/{gen.public_id}/",
        f"/mine/view/{gen.public_id}/",
        f"/gallery/view/{gen.public_id}/",
        f"/boards/{board.public_id}/",
        f"/compare/?g={gen.public_id}&g={other.public_id}",
    ]
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        page.get_by_role("button", name="Copy prompt").first.click()
        expect(page.get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == "A lantern on the water", path

"""A 390 px phone (issue 19): every navigation item in sight (Inbox and its count too), a
portrait card that leaves room for the rest of the studio, two portrait takes side by side."""

import pytest
from playwright.sync_api import expect

from generations.review import notes as review
from tests.browser.test_gallery_journeys import finished, log_in
from tests.browser.test_picture_first import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_on_a_phone_every_navigation_item_is_in_sight(new_page, live_server, alice, bob):
    gen = finished(alice, "A harbour")
    review.add_comment(gen, bob, "Lovely, @alice", 1.0)
    page = new_page(**PHONE)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.locator("#inbox-link .count")).to_be_visible()
    for link in nav.get_by_role("link").all():
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, link.text_content()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390


def test_on_a_phone_a_portrait_card_leaves_room(new_page, live_server, alice):
    finished(alice, "A tall one", aspect_ratio="9:16")
    page = new_page(**PHONE)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/")
    media = page.locator("#my-cards .gen-media").first
    expect(media).to_be_visible()
    assert media.bounding_box()["height"] <= 844 * 0.5 + 1


def test_on_a_phone_compare_shows_two_portrait_takes_side_by_side(new_page, live_server, alice):
    a = finished(alice, "Take 1", aspect_ratio="9:16")
    b = finished(alice, "Take 2", aspect_ratio="9:16")
    page = new_page(**PHONE)
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/compare/?g={a.public_id}&g={b.public_id}")
    first, second = (page.locator(".compare-grid video").nth(i).bounding_box() for i in (0, 1))
    assert abs(first["y"] - second["y"]) < 1  # one row
    assert second["x"] >= first["x"] + first["width"]
    assert second["x"] + second["width"] <= 390

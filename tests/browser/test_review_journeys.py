"""Team review in Chromium, as issue 11 lists it: bob comments at 0:02 on alice's team clip
and rates it 4; alice's unread count goes to 1 without a reload; she opens the inbox, clicks
through and the player seeks to 0:02; a reviewer approves it; the "approved" filter shows
it; bob builds a board of three takes and compares two side by side; alice's private clip
stays invisible to bob everywhere, board and zip URLs included.

Clips are real, playable mp4s (the simulator's encoder), made directly (no cluster)."""

import functools
import re
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.lifecycle.archive import extract_poster
from generations.models import Board, Generation, Status
from generations.review import boards
from generations.simulator.server import clip_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def finished(owner, prompt: str, **kw) -> Generation:
    gen = Generation.objects.create(
        owner=owner,
        prompt=prompt,
        model_name="kling-v1",
        mode="std",
        duration="5",
        aspect_ratio="16:9",
        status=Status.SUCCEEDED,
        finished_at=timezone.now(),
        video_duration=5.1,
        **kw,
    )
    gen.video.save("clip.mp4", ContentFile(clip_bytes("5", "16:9")), save=False)
    gen.poster.save("poster.jpg", ContentFile(poster()), save=False)
    gen.save()
    return gen


@functools.cache
def poster() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        video, jpeg = Path(folder) / "clip.mp4", Path(folder) / "poster.jpg"
        video.write_bytes(clip_bytes("5", "16:9"))
        extract_poster(video, jpeg)
        return jpeg.read_bytes()


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pass")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def player_time(page: Page) -> float:
    return page.eval_on_selector(".detail-media video", "v => v.currentTime")


def test_comment_at_a_moment_inbox_seek_approve_and_filter(
    new_page, live_server, alice, bob, charlie
):
    base = live_server.url
    clip = finished(alice, "A lighthouse in a storm at night")
    finished(alice, "A calm harbour at dawn")
    # get_or_create: transactional tests before this one flush the migration-made group.
    charlie.groups.add(Group.objects.get_or_create(name="Reviewers")[0])

    # Alice has the gallery open; her header polls for the unread count.
    alice_page = new_page()
    alice_errors = watch_errors(alice_page)
    alice_page.clock.install()
    log_in(alice_page, base, "alice")
    alice_page.goto(f"{base}/gallery/")
    inbox_link = alice_page.locator("#inbox-link")
    expect(inbox_link).to_have_text("Inbox")
    alice_page.evaluate("window.sameDocument = true")

    # Bob pins a comment to 0:02 from the player's position, and rates the clip 4.
    bob_page = new_page()
    bob_errors = watch_errors(bob_page)
    log_in(bob_page, base, "bob")
    bob_page.goto(f"{base}/g/{clip.public_id}/")
    bob_page.wait_for_function(
        "() => document.querySelector('.detail-media video').readyState >= 1"
    )
    bob_page.eval_on_selector(".detail-media video", "v => { v.currentTime = 2; }")
    # Its accessible name starts with its text (issue 19: axe's label-in-name).
    pin = bob_page.get_by_role("button", name="at 0:02: pin to the player's moment")
    pin.click()
    expect(bob_page.get_by_label("At (m:ss, optional)")).to_have_value("0:02")
    bob_page.get_by_role("textbox", name="Comment").fill(
        "The beam flickers here, see https://example.com"
    )
    bob_page.evaluate("window.sameDocument = true")  # gone if the page reloads
    bob_page.get_by_role("button", name="Post comment").click()
    comment = bob_page.locator("#comments .comment").first
    expect(comment).to_contain_text("The beam flickers here")
    expect(comment.get_by_role("link", name="https://example.com")).to_be_visible()
    expect(comment.locator("a.moment")).to_have_text("at 0:02")
    # No reload happened: htmx swapped the panel in place.
    assert bob_page.evaluate("window.sameDocument === true")

    # Alice's count goes to 1 on the next poll, without a reload.
    alice_page.clock.fast_forward(25_000)
    expect(inbox_link).to_have_text("Inbox 1 unread")
    assert alice_page.evaluate("window.sameDocument === true")

    bob_page.get_by_role("group", name="Rating").get_by_label("4 stars").check()
    bob_page.get_by_role("button", name="Rate").click()
    expect(bob_page.locator("#rating-summary")).to_contain_text("4.0 average from 1 rating")

    alice_page.clock.fast_forward(25_000)
    expect(inbox_link).to_have_text("Inbox 2 unread")
    alice_page.get_by_role("link", name="Inbox").click()
    expect(alice_page.get_by_role("heading", name="Inbox")).to_be_visible()
    alice_page.get_by_role("link", name="bob commented on your clip").click()
    alice_page.wait_for_function(
        "() => Math.abs(document.querySelector('.detail-media video').currentTime - 2) < 0.05"
    )
    assert abs(player_time(alice_page) - 2) < 0.05
    expect(alice_page.locator(".comment:target")).to_contain_text("The beam flickers here")

    # Clicking a pinned comment seeks too (after moving the player elsewhere).
    alice_page.eval_on_selector(".detail-media video", "v => { v.currentTime = 4; }")
    alice_page.locator("#comments a.moment").first.click()
    alice_page.wait_for_function(
        "() => Math.abs(document.querySelector('.detail-media video').currentTime - 2) < 0.05"
    )
    alice_page.goto(f"{base}/inbox/")
    alice_page.get_by_role("button", name="Mark all read").click()
    expect(alice_page.locator("#inbox-link .count")).to_have_count(0)

    # Charlie (a reviewer) approves it with a note.
    charlie_page = new_page()
    charlie_errors = watch_errors(charlie_page)
    log_in(charlie_page, base, "charlie")
    charlie_page.goto(f"{base}/g/{clip.public_id}/")
    charlie_page.get_by_label("Review state").select_option("approved")
    charlie_page.get_by_label("Note (optional)").fill("Ship it")
    charlie_page.get_by_role("button", name="Set review state").click()
    expect(charlie_page.locator("#review .review-state")).to_contain_text("Approved")
    expect(charlie_page.locator("#review .review-state")).to_contain_text("by charlie")

    # The "approved" filter shows it, and only it.
    charlie_page.goto(f"{base}/gallery/")
    charlie_page.get_by_label("Review").select_option("approved")
    # The filter bar applies a choice as it is made (with JavaScript; Apply without).
    expect(charlie_page).to_have_url(re.compile(r"review=approved"))
    cards = charlie_page.locator("#gallery-cards article.gen")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("A lighthouse in a storm at night")
    expect(cards.first).to_contain_text("Approved")
    expect(cards.first).to_contain_text("4.0")

    for errors in (alice_errors, bob_errors, charlie_errors):
        assert not errors, errors


def test_board_of_three_takes_compare_and_a_private_clip_stays_hidden(
    page: Page, live_server, alice, bob
):
    base = live_server.url
    errors = watch_errors(page)
    takes = [finished(alice, f"Take {n}: a fox in fresh snow") for n in (1, 2, 3)]
    private = finished(alice, "Alice's secret take", visibility="private")
    alice_board = Board.objects.create(owner=alice, name="Alice's foxes")
    boards.add_to_board(alice_board, takes[0], alice)
    boards.add_to_board(alice_board, private, alice)
    alice_private_board = Board.objects.create(owner=alice, name="Hidden", visibility="private")

    log_in(page, base, "bob")
    # The first take from its card's "Add to board", making the board on the way.
    page.goto(f"{base}/gallery/")
    take_1 = page.locator("article.gen", has_text="Take 1")
    take_1.get_by_role("link", name="Add to board").click()
    page.get_by_label("New board").fill("Fox takes")
    page.get_by_role("button", name="Make it and add the clip").click()
    # The others from their pages.
    for take in takes[1:]:
        page.goto(f"{base}/g/{take.public_id}/")
        page.get_by_label("Add to board").select_option(label="Fox takes")
        page.get_by_role("button", name="Add to board").click()
        expect(page.locator(".msg")).to_contain_text("Added to “Fox takes”")
    page.goto(f"{base}/boards/")
    page.get_by_role("link", name="Fox takes").click()
    clips = page.locator(".board-clip")
    expect(clips).to_have_count(3)
    expect(clips.nth(0)).to_contain_text("Take 1")
    # Reorder without JavaScript's help: the buttons post.
    clips.nth(2).get_by_role("button", name="Move up").click()
    expect(page.locator(".board-clip").nth(1)).to_contain_text("Take 3")

    # Compare two of them side by side, in sync.
    page.locator(".board-clip", has_text="Take 1").get_by_label("Compare").check()
    page.locator(".board-clip", has_text="Take 3").get_by_label("Compare").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    videos = page.locator(".compare-grid video")
    expect(videos).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.compare-grid video')].every(v => v.readyState >= 1)"
    )
    scrub = page.get_by_label("Position")
    scrub.fill("500")  # half way
    times = page.eval_on_selector_all(".compare-grid video", "vs => vs.map(v => v.currentTime)")
    assert all(abs(t - times[0]) < 0.05 for t in times) and times[0] > 1.5, times
    page.get_by_role("button", name="Play").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.compare-grid video')].every(v => !v.paused)"
    )
    page.get_by_role("button", name="Pause").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.compare-grid video')].every(v => v.paused)"
    )
    times = page.eval_on_selector_all(".compare-grid video", "vs => vs.map(v => v.currentTime)")
    assert max(times) - min(times) < 0.3, times
    assert not errors, errors

    # Alice's private clip: not in the gallery, not on her team board, not in its zip, not
    # in Compare, its page and file 404; her private board 404s too.
    page.goto(f"{base}/gallery/")
    expect(page.locator("#gallery-cards")).not_to_contain_text("secret")
    page.goto(f"{base}/boards/{alice_board.public_id}/")
    expect(page.locator(".board-clip")).to_have_count(1)
    expect(page.locator("main")).not_to_contain_text("secret")
    zipped = page.request.get(f"{base}/boards/{alice_board.public_id}/clips.zip")
    assert zipped.ok and b"secret" not in zipped.body()
    for url in (
        f"/g/{private.public_id}/",
        f"/g/{private.public_id}/video.mp4",
        f"/boards/{alice_private_board.public_id}/",
        f"/boards/{alice_private_board.public_id}/clips.zip",
    ):
        assert page.request.get(base + url).status == 404, url
    page.goto(f"{base}/compare/?g={takes[0].public_id}&g={private.public_id}")
    expect(page.locator("main")).not_to_contain_text("secret")
    expect(page.locator(".notice")).to_contain_text("can't be found")

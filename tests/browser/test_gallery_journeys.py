"""Gallery journeys in Chromium: filters and search, a star, more cards on scroll, the zip,
and what a second member may and may not see. Finished clips are made directly (no cluster)."""

import json
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import Generation, Status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def finished(owner, prompt: str, **kw) -> Generation:
    params = {
        "model_name": "kling-v1",
        "mode": "std",
        "duration": "5",
        "aspect_ratio": "16:9",
        "status": Status.SUCCEEDED,
        "task_id": f"task-{prompt[:10]}",
        "finished_at": timezone.now(),
    }
    params.update(kw)
    gen = Generation.objects.create(owner=owner, prompt=prompt, **params)
    gen.video.save("clip.mp4", ContentFile(f"mp4 of {prompt}".encode()), save=False)
    gen.poster.save("poster.jpg", ContentFile(b"jpeg"), save=False)
    gen.save()
    return gen


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pass")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def cards(page: Page):
    return page.locator("#gallery-cards article.gen")


def test_filter_search_and_star(page: Page, live_server, alice, bob):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    finished(alice, "A lighthouse in a storm at night")
    finished(bob, "A red fox in fresh snow", model_name="kling-v1-6")
    finished(bob, "A lighthouse keeper drinks tea", model_name="kling-v1-6")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/gallery/")
    expect(cards(page)).to_have_count(3)

    page.get_by_label("Search prompts").fill("lighthouse")
    page.get_by_label("Model").select_option("kling-v1-6")  # filters apply as they change
    # Only the filters in use go into the URL, so it can be shared.
    expect(page).to_have_url(
        f"{live_server.url}/gallery/?q=lighthouse&model=kling-v1-6&order=newest"
    )
    expect(cards(page)).to_have_count(1)
    card = cards(page).first
    expect(card).to_contain_text("A lighthouse keeper drinks tea")
    expect(card).to_contain_text("bob")

    star = card.get_by_role("button", name="Favourite")
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    expect(card.get_by_role("button", name="Favourite")).to_have_attribute("aria-pressed", "true")

    page.get_by_role("link", name="Clear filters").click()
    expect(cards(page)).to_have_count(3)
    page.get_by_label("Favourites only").check()
    expect(cards(page)).to_have_count(1)
    expect(cards(page).first).to_contain_text("A lighthouse keeper drinks tea")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_more_cards_load_on_scroll(page: Page, live_server, alice):
    for i in range(30):
        finished(alice, f"Clip number {i}")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/mine/")
    expect(cards(page)).to_have_count(24)
    page.locator(".more").scroll_into_view_if_needed()
    expect(cards(page)).to_have_count(30)
    expect(page.locator(".more")).to_have_count(0)


def test_zip_download_has_a_correct_manifest(page: Page, live_server, alice, tmp_path):
    fox = finished(alice, "A red fox in fresh snow", negative_prompt="blurry")
    owl = finished(alice, "An owl at dusk", visibility="private", model_name="kling-v1-6")
    Generation.objects.create(owner=alice, prompt="failed", model_name="kling-v1", status="failed")
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/mine/")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download these as zip").click()
    path = tmp_path / "clips.zip"
    info.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        rows = json.loads(zf.read("manifest.json"))
        assert {r["id"] for r in rows} == {str(fox.public_id), str(owl.public_id)}
        fox_row = next(r for r in rows if r["id"] == str(fox.public_id))
        assert fox_row["prompt"] == "A red fox in fresh snow"
        assert fox_row["negative_prompt"] == "blurry" and fox_row["member"] == "alice"
        assert zf.read(fox_row["file"]) == b"mp4 of A red fox in fresh snow"
        assert "manifest.csv" in zf.namelist()


def test_second_member_sees_shared_but_not_private(page: Page, live_server, alice, bob):
    shared = finished(alice, "Shared with everyone: a paper boat")
    private = finished(alice, "Only for alice: a secret garden", visibility="private")
    log_in(page, live_server.url, "bob")
    page.goto(f"{live_server.url}/gallery/")
    expect(cards(page)).to_have_count(1)
    expect(cards(page).first).to_contain_text("a paper boat")
    expect(cards(page).first).to_contain_text("alice")
    expect(page.get_by_text("a secret garden")).to_have_count(0)

    cards(page).first.get_by_role(
        "link", name="Shared with everyone: a paper boat", exact=True
    ).click()
    expect(page).to_have_url(f"{live_server.url}/g/{shared.public_id}/?back=%2Fgallery%2F")
    expect(page.get_by_role("button", name="Delete…")).to_have_count(0)

    base = live_server.url
    assert page.goto(f"{base}/g/{private.public_id}/").status == 404
    assert page.request.get(f"{base}/g/{private.public_id}/video.mp4").status == 404
    assert page.request.get(f"{base}/g/{private.public_id}/poster.jpg").status == 404
    assert page.request.get(f"{base}/g/{shared.public_id}/video.mp4").status == 200

"""The gallery people enjoy (issue 12): tiles, the viewer, one navigation, download names."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Status
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


def clip(owner, prompt: str, minutes_ago: int = 0, **kw) -> Generation:
    gen = make_generation(
        owner,
        prompt=prompt,
        status=Status.SUCCEEDED,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        **kw,
    )
    gen.video.save("c.mp4", ContentFile(b"mp4"), save=False)
    gen.poster.save("p.jpg", ContentFile(b"jpeg"), save=False)
    gen.save()
    return gen


def test_tiles_keep_their_shape_and_show_a_poster_without_controls(alice_client, alice):
    clip(alice, "tall", aspect_ratio="9:16")
    body = alice_client.get(reverse("gallery")).content.decode()
    assert 'class="gen-media ar-916"' in body and 'class="tile-poster"' in body
    assert "controls" not in body.split('id="gallery-cards"')[1]
    assert 'class="tile-preview" muted loop' in body


def test_the_viewer_steps_through_the_filtered_list(alice_client, alice, bob):
    oldest = clip(alice, "a fox one", minutes_ago=30)
    clip(alice, "an owl", minutes_ago=20)  # filtered out
    middle = clip(alice, "a fox two", minutes_ago=10)
    newest = clip(bob, "a fox three", minutes_ago=1)
    view = reverse("gallery-view", args=[middle.public_id])
    body = alice_client.get(view, {"q": "fox"}).content.decode()
    # Newest first: "previous" is the newer clip, "next" the older, both keeping the filter.
    assert f'href="/gallery/view/{newest.public_id}/?q=fox" rel="prev"' in body
    assert f'href="/gallery/view/{oldest.public_id}/?q=fox" rel="next"' in body
    assert f'href="/gallery/?q=fox#gen-{middle.public_id}"' in body  # close: back to the list
    assert "<video" in body and "controls autoplay" in body


def test_the_viewer_at_the_ends_offers_no_step_beyond(alice_client, alice):
    only = clip(alice, "alone")
    body = alice_client.get(reverse("mine-view", args=[only.public_id])).content.decode()
    assert 'rel="prev"' not in body and 'rel="next"' not in body


def test_the_viewer_hides_private_work_of_others(alice_client, bob):
    private = clip(bob, "secret", visibility="private")
    for name in ("gallery-view", "mine-view"):
        assert alice_client.get(reverse(name, args=[private.public_id])).status_code == 404


def test_one_navigation_not_two(alice_client):
    body = alice_client.get(reverse("my-generations")).content.decode()
    assert body.count('href="/gallery/"') == 1 and 'class="tabs"' not in body


def test_filters_fold_as_drawn_and_keep_a_button_without_js(alice_client):
    # Drawn folded (CSS shows them on a wide screen): no script folds them after load, which
    # moved the page on a phone. Open while some are in use.
    body = alice_client.get(reverse("gallery")).content.decode()
    assert '<details class="filters-fold">' in body and "<summary" in body
    assert '<noscript><button class="primary" type="submit">Apply</button></noscript>' in body
    body = alice_client.get(reverse("gallery"), {"q": "fox"}).content.decode()
    assert '<details class="filters-fold" open>' in body


def test_a_single_download_is_named_from_its_prompt(alice_client, alice):
    gen = clip(alice, "A heron lands on a misty lake")
    response = alice_client.get(reverse("generation-video", args=[gen.public_id]), {"download": 1})
    response.close()  # a streamed file: close it, or its handle leaks into later tests
    disposition = response["Content-Disposition"]
    assert "a-heron-lands-on-a-misty-lake" in disposition and disposition.endswith('.mp4"')

"""Picture-first galleries (issue 19): a tile is its picture and one tick box, its actions in
the tile (shown on hover and focus by CSS); Compare works from the selection; filters answer
htmx with the results alone; "Add to board" answers a gallery's dialog in place."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from generations.models import Board, BoardItem, Status
from tests.factories import make_generation
from tests.test_gallery_viewer import clip

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def test_it_draws_each_tile_with_one_tick_box_and_its_actions(alice_client, alice):
    gen = clip(alice, "A heron in the reeds", aspect_ratio="9:16")
    body = alice_client.get(reverse("gallery")).content.decode()
    tile = re.search(r'<article class="tile gen gen-succeeded".*?</article>', body, re.S)[0]
    assert tile.count('type="checkbox"') == 1  # the selection, nothing else
    assert f'name="ids" value="{gen.public_id}" form="bulk-form"' in tile
    assert 'form="compare-form"' not in body and 'id="compare-form"' not in body
    assert 'class="gen-media ar-916"' in tile  # the clip's own shape
    assert f'href="/g/{gen.public_id}/video.mp4?download=1" download' in tile
    boards = reverse("clip-boards", args=[gen.public_id])
    assert f'href="{boards}" hx-get="{boards}" hx-target="#board-dialog-body"' in tile
    assert f'href="/?remix={gen.public_id}#composer"' in tile
    assert 'id="fav-' in tile and "Copy prompt" in tile
    assert '<dialog id="board-dialog"' in body


def test_a_running_tile_says_its_state_and_the_poll_keeps_it_a_tile(alice_client, alice):
    gen = make_generation(alice, prompt="still running", status=Status.PROCESSING)
    body = alice_client.get(reverse("my-generations")).content.decode()
    assert f':{gen.card_version}:pick"' in body
    url = reverse("generation-status", args=[gen.public_id])
    polled = alice_client.get(url, {"pick": "1"}).content.decode()
    assert '<article class="tile gen gen-processing"' in polled
    assert "Generating" in polled
    assert '<article class="card gen' in alice_client.get(url).content.decode()  # the studio's


def test_the_studio_card_has_no_compare_box(alice_client, alice):
    clip(alice, "a finished clip")
    body = alice_client.get(reverse("studio")).content.decode()
    assert "compare-form" not in body and "compare-tick" not in body


def test_compare_from_the_selection_goes_to_compare_in_the_order_ticked(alice_client, alice, bob):
    first, second = clip(alice, "take one"), clip(bob, "take two")
    back = reverse("gallery") + "?q=take"
    response = alice_client.post(
        reverse("gallery-bulk"),
        {"action": "compare", "ids": [str(second.public_id), str(first.public_id)], "back": back},
    )
    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert url.path == reverse("compare")
    query = parse_qs(url.query)
    assert query["g"] == [str(second.public_id), str(first.public_id)]
    assert query["back"] == [back]
    page = alice_client.get(response["Location"]).content.decode()
    assert page.count("<video") == 2


def test_compare_of_one_clip_says_to_pick_more_and_of_an_unseen_one_refuses(
    alice_client, alice, bob
):
    mine = clip(alice, "only one")
    response = alice_client.post(
        reverse("my-generations-bulk"), {"action": "compare", "ids": [str(mine.public_id)]}
    )
    assert "Pick 2 to 4 finished clips" in alice_client.get(response["Location"]).content.decode()
    hidden = clip(bob, "bob's secret", visibility="private")
    response = alice_client.post(
        reverse("gallery-bulk"),
        {"action": "compare", "ids": [str(mine.public_id), str(hidden.public_id)]},
        follow=True,
    )
    assert "be seen by you. Nothing was done." in response.content.decode()
    response = alice_client.post(
        reverse("gallery-bulk"), {"action": "compare", "ids": ["not-a-uuid"]}, follow=True
    )
    assert response.status_code == 200


def test_filters_asked_by_htmx_answer_the_results_alone(alice_client, alice):
    clip(alice, "a red fox")
    clip(alice, "an owl")
    response = alice_client.get(
        reverse("gallery"), {"q": "fox"}, headers=HTMX | {"HX-Target": "gallery-results"}
    )
    body = response.content.decode()
    assert "<html" not in body and 'id="filter-search"' not in body
    assert body.lstrip().startswith('<div id="gallery-results"')
    assert "a red fox" in body and "an owl" not in body
    assert '<input type="hidden" name="back" value="/gallery/?q=fox" form="bulk-form">' in body
    # The filter bar's "Clear filters" follows, out of band.
    assert 'id="filter-actions" hx-swap-oob="true"' in body and "Clear filters" in body
    assert "HX-Target" in response["Vary"]
    # The next page, by htmx, is still just the next tiles.
    page = alice_client.get(reverse("gallery"), {"after": "x"}, headers=HTMX).content.decode()
    assert 'id="gallery-results"' not in page


def test_the_search_applies_as_typed_and_without_javascript_on_enter(alice_client):
    body = alice_client.get(reverse("gallery")).content.decode()
    form = re.search(r'<form class="filters card".*?>', body, re.S)[0]
    assert 'method="get"' in form  # a plain form: Enter or Apply sends it without JavaScript
    trigger = "input changed delay:350ms from:find input[type=search], change, submit"
    assert f'hx-trigger="{trigger}"' in form
    assert 'type="search" name="q"' in body


def test_add_to_board_in_place_answers_the_picker_alone(alice_client, alice):
    gen = clip(alice, "a lantern")
    url = reverse("clip-boards", args=[gen.public_id])
    body = alice_client.get(url, headers=HTMX).content.decode()
    assert "<html" not in body and '<div class="board-picker" id="board-picker">' in body
    assert '<h2 id="board-picker-title">Add to a board</h2>' in body
    assert f'hx-post="{url}" hx-target="#board-picker"' in body

    response = alice_client.post(url, {"new_board": "Lanterns"}, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Added to “Lanterns”." in body and "already on it" in body
    board = Board.objects.get(owner=alice, name="Lanterns")
    assert BoardItem.objects.filter(board=board, generation=gen).count() == 1
    assert list(get_messages(response.wsgi_request)) == []  # said here, not on the next page

    again = alice_client.post(url, {"board": str(board.public_id)}, headers=HTMX)
    assert "It is already on “Lanterns”." in again.content.decode()
    bad = alice_client.post(url, {"board": "nonsense"}, headers=HTMX).content.decode()
    assert 'role="alert">Pick one of your boards' in bad
    blank = alice_client.post(url, {"new_board": "\u200b"}, headers=HTMX)
    assert blank.status_code == 200 and 'role="alert"' in blank.content.decode()


def test_add_to_board_without_javascript_is_still_its_page(alice_client, alice):
    gen = clip(alice, "a lantern")
    url = reverse("clip-boards", args=[gen.public_id])
    body = alice_client.get(url).content.decode()
    assert "<html" in body and '<h1 id="board-picker-title">' in body
    response = alice_client.post(url, {"new_board": "Lanterns", "next": "/gallery/"})
    assert response.status_code == 302 and response["Location"] == "/gallery/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Added to “Lanterns”."]


def test_compare_marks_each_take_with_its_shape(alice_client, alice):
    a = clip(alice, "tall one", aspect_ratio="9:16")
    b = clip(alice, "tall two", aspect_ratio="9:16")
    body = alice_client.get(reverse("compare"), {"g": [a.public_id, b.public_id]}).content.decode()
    assert body.count('<figure class="compare-clip ar-916">') == 2

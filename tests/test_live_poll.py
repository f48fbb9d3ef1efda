"""One poll per page (views.live_cards): an open studio, gallery or clip page asks about all
its live cards in one request per period, gets back only the cards that changed (out of
band), and is told to stop once none is live."""

import json
import re

import pytest
from django.urls import reverse

from generations.models import Generation, Status, Visibility
from tests.factories import make_generation, put

pytestmark = pytest.mark.django_db
LIVE = reverse("live-cards")


def tokens(page: str) -> list[str]:
    """The live tokens a page sends with its poll."""
    return re.findall(
        r'<input type="hidden" form="live-poll" name="live" id="[^"]+" value="([^"]+)"', page
    )


def poll(client, page_tokens: list[str], **extra):
    return client.post(LIVE, {"live": page_tokens, **extra}, headers={"HX-Request": "true"})


def test_a_page_with_twelve_live_cards_has_one_poll(alice_client, alice):
    for i in range(12):
        make_generation(alice, status=Status.PROCESSING, prompt=f"clip {i}")
    make_generation(alice, status=Status.SUCCEEDED, prompt="done")
    page = alice_client.get("/").content.decode()
    assert page.count('hx-trigger="every 2s"') == 1
    assert page.count('id="live-poll"') == 1
    assert len(tokens(page)) == 12  # the finished card sends none


def test_a_page_with_nothing_live_does_not_poll(alice_client, alice):
    make_generation(alice, status=Status.SUCCEEDED)
    page = alice_client.get("/").content.decode()
    assert 'id="live-poll"' in page and "every 2s" not in page


def test_unchanged_cards_answer_204(alice_client, alice):
    for i in range(3):
        make_generation(alice, status=Status.PROCESSING, prompt=f"clip {i}")
    page_tokens = tokens(alice_client.get("/").content.decode())
    assert poll(alice_client, page_tokens).status_code == 204


def test_only_the_changed_card_comes_back_out_of_band(alice_client, alice):
    cards = [make_generation(alice, status=Status.PROCESSING, prompt=f"clip {i}") for i in range(3)]
    page_tokens = tokens(alice_client.get("/").content.decode())
    put(Generation.objects.filter(pk=cards[1].pk), status=Status.SUBMITTED)
    response = poll(alice_client, page_tokens)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("<article") == 1
    assert f'id="gen-{cards[1].public_id}"' in body and 'hx-swap-oob="outerHTML"' in body
    assert f'name="live" id="live-{cards[1].public_id.hex}"' in body  # still live: keeps its token


def test_the_last_card_to_end_stops_the_poll_and_tells_the_owner(alice_client, alice):
    gen = make_generation(alice, status=Status.PROCESSING, prompt="a fox")
    page_tokens = tokens(alice_client.get("/").content.decode())
    put(Generation.objects.filter(pk=gen.pk), status=Status.SUCCEEDED)
    response = poll(alice_client, page_tokens)
    assert response.status_code == 286
    assert 'name="live"' not in response.content.decode()
    finished = json.loads(response["HX-Trigger"])["generationsFinished"]
    assert [(f["id"], f["status"], f["prompt"]) for f in finished] == [
        (str(gen.public_id), "succeeded", "a fox")
    ]


def test_a_card_still_live_keeps_the_poll_going(alice_client, alice):
    ended = make_generation(alice, status=Status.PROCESSING)
    make_generation(alice, status=Status.PROCESSING)
    page_tokens = tokens(alice_client.get("/").content.decode())
    put(Generation.objects.filter(pk=ended.pk), status=Status.FAILED, error_message="no")
    assert poll(alice_client, page_tokens).status_code == 200


def test_a_teammates_clip_ending_tells_nobody_else(client, alice, bob):
    gen = make_generation(alice, status=Status.PROCESSING, visibility=Visibility.TEAM)
    client.force_login(bob)
    put(Generation.objects.filter(pk=gen.pk), status=Status.SUCCEEDED)
    response = poll(client, [f"{gen.public_id.hex}:{gen.card_version}:card"])
    assert response.status_code == 286 and "HX-Trigger" not in response


def test_a_clip_gone_or_made_private_loses_its_token(client, alice, bob):
    gen = make_generation(alice, status=Status.PROCESSING, visibility=Visibility.PRIVATE)
    client.force_login(bob)
    response = poll(client, [f"{gen.public_id.hex}:{gen.card_version}:card"])
    assert response.status_code == 286
    body = response.content.decode()
    assert body == f'<input id="live-{gen.public_id.hex}" hx-swap-oob="delete">'
    assert "clip" not in body and gen.prompt not in body


@pytest.mark.parametrize(
    "raw",
    [
        [],
        ["x"],
        ["not-a-uuid:v:card"],
        ["00000000-0000-0000-0000-000000000000:v:card"],  # dashed: tokens carry the hex
        ["0" * 32 + ":v:other"],
    ],
)
def test_no_or_bad_tokens_stop_the_poll(alice_client, raw):
    assert poll(alice_client, raw).status_code == 286


def test_a_queued_card_comes_back_when_its_place_in_line_moves(alice_client, alice, api_key):
    first = make_generation(alice, prompt="first")
    second = make_generation(alice, prompt="second")
    page_tokens = tokens(alice_client.get("/").content.decode())
    assert poll(alice_client, page_tokens).status_code == 204
    put(Generation.objects.filter(pk=first.pk), status=Status.CANCELLED)
    body = poll(alice_client, page_tokens).content.decode()
    assert f'id="gen-{second.public_id}"' in body and "Next to be sent to Kling." in body


def test_a_gallery_card_keeps_its_tick_box(alice_client, alice):
    gen = make_generation(alice, status=Status.PROCESSING)
    page_tokens = tokens(alice_client.get(reverse("my-generations")).content.decode())
    assert page_tokens == [f"{gen.public_id.hex}:{gen.card_version}:pick"]
    put(Generation.objects.filter(pk=gen.pk), status=Status.SUBMITTED)
    assert 'class="pick"' in poll(alice_client, page_tokens).content.decode()


def test_a_clip_page_gets_its_whole_body(alice_client, alice):
    gen = make_generation(alice, status=Status.SUBMITTED)
    back = reverse("my-generations") + "?state=submitted"
    page = alice_client.get(reverse("generation-detail", args=[gen.public_id]), {"back": back})
    page_tokens = tokens(page.content.decode())
    assert page_tokens == [f"{gen.public_id.hex}:{gen.card_version}:detail"]
    put(Generation.objects.filter(pk=gen.pk), status=Status.PROCESSING)
    body = poll(alice_client, page_tokens, back=back).content.decode()
    assert 'id="detail-body"' in body and 'hx-swap-oob="outerHTML"' in body
    assert "state=submitted" in body  # the way back to the filtered list survives


@pytest.mark.parametrize("n", [1, 30])
def test_the_poll_costs_the_same_queries_for_1_or_30_cards(
    alice_client, alice, n, django_assert_num_queries
):
    cards = [make_generation(alice, status=Status.PROCESSING, prompt=f"c{i}") for i in range(n)]
    queued = make_generation(alice, prompt="waiting")
    live = [f"{g.public_id.hex}:{g.card_version}:card" for g in cards] + [
        f"{queued.public_id.hex}:x:card"
    ]
    put(Generation.objects.filter(pk__in=[g.pk for g in cards]), status=Status.SUBMITTED)
    # session, user, the cards' states, places in line, the changed cards' rows
    with django_assert_num_queries(5):
        assert poll(alice_client, live).status_code == 200
    # Nothing changed since: session, user, the states (no row is loaded)
    unchanged = [
        f"{g.public_id.hex}:{g.live_version}:card"
        for g in Generation.objects.filter(status=Status.SUBMITTED)
    ]
    with django_assert_num_queries(3):
        assert poll(alice_client, unchanged).status_code == 204


def test_a_submit_restarts_the_poll(alice_client):
    body = alice_client.post(
        "/",
        {
            "prompt": "a fox",
            "model_name": "kling-v1",
            "mode": "std",
            "duration": "5",
            "aspect_ratio": "16:9",
            "cfg_scale": "0.5",
            "visibility": "team",
        },
        headers={"HX-Request": "true"},
    ).content.decode()
    assert re.search(r'<div id="live-poll"[^>]*hx-trigger="every 2s"[^>]*hx-swap-oob="true"', body)

"""Boards (make, add, reorder, remove, zip with comments), Compare, and the gallery's review
filters and rating sort; a private clip stays invisible on every one of them."""

import io
import json
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from generations.models import Board, BoardItem, Generation, ReviewState, Status
from generations.review import boards
from generations.review import notes as review
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


def finished(owner, prompt: str, **kw) -> Generation:
    gen = make_generation(owner, status=Status.SUCCEEDED, prompt=prompt, video_duration=5.0, **kw)
    gen.video.save("clip.mp4", ContentFile(f"mp4 of {prompt}".encode()))
    return gen


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


def board_url(name: str, board: Board, *args) -> str:
    return reverse(name, args=[board.public_id, *args])


def order(board: Board) -> list[str]:
    return list(board.items.order_by("position").values_list("generation__prompt", flat=True))


def test_make_a_board_add_reorder_and_remove(bob_client, bob, alice):
    takes = [finished(alice, f"take {i}") for i in range(3)]
    response = bob_client.post(reverse("board-list"), {"name": "Ad takes", "visibility": "team"})
    board = Board.objects.get()
    assert response["Location"] == board_url("board-detail", board)
    for gen in takes:
        add = reverse("clip-boards", args=[gen.public_id])
        assert bob_client.post(add, {"board": str(board.public_id)}).status_code == 302
    bob_client.post(
        reverse("clip-boards", args=[takes[0].public_id]), {"board": str(board.public_id)}
    )
    assert order(board) == ["take 0", "take 1", "take 2"]  # a resent form adds nothing

    items = {i.generation.prompt: i for i in board.items.select_related("generation")}
    bob_client.post(board_url("board-item-move", board, items["take 2"].pk), {"direction": "up"})
    assert order(board) == ["take 0", "take 2", "take 1"]
    bob_client.post(board_url("board-item-move", board, items["take 0"].pk), {"direction": "up"})
    assert order(board) == ["take 0", "take 2", "take 1"]  # already first
    bob_client.post(board_url("board-item-move", board, items["take 0"].pk), {"direction": "down"})
    assert order(board) == ["take 2", "take 0", "take 1"]
    bob_client.post(board_url("board-item-remove", board, items["take 0"].pk))
    assert order(board) == ["take 2", "take 1"]

    page = bob_client.get(board_url("board-detail", board)).content.decode()
    assert page.count("<video") == 2 and "Move up" in page


def test_a_new_board_from_the_clip_page(bob_client, bob, alice):
    gen = finished(alice, "fox")
    bob_client.post(reverse("clip-boards", args=[gen.public_id]), {"new_board": "Foxes"})
    board = Board.objects.get(owner=bob)
    assert board.name == "Foxes" and order(board) == ["fox"]


def test_a_new_board_posted_twice_is_one_board(bob_client, bob, alice):
    """Issue 19, finding 3: a double click on "New board" made two boards."""
    gen, other = finished(alice, "fox"), finished(alice, "owl")
    for _ in range(2):
        bob_client.post(reverse("clip-boards", args=[gen.public_id]), {"new_board": "Foxes"})
    response = bob_client.post(
        reverse("clip-boards", args=[other.public_id]), {"new_board": " Foxes "}, follow=True
    )
    board = Board.objects.get(owner=bob)
    assert board.name == "Foxes" and order(board) == ["fox", "owl"]
    assert "Added to “Foxes”" in response.content.decode()
    # Another member's board of the same name is theirs alone.
    Board.objects.create(owner=alice, name="Foxes")
    bob_client.post(reverse("clip-boards", args=[gen.public_id]), {"new_board": "Foxes"})
    assert Board.objects.filter(owner=bob).count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"board": "not-a-uuid"},
        {"board": "00000000-0000-0000-0000-000000000000"},
        {},
        {"new_board": "x\x07y"},
    ],
)
def test_unknown_or_bad_boards_get_a_message(bob_client, alice, data):
    gen = finished(alice, "fox")
    response = bob_client.post(reverse("clip-boards", args=[gen.public_id]), data, follow=True)
    assert response.status_code == 200
    assert b'class="msg msg-error"' in response.content
    assert not BoardItem.objects.exists()


def test_someone_elses_board_cannot_be_changed(client, alice, bob, charlie):
    gen = finished(alice, "fox")
    team_board = Board.objects.create(owner=alice, name="Alice's")
    boards.add_to_board(team_board, gen, alice)
    item = team_board.items.get()
    client.force_login(bob)
    assert client.get(board_url("board-detail", team_board)).status_code == 200  # may look
    add = reverse("clip-boards", args=[gen.public_id])
    client.post(add, {"board": str(team_board.public_id)})
    for name, args in [
        ("board-item-move", [item.pk]),
        ("board-item-remove", [item.pk]),
        ("board-edit", []),
        ("board-delete", []),
    ]:
        assert (
            client.post(board_url(name, team_board, *args), {"direction": "up"}).status_code == 404
        )
    assert order(team_board) == ["fox"] and Board.objects.filter(pk=team_board.pk).exists()


def test_someone_elses_private_board_is_404_everywhere(client, alice, bob):
    secret = Board.objects.create(owner=alice, name="Secret", visibility="private")
    boards.add_to_board(secret, finished(alice, "fox"), alice)
    client.force_login(bob)
    assert client.get(board_url("board-detail", secret)).status_code == 404
    assert client.get(board_url("board-zip", secret)).status_code == 404
    assert "Secret" not in client.get(reverse("board-list")).content.decode()
    # The gallery's "on board" filter doesn't offer it, and ignores it when asked.
    response = client.get(reverse("gallery"), {"board": str(secret.public_id)})
    assert "Secret" not in response.content.decode()
    assert "On board: Select a valid choice" in response.content.decode()


def zip_of(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_a_private_clip_on_a_team_board_stays_invisible_to_others(client, alice, bob):
    shared = finished(alice, "shared fox")
    private = finished(alice, "private fox", visibility="private")
    board = Board.objects.create(owner=alice, name="Foxes")
    boards.add_to_board(board, shared, alice)
    boards.add_to_board(board, private, alice)
    client.force_login(bob)
    page = client.get(board_url("board-detail", board)).content.decode()
    assert "shared fox" in page and "private fox" not in page
    with zip_of(client.get(board_url("board-zip", board))) as zf:
        names = zf.namelist()
        assert sum(n.endswith(".mp4") for n in names) == 1
        assert "private fox" not in zf.read("comments.json").decode()
        assert "private fox" not in zf.read("manifest.csv").decode()
    compare = client.get(reverse("compare"), {"g": [shared.public_id, private.public_id]})
    assert "private fox" not in compare.content.decode()
    assert "can&#x27;t be found" in compare.content.decode()
    gallery = client.get(reverse("gallery"), {"board": str(board.public_id)}).content.decode()
    assert "shared fox" in gallery and "private fox" not in gallery
    client.force_login(alice)
    assert "private fox" in client.get(board_url("board-detail", board)).content.decode()


def test_the_board_zip_carries_comments_ratings_and_review_state(bob_client, alice, bob, charlie):
    gens = [finished(alice, f"take {i}") for i in range(2)]
    board = Board.objects.create(owner=bob, name="Takes")
    for gen in gens:
        boards.add_to_board(board, gen, bob)
    review.add_comment(gens[1], bob, "too dark at the end", 4.5)
    review.set_rating(gens[1], bob, 4)
    review.set_rating(gens[1], charlie, 5)
    review.set_review(gens[1], charlie, ReviewState.APPROVED, "ship it")
    response = bob_client.get(board_url("board-zip", board))
    assert response["Content-Disposition"].startswith('attachment; filename="kling-board-takes-')
    with zip_of(response) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert [m["prompt"] for m in manifest] == ["take 0", "take 1"]  # the board's order
        assert manifest[1]["review_state"] == "approved"
        assert (manifest[1]["rating_avg"], manifest[1]["rating_count"]) == (4.5, 2)
        assert manifest[1]["comment_count"] == 1 and manifest[0]["rating_avg"] is None
        assert "review_state" in zf.read("manifest.csv").decode().splitlines()[0]
        clips = json.loads(zf.read("comments.json"))
        assert clips[1]["file"] == manifest[1]["file"]
        assert clips[1]["comments"][0] | {"created_at": "", "edited_at": ""} == {
            "author": "bob",
            "body": "too dark at the end",
            "at_seconds": 4.5,
            "created_at": "",
            "edited_at": "",
        }
        assert sorted(r["stars"] for r in clips[1]["ratings"]) == [4, 5]
        assert clips[1]["reviews"][0]["state"] == "approved"
        assert clips[1]["reviews"][0]["note"] == "ship it"


def test_the_gallery_zip_is_unchanged(bob_client, alice):
    finished(alice, "fox")
    with zip_of(bob_client.get(reverse("gallery-zip"))) as zf:
        assert "comments.json" not in zf.namelist()
        assert "review_state" not in zf.read("manifest.csv").decode()


# ---------------------------------------------------------------------------------------
# Compare


def test_compare_two_to_four_clips_in_the_order_given(bob_client, alice):
    gens = [finished(alice, f"take {i}") for i in range(5)]
    response = bob_client.get(reverse("compare"), {"g": [gens[2].public_id, gens[0].public_id]})
    body = response.content.decode()
    assert body.count("<video") == 2 and body.index("take 2") < body.index("take 0")
    assert 'id="compare-scrub"' in body and 'id="compare-play"' in body
    many = bob_client.get(reverse("compare"), {"g": [g.public_id for g in gens]}).content.decode()
    assert many.count("<video") == 4 and "up to 4 clips" in many


@pytest.mark.parametrize("ids", [[], ["nope"], ["00000000-0000-0000-0000-000000000000"]])
def test_compare_with_too_few_clips_says_so(bob_client, alice, ids):
    one = finished(alice, "fox")
    response = bob_client.get(reverse("compare"), {"g": [*ids, one.public_id]})
    assert response.status_code == 200
    assert "Pick 2 to 4 finished clips" in response.content.decode()
    assert "<video" not in response.content.decode()


# ---------------------------------------------------------------------------------------
# Gallery filters and sort


def titles(response) -> list[str]:
    import re

    return re.findall(
        r'id="gen-[0-9a-f-]{36}-prompt"><a href="[^"]+">([^<]+)</a>', response.content.decode()
    )


def test_gallery_review_filters(bob_client, alice, bob, charlie):
    approved = finished(alice, "approved one")
    changes = finished(alice, "needs work")
    finished(alice, "untouched")
    review.set_review(approved, charlie, ReviewState.APPROVED, "")
    review.set_review(changes, charlie, ReviewState.CHANGES, "")
    review.set_rating(approved, bob, 2)
    review.set_rating(changes, bob, 5)
    review.add_comment(changes, bob, "hmm", None)
    gallery = reverse("gallery")
    assert titles(bob_client.get(gallery, {"review": "approved"})) == ["approved one"]
    assert titles(bob_client.get(gallery, {"review": "changes"})) == ["needs work"]
    assert titles(bob_client.get(gallery, {"min_rating": "3"})) == ["needs work"]
    assert titles(bob_client.get(gallery, {"commented": "on"})) == ["needs work"]
    rated = titles(bob_client.get(gallery, {"order": "rating"}))
    assert rated == ["needs work", "approved one", "untouched"]
    page = bob_client.get(gallery, {"min_rating": "6", "review": "great"}).content.decode()
    assert "Some filters were not applied" in page
    assert "Rated at least: Select a valid choice" in page


def test_rating_sort_pages_through_every_clip_once(bob_client, alice, bob, settings):
    from generations.web import PAGE_SIZE

    made = []
    for i in range(30):
        gen = finished(alice, f"clip {i:02d}")
        if i % 3:
            review.set_rating(gen, bob, 1 + i % 5)
        made.append(gen)
    seen: list[str] = []
    url = reverse("gallery") + "?order=rating"
    while url:
        response = bob_client.get(url)
        seen += titles(response)
        nxt = [line for line in response.content.decode().split('"') if "after=" in line]
        url = reverse("gallery") + nxt[0].replace("&amp;", "&") if nxt else ""
    assert sorted(seen) == sorted(g.prompt for g in made) and len(seen) == 30
    assert PAGE_SIZE < 30
    ratings = [Generation.objects.get(prompt=t).rating_avg for t in seen]
    assert ratings == sorted(ratings, reverse=True)


def test_a_mangled_rating_cursor_starts_over(bob_client, alice):
    finished(alice, "fox")
    for cursor in ["x_1_2", "nan_1_2", "1_2", "inf_1_2"]:
        response = bob_client.get(reverse("gallery"), {"order": "rating", "after": cursor})
        assert response.status_code == 200

"""The access rule (generations/access.py): every URL that takes a clip's or a board's id
answers another member 404 for what is not theirs to see, and anonymous visitors the login
page. The URL patterns are walked, not listed: a new URL that skips the access module fails
here."""

import itertools
import uuid
from types import SimpleNamespace

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from generations import access
from generations.models import Board, BoardItem, Comment, Generation, Status, Visibility
from tests.factories import make_generation

pytestmark = pytest.mark.django_db

# Not behind a member's login: authenticated by an unguessable token (tests/test_callback.py).
TOKEN_AUTHENTICATED = {"kling-callback", None}
# A clip's actions that only its owner (and staff) may take: a teammate who may see a team
# clip still gets 404 here.
MANAGE = {"generation-delete", "generation-visibility", "generation-cancel", "generation-retry"}
# A board's actions only its owner may take.
BOARD_EDIT = {"board-edit", "board-delete", "board-item-move", "board-item-remove"}


def _patterns(resolvers=None, prefix=""):
    """(name, route with its prefix, converters) of every URL pattern, included ones too."""
    for entry in resolvers if resolvers is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield entry.name, prefix + str(entry.pattern), entry.pattern.converters


def _id_patterns(kind: str) -> list[tuple[str, str]]:
    """Every named pattern taking a `public_id`, of clips (kind "clip") or boards."""
    found = []
    for name, route, converters in _patterns():
        if "public_id" not in converters or name in TOKEN_AUTHENTICATED:
            continue
        is_board = route.startswith("boards/")
        if (kind == "board") == is_board:
            found.append((name, route))
    return found


def _url(name: str, public_id, pk: int = 1) -> str:
    kwargs = {"public_id": public_id}
    if "pk" in dict(_patterns_by_name()[name]):
        kwargs["pk"] = pk
    return reverse(name, kwargs=kwargs)


def _patterns_by_name() -> dict:
    return {name: converters.items() for name, _route, converters in _patterns()}


def _answer(client, url: str):
    """The view's answer to the method it takes (GET, else POST)."""
    response = client.get(url)
    if response.status_code == 405:
        response = client.post(url, {"next": "/", "body": "hi", "on": "1"})
    return response


def test_the_walk_finds_the_urls_it_must_check() -> None:
    clips = {name for name, _ in _id_patterns("clip")}
    boards = {name for name, _ in _id_patterns("board")}
    assert {"generation-detail", "generation-video", "comment-create", "mine-view"} <= clips
    assert clips >= MANAGE
    assert {"board-detail", "board-zip"} | BOARD_EDIT <= boards


@pytest.mark.parametrize("name", [name for name, _ in _id_patterns("clip")])
def test_another_member_gets_404_for_a_private_clip(name, alice, bob, client) -> None:
    gen = make_generation(alice, visibility=Visibility.PRIVATE, status=Status.SUCCEEDED)
    comment = Comment.objects.create(generation=gen, author=alice, body="mine")
    client.force_login(bob)
    assert _answer(client, _url(name, gen.public_id, comment.pk)).status_code == 404
    assert Generation.objects.filter(pk=gen.pk, visibility=Visibility.PRIVATE).exists()


@pytest.mark.parametrize("name", sorted(MANAGE))
def test_a_teammate_gets_404_for_what_only_the_owner_may_do(name, alice, bob, client) -> None:
    gen = make_generation(alice, visibility=Visibility.TEAM, status=Status.QUEUED)
    client.force_login(bob)
    assert _answer(client, _url(name, gen.public_id)).status_code == 404
    gen.refresh_from_db()
    assert (gen.status, gen.visibility) == (Status.QUEUED, Visibility.TEAM)


@pytest.mark.parametrize("name", [name for name, _ in _id_patterns("board")])
def test_another_member_gets_404_for_a_private_board(name, alice, bob, client) -> None:
    board = Board.objects.create(owner=alice, name="Mine", visibility=Visibility.PRIVATE)
    gen = make_generation(alice, visibility=Visibility.TEAM, status=Status.SUCCEEDED)
    item = BoardItem.objects.create(board=board, generation=gen, position=1)
    client.force_login(bob)
    assert _answer(client, _url(name, board.public_id, item.pk)).status_code == 404
    assert Board.objects.filter(pk=board.pk).exists()


@pytest.mark.parametrize("name", sorted(BOARD_EDIT))
def test_a_teammate_gets_404_for_changing_a_team_board(name, alice, bob, client) -> None:
    board = Board.objects.create(owner=alice, name="Ours", visibility=Visibility.TEAM)
    gen = make_generation(alice, visibility=Visibility.TEAM, status=Status.SUCCEEDED)
    item = BoardItem.objects.create(board=board, generation=gen, position=1)
    client.force_login(bob)
    assert _answer(client, _url(name, board.public_id, item.pk)).status_code == 404
    assert BoardItem.objects.filter(pk=item.pk).exists()


@pytest.mark.parametrize("name", [name for name, _ in _id_patterns("clip") + _id_patterns("board")])
def test_anonymous_gets_the_login_page(name, alice, client) -> None:
    response = _answer(client, _url(name, uuid.uuid4()))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


# ---------------------------------------------------------------------------------------
# The rule's forms agree with each other


def test_the_condition_and_the_predicates_agree(alice, bob, django_user_model) -> None:
    staff = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    for owner, visibility in itertools.product((alice, bob), Visibility.values):
        make_generation(owner, visibility=visibility)
        Board.objects.create(owner=owner, name=f"{owner}-{visibility}", visibility=visibility)
    for viewer in (alice, bob, staff):
        for gen in Generation.objects.all():
            listed = Generation.objects.visible_to(viewer).filter(pk=gen.pk).exists()
            managed = Generation.objects.managed_by(viewer).filter(pk=gen.pk).exists()
            assert listed == access.can_see(viewer, gen)
            assert managed == access.can_manage(viewer, gen)
            members = set(access.members_who_can_see(gen).values_list("pk", flat=True))
            assert (viewer.pk in members) == access.can_see(viewer, gen)
        for board in Board.objects.all():
            assert Board.objects.visible_to(viewer).filter(
                pk=board.pk
            ).exists() == access.can_see_board(viewer, board)
            assert Board.objects.editable_by(viewer).filter(
                pk=board.pk
            ).exists() == access.can_edit_board(viewer, board)


def test_the_rule_through_a_relation_keeps_rows_without_a_clip(alice, bob, django_user_model):
    """`clip_rule(..., via=)` ORed with "no clip at all" (as the inbox asks) keeps staff's
    view whole: an empty Q would have swallowed the OR."""
    staff = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    gen = make_generation(alice, visibility=Visibility.PRIVATE)
    Comment.objects.create(generation=gen, author=alice, body="hi")
    for viewer, expected in ((alice, 1), (bob, 0), (staff, 1)):
        rule = access.clip_rule(viewer, via="generation__")
        assert Comment.objects.filter(rule).count() == expected


def test_can_see_reads_values_as_well_as_rows(alice, bob) -> None:
    row = SimpleNamespace(owner_id=alice.pk, visibility=Visibility.PRIVATE)
    assert access.can_see(alice, row) and not access.can_see(bob, row)

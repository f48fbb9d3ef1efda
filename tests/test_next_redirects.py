"""A form's `next` (where it goes back to) is followed only when it is a path on this site:
a bare word (which Django's `redirect()` takes for a view name), another host, an emoji or a
NUL byte answers a redirect to a local page, never a 500 (generations/web.py)."""

import pytest
from django.urls import reverse

from generations.models import Board, Status, Visibility
from generations.web import is_local_path
from tests.factories import make_generation

pytestmark = pytest.mark.django_db

BAD_NEXT = ["x", "//evil.example", "😀", "a\x00b", "https://evil.example/", "/\\evil.example"]


def _local(location: str) -> bool:
    return location.startswith("/") and not location.startswith(("//", "/\\"))


@pytest.fixture
def clip(alice):
    return make_generation(alice, status=Status.SUCCEEDED, visibility=Visibility.TEAM)


def _post(client, url: str, data: dict) -> str:
    response = client.post(url, data)
    assert response.status_code == 302, response.status_code
    return response["Location"]


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_favourite(bad, alice_client, clip) -> None:
    url = reverse("generation-favourite", args=[clip.public_id])
    location = _post(alice_client, url, {"on": "1", "next": bad})
    assert location == reverse("generation-detail", args=[clip.public_id])


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_visibility(bad, alice_client, clip) -> None:
    url = reverse("generation-visibility", args=[clip.public_id])
    location = _post(alice_client, url, {"visibility": "private", "next": bad})
    assert location == reverse("studio")
    clip.refresh_from_db()
    assert clip.visibility == Visibility.PRIVATE


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_cancel(bad, alice, alice_client) -> None:
    gen = make_generation(alice, status=Status.QUEUED)
    location = _post(
        alice_client, reverse("generation-cancel", args=[gen.public_id]), {"next": bad}
    )
    assert location == reverse("studio")
    gen.refresh_from_db()
    assert gen.status == Status.CANCELLED


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_add_to_board(bad, alice, alice_client, clip) -> None:
    board = Board.objects.create(owner=alice, name="Picks")
    url = reverse("clip-boards", args=[clip.public_id])
    location = _post(alice_client, url, {"board": str(board.public_id), "next": bad})
    assert location == reverse("generation-detail", args=[clip.public_id])
    assert board.items.filter(generation=clip).exists()


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_log_in(bad, alice, client) -> None:
    url = reverse("login")
    location = _post(client, url, {"username": "alice", "password": "alice-pass", "next": bad})
    assert _local(location) and location == "/"


def test_a_local_next_is_followed(alice_client, clip) -> None:
    url = reverse("generation-favourite", args=[clip.public_id])
    location = _post(alice_client, url, {"on": "1", "next": "/mine/?state=succeeded#x"})
    assert location == "/mine/?state=succeeded#x"


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("/", True),
        ("/g/abc/?back=%2Fmine%2F", True),
        ("", False),
        (None, False),
        ("x", False),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("/a\x00b", False),
        ("/a\nb", False),
        ("😀", False),
    ],
)
def test_is_local_path(url, local) -> None:
    assert is_local_path(url) is local

"""One member cannot see another's private generation or its file; staff can."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from generations.models import Generation, Status
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_clip(alice):
    gen = make_generation(alice, prompt="secret", visibility="private", status=Status.SUCCEEDED)
    gen.video.save("clip.mp4", ContentFile(b"0123456789" * 100))
    gen.poster.save("poster.jpg", ContentFile(b"jpeg"))
    return gen


@pytest.mark.parametrize(
    "name", ["generation-detail", "generation-status", "generation-video", "generation-poster"]
)
def test_it_hides_private_work_from_other_members(client, bob, private_clip, name):
    client.force_login(bob)
    assert client.get(reverse(name, args=[private_clip.public_id])).status_code == 404


@pytest.mark.parametrize("name", ["generation-visibility", "generation-cancel"])
def test_it_refuses_changes_by_other_members(client, bob, private_clip, name):
    client.force_login(bob)
    response = client.post(reverse(name, args=[private_clip.public_id]), {"visibility": "team"})
    assert response.status_code == 404
    private_clip.refresh_from_db()
    assert private_clip.visibility == "private"


def test_team_members_see_shared_work_but_cannot_change_it(client, bob, private_clip):
    Generation.objects.filter(pk=private_clip.pk).update(visibility="team")
    client.force_login(bob)
    assert (
        client.get(reverse("generation-detail", args=[private_clip.public_id])).status_code == 200
    )
    assert "secret" in client.get(reverse("gallery")).content.decode()
    url = reverse("generation-visibility", args=[private_clip.public_id])
    assert client.post(url, {"visibility": "private"}).status_code == 404


def test_private_work_stays_out_of_the_team_gallery(client, bob, private_clip):
    client.force_login(bob)
    assert "secret" not in client.get(reverse("gallery")).content.decode()


def test_staff_may_see_private_work(client, charlie, private_clip):
    client.force_login(charlie)
    response = client.get(reverse("generation-video", args=[private_clip.public_id]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content)


def test_anonymous_users_get_the_login_page(client, private_clip):
    response = client.get(reverse("generation-video", args=[private_clip.public_id]))
    assert response.status_code == 302


def body(response) -> bytes:
    """Read a streamed answer whole (which also closes its file, as a server would)."""
    return b"".join(response.streaming_content)


def test_video_answers_range_requests(client, alice, private_clip):
    client.force_login(alice)
    url = reverse("generation-video", args=[private_clip.public_id])
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert body(whole) == b"0123456789" * 100

    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part["Content-Range"] == "bytes 10-19/1000"
    assert body(part) == b"0123456789"

    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and body(tail) == b"56789"

    open_ended = client.get(url, headers={"Range": "bytes=995-"})
    assert body(open_ended) == b"56789"

    assert client.get(url, headers={"Range": "bytes=5000-"}).status_code == 416
    junk = client.get(url, headers={"Range": "bytes=junk"})
    assert junk.status_code == 200 and len(body(junk)) == 1000

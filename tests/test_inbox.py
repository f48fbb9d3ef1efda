"""The inbox: what gets a notification, the header's unread count and its poll, the page,
mark all read, and email (off by default)."""

import pytest
from django.core import mail
from django.urls import reverse

from generations.models import Board, InboxPreference, Notification, ReviewState, Status
from generations.review import boards
from generations.review import notes as review
from tests.factories import make_generation

pytestmark = pytest.mark.django_db
UNREAD = reverse("inbox-unread")


@pytest.fixture
def clip(alice):
    return make_generation(alice, status=Status.SUCCEEDED, video_duration=5.0, prompt="a fox")


def test_every_kind_of_event_reaches_the_owner_with_a_link(alice_client, alice, bob, clip):
    comment = review.add_comment(clip, bob, "pinned", 2.0)
    review.set_rating(clip, bob, 4)
    review.set_review(clip, bob, ReviewState.APPROVED, "")
    board = Board.objects.create(owner=bob, name="Takes")
    boards.add_to_board(board, clip, bob)
    page = alice_client.get(reverse("inbox")).content.decode()
    detail = reverse("generation-detail", args=[clip.public_id])
    assert f'href="{detail}?t=2#comment-{comment.pk}"' in page
    assert "bob commented on your clip “a fox”" in page
    assert "bob rated your clip “a fox” 4 stars" in page
    assert "bob reviewed your clip “a fox”: Approved" in page
    assert "bob added your clip “a fox” to the board “Takes”" in page
    assert page.count('class="inbox-item unread"') == 4


def test_a_private_board_of_someone_else_tells_nobody(alice, bob, clip):
    board = Board.objects.create(owner=bob, name="Secret", visibility="private")
    boards.add_to_board(board, clip, bob)
    assert not Notification.objects.exists()


def test_the_header_shows_the_count_and_the_poll_answers_204_while_it_holds(
    alice_client, alice, bob, clip
):
    page = alice_client.get(reverse("gallery")).content.decode()
    assert f'hx-get="{UNREAD}?n=0"' in page and 'hx-trigger="inboxPoll"' in page
    assert alice_client.get(UNREAD, {"n": "0"}).status_code == 204
    review.add_comment(clip, bob, "hello", None)
    changed = alice_client.get(UNREAD, {"n": "0"})
    assert changed.status_code == 200
    body = changed.content.decode()
    assert '<span class="count">1<span class="visually-hidden"> unread</span></span>' in body
    assert f'hx-get="{UNREAD}?n=1"' in body
    assert alice_client.get(UNREAD, {"n": "1"}).status_code == 204


def test_mark_all_read(alice_client, alice, bob, clip):
    review.add_comment(clip, bob, "hello", None)
    review.set_rating(clip, bob, 2)
    assert alice_client.get(UNREAD).content.decode().count('class="count"') == 1
    response = alice_client.post(reverse("inbox-mark-read"))
    assert response.status_code == 302
    assert not Notification.objects.filter(read_at=None).exists()
    assert alice_client.get(UNREAD, {"n": "0"}).status_code == 204


def test_mark_all_read_is_a_post(alice_client):
    assert alice_client.get(reverse("inbox-mark-read")).status_code == 405


def test_a_clip_made_private_drops_out_of_a_mentioned_members_inbox(client, alice, bob, clip):
    review.add_comment(clip, alice, "@bob what do you think?", None)
    client.force_login(bob)
    assert "a fox" in client.get(reverse("inbox")).content.decode()
    clip.visibility = "private"
    clip.save()
    assert "a fox" not in client.get(reverse("inbox")).content.decode()
    assert client.get(UNREAD, {"n": "0"}).status_code == 204


def test_email_is_off_by_default_and_on_when_the_member_asks(
    alice_client, alice, bob, clip, django_capture_on_commit_callbacks
):
    alice.email = "alice@example.com"
    alice.save()
    review.add_comment(clip, bob, "first", None)
    assert mail.outbox == []
    alice_client.post(reverse("inbox-preferences"), {"email": "on"})
    assert InboxPreference.objects.get(member=alice).email
    with django_capture_on_commit_callbacks(execute=True):
        review.add_comment(clip, bob, "second, with a link", 1.0)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    assert "bob commented on your clip" in message.subject
    assert "second, with a link" in message.body and "?t=1#comment-" in message.body
    alice_client.post(reverse("inbox-preferences"), {})
    assert not InboxPreference.objects.get(member=alice).email


def test_without_a_mail_server_email_is_not_offered(alice_client, alice, bob, clip, settings):
    settings.MAILERS = {}
    alice.email = "alice@example.com"
    alice.save()
    InboxPreference.objects.create(member=alice, email=True)
    review.add_comment(clip, bob, "hello", None)
    assert mail.outbox == []
    assert "This server sends no email" in alice_client.get(reverse("inbox")).content.decode()

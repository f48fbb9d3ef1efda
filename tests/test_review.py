"""Team review on a clip's page: comments (pinned, mentions, edit, delete), ratings and review
states, with and without htmx, and every bad input the issue lists (Django test client)."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from generations.models import (
    COMMENT_MAX,
    Comment,
    Generation,
    Notification,
    Rating,
    Review,
    ReviewState,
    Status,
    Verb,
)
from generations.review import notes as review
from tests.factories import make_generation

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def clip(alice) -> Generation:
    return make_generation(alice, status=Status.SUCCEEDED, video_duration=5.1, prompt="a fox")


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def reviewer(bob):
    bob.groups.add(Group.objects.get(name=review.REVIEWERS_GROUP))
    return bob


def url(name: str, gen: Generation, *args) -> str:
    return reverse(name, args=[gen.public_id, *args])


def test_the_reviewers_group_exists_after_migrating():
    assert Group.objects.filter(name="Reviewers").exists()


# ---------------------------------------------------------------------------------------
# Comments


def test_it_posts_a_pinned_comment_without_js_and_tells_the_owner(bob_client, clip):
    response = bob_client.post(url("comment-create", clip), {"comment": "Nice <b>", "at": "0:02"})
    comment = Comment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{url('generation-detail', clip)}#comment-{comment.pk}"
    assert (comment.body, comment.at_seconds) == ("Nice <b>", 2.0)
    clip.refresh_from_db()
    assert clip.comment_count == 1
    note = Notification.objects.get()
    assert (note.recipient, note.verb, note.comment) == (clip.owner, Verb.COMMENTED, comment)

    page = bob_client.get(url("generation-detail", clip))
    assert b"Nice &lt;b&gt;" in page.content  # escaped
    assert b'data-seek="2"' in page.content and b"at 0:02" in page.content


def test_the_comment_box_is_a_labelled_textarea(bob_client, clip):
    page = bob_client.get(url("generation-detail", clip)).content.decode()
    assert '<label for="id_comment">Comment</label>' in page
    assert '<textarea name="comment" id="id_comment"' in page


def test_with_htmx_the_answer_is_the_comments_panel(bob_client, clip):
    response = bob_client.post(url("comment-create", clip), {"comment": "hi"}, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card comments" id="comments"')
    assert "<html" not in body and "hi" in body


def test_links_become_clickable_and_mentions_tell_the_member(bob_client, clip, charlie):
    text = "see https://example.com/x?a=1&b=<2> and @charlie @nobody mail a@b.c"
    bob_client.post(url("comment-create", clip), {"comment": text})
    page = bob_client.get(url("generation-detail", clip)).content.decode()
    assert '<a href="https://example.com/x?a=1&amp;b=" rel="nofollow">' in page
    assert '<span class="mention">@charlie</span>' in page
    assert "@nobody" in page and '<span class="mention">@nobody' not in page
    verbs = set(Notification.objects.values_list("recipient__username", "verb"))
    assert verbs == {("charlie", Verb.MENTIONED), ("alice", Verb.COMMENTED)}


def test_a_mentioned_owner_hears_once(bob_client, clip):
    bob_client.post(url("comment-create", clip), {"comment": "@alice look"})
    assert list(Notification.objects.values_list("verb", flat=True)) == [Verb.MENTIONED]


def test_own_actions_make_no_notification(alice_client, clip):
    alice_client.post(url("comment-create", clip), {"comment": "mine @alice"})
    alice_client.post(url("rating-set", clip), {"rating": "5"})
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"comment": ""}, "the comment is empty"),
        ({"comment": "   "}, "the comment is empty"),
        ({"comment": "x" * 5000}, f"at most {COMMENT_MAX} characters (this one has 5000)"),
        ({"comment": "hi\x00there"}, "control character (U+0000)"),
        ({"comment": "hi\u202eereht"}, "control character (U+202E RIGHT-TO-LEFT OVERRIDE)"),
        ({"comment": "hi", "at": "0:09"}, "The clip is only 0:05 long"),
        ({"comment": "hi", "at": "soon"}, "Write the moment as m:ss"),
        ({"comment": "hi", "at": "-1"}, "Write the moment as m:ss"),
        ({"comment": "hi", "at": "nan"}, "Write the moment as m:ss"),
        ({"comment": "hi", "at": "0:75"}, "Write the moment as m:ss"),
    ],
)
def test_bad_comments_get_a_clear_message_and_keep_the_text(bob_client, clip, data, message):
    response = bob_client.post(url("comment-create", clip), data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Comment.objects.exists()
    if data["comment"].strip() and len(data["comment"]) < 100 and "\x00" not in data["comment"]:
        assert data["comment"] in response.content.decode()  # nothing typed is lost
    htmx = bob_client.post(url("comment-create", clip), data, headers=HTMX)
    assert htmx.status_code == 200 and message in htmx.content.decode()


def test_a_multi_line_comment_and_tabs_are_fine(bob_client, clip):
    bob_client.post(url("comment-create", clip), {"comment": "line 1\r\n\tline 2"})
    assert Comment.objects.get().body == "line 1\n\tline 2"


def test_authors_edit_their_own_and_nobody_else_can(client, bob, charlie, clip):
    comment = review.add_comment(clip, bob, "first", None)
    edit = url("comment-edit", clip, comment.pk)
    client.force_login(charlie)  # staff, but not the author
    assert client.get(edit).status_code == 404
    assert client.post(edit, {"comment": "hijack"}).status_code == 404
    client.force_login(bob)
    assert client.get(edit).status_code == 200
    assert client.get(edit, headers=HTMX).content.decode().lstrip().startswith("<li")
    response = client.post(edit, {"comment": "second", "at": "1.5"})
    assert response.status_code == 302
    comment.refresh_from_db()
    assert (comment.body, comment.at_seconds) == ("second", 1.5)
    assert comment.edited_at is not None
    assert client.post(edit, {"comment": ""}).status_code == 422


def test_authors_delete_their_own_staff_remove_any_others_cannot(client, alice, bob, charlie, clip):
    first = review.add_comment(clip, bob, "one", None)
    second = review.add_comment(clip, bob, "two", None)
    client.force_login(alice)  # the clip's owner is no moderator
    assert client.post(url("comment-delete", clip, first.pk)).status_code == 404
    client.force_login(bob)
    assert client.post(url("comment-delete", clip, first.pk)).status_code == 302
    client.force_login(charlie)
    response = client.post(url("comment-delete", clip, second.pk), headers=HTMX)
    assert response.status_code == 200 and "No comments yet" in response.content.decode()
    clip.refresh_from_db()
    assert clip.comment_count == 0 and not Comment.objects.exists()


def test_a_comment_of_another_clip_is_not_found_through_this_one(bob_client, bob, alice, clip):
    other = make_generation(alice, status=Status.SUCCEEDED)
    comment = review.add_comment(other, bob, "elsewhere", None)
    assert bob_client.post(url("comment-delete", clip, comment.pk)).status_code == 404


# ---------------------------------------------------------------------------------------
# Ratings


def test_ratings_average_change_and_clear(client, bob, charlie, clip):
    client.force_login(bob)
    assert client.post(url("rating-set", clip), {"rating": "4"}).status_code == 302
    client.force_login(charlie)
    client.post(url("rating-set", clip), {"rating": "1"})
    clip.refresh_from_db()
    assert (clip.rating_avg, clip.rating_count) == (2.5, 2)
    response = client.post(url("rating-set", clip), {"rating": "2"}, headers=HTMX)
    assert "3.0 average from 2 ratings" in response.content.decode()
    client.post(url("rating-set", clip), {"clear": "1"})
    clip.refresh_from_db()
    assert (clip.rating_avg, clip.rating_count) == (4.0, 1)
    assert Rating.objects.get().member == bob
    assert Notification.objects.filter(verb=Verb.RATED, recipient=clip.owner).count() == 3


def test_the_rating_is_a_group_of_radio_buttons_named_rating(bob_client, clip):
    page = bob_client.get(url("generation-detail", clip)).content.decode()
    assert "<legend>Rating</legend>" in page
    for n in range(1, 6):
        assert f'type="radio" name="rating" value="{n}"' in page


@pytest.mark.parametrize("value", ["0", "6", "", "four", "4.5", "-1"])
def test_a_rating_outside_1_to_5_is_refused(bob_client, clip, value):
    response = bob_client.post(url("rating-set", clip), {"rating": value})
    assert response.status_code == 422
    assert "1 to 5 stars" in response.content.decode()
    assert not Rating.objects.exists()


# ---------------------------------------------------------------------------------------
# Review states


def test_a_reviewer_sets_the_state_with_a_note_and_history(client, reviewer, clip):
    client.force_login(reviewer)
    page = client.get(url("generation-detail", clip)).content.decode()
    assert '<label for="id_state">Review state</label>' in page
    client.post(url("review-set", clip), {"state": "changes", "note": "too dark"})
    response = client.post(url("review-set", clip), {"state": "approved"}, headers=HTMX)
    body = response.content.decode()
    assert "Approved" in body and "by bob" in body and "History (2)" in body
    clip.refresh_from_db()
    assert clip.review_state == ReviewState.APPROVED
    assert list(Review.objects.values_list("state", flat=True)) == ["approved", "changes"]
    assert Notification.objects.filter(verb=Verb.REVIEWED).count() == 2


def test_members_outside_the_reviewers_group_cannot_set_the_state(bob_client, clip):
    page = bob_client.get(url("generation-detail", clip)).content.decode()
    assert "Review state</label>" not in page
    response = bob_client.post(url("review-set", clip), {"state": "approved"})
    assert response.status_code == 302
    clip.refresh_from_db()
    assert clip.review_state == ReviewState.NONE and not Review.objects.exists()


def test_an_unknown_state_is_refused(client, reviewer, clip):
    client.force_login(reviewer)
    response = client.post(url("review-set", clip), {"state": "perfect"})
    assert (
        response.status_code == 422 and "Pick one of the review states" in response.content.decode()
    )


# ---------------------------------------------------------------------------------------
# Visibility: a private clip's review URLs are 404 to everyone but its owner and staff


def test_a_private_clip_has_no_review_urls_for_others(client, alice, bob, reviewer):
    private = make_generation(alice, status=Status.SUCCEEDED, visibility="private")
    comment = review.add_comment(private, alice, "note to self", None)
    client.force_login(bob)
    for name, args, data in [
        ("comment-create", [], {"comment": "hi"}),
        ("comment-edit", [comment.pk], {"comment": "x"}),
        ("comment-delete", [comment.pk], {}),
        ("rating-set", [], {"rating": "3"}),
        ("review-set", [], {"state": "approved"}),
        ("clip-boards", [], {"new_board": "mine"}),
    ]:
        assert client.post(url(name, private, *args), data).status_code == 404, name
    assert client.get(url("comment-edit", private, comment.pk)).status_code == 404
    assert Comment.objects.count() == 1 and not Rating.objects.exists()


def test_mentioning_someone_who_cannot_see_the_clip_tells_nobody(alice_client, alice, bob):
    private = make_generation(alice, status=Status.SUCCEEDED, visibility="private")
    alice_client.post(url("comment-create", private), {"comment": "@bob look"})
    assert not Notification.objects.exists()


def test_the_detail_page_query_count_is_fixed(
    alice_client, alice, bob, charlie, clip, django_assert_num_queries
):
    def counted() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert alice_client.get(url("generation-detail", clip)).status_code == 200
        return len(ctx.captured_queries)

    review.add_comment(clip, bob, "one @charlie", 1.0)
    review.set_rating(clip, bob, 3)
    few = counted()
    for i in range(10):
        review.add_comment(clip, [bob, charlie][i % 2], f"more {i} @alice", None)
        review.set_review(clip, charlie, ReviewState.CHANGES, "n")
    review.set_rating(clip, charlie, 5)
    assert counted() == few


def test_a_resent_comment_form_posts_once(bob_client, clip):
    for _ in range(2):
        bob_client.post(url("comment-create", clip), {"comment": "twice?", "at": "0:01"})
    bob_client.post(url("comment-create", clip), {"comment": "twice?"})  # not the same moment
    assert Comment.objects.count() == 2
    assert Notification.objects.count() == 2

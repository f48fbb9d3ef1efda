"""My generations, the team gallery, stars, the detail page and delete (Django test client)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from generations.models import Board, Favourite, Generation, Price, ReviewState, Status
from generations.review import boards
from generations.review import notes as review
from tests.factories import make_generation

pytestmark = pytest.mark.django_db

MINE, TEAM = reverse("my-generations"), reverse("gallery")


def make_gen(owner, **kw) -> Generation:
    return make_generation(owner, **({"status": Status.SUCCEEDED} | kw))


def ids(response) -> set[str]:
    return set(re.findall(r'id="gen-([0-9a-f-]{36})"', response.content.decode()))


def shown(client, url, **params) -> set[str]:
    response = client.get(url, params)
    assert response.status_code == 200
    return ids(response)


def test_my_generations_has_every_state_and_only_mine(alice_client, alice, bob):
    mine = [make_gen(alice, status=s) for s in ("queued", "processing", "failed", "succeeded")]
    make_gen(bob, prompt="bob's")
    assert shown(alice_client, MINE) == {str(g.public_id) for g in mine}


def test_team_gallery_has_shared_finished_clips_with_their_maker(client, alice, bob):
    shared = make_gen(alice, prompt="shared fox")
    make_gen(alice, prompt="private fox", visibility="private")
    make_gen(alice, prompt="unfinished fox", status="processing")
    client.force_login(bob)
    response = client.get(TEAM)
    assert ids(response) == {str(shared.public_id)}
    assert "alice" in response.content.decode()
    # Nor can search, a member filter or the zip's query string dig the private one out.
    assert shown(client, TEAM, q="private") == set()
    assert shown(client, TEAM, member="alice", q="fox") == {str(shared.public_id)}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "failed"}, {"failed"}),
        ({"model": "kling-v1-6"}, {"v16"}),
        ({"mode": "pro"}, {"pro"}),
        ({"duration": "10"}, {"long"}),
        ({"aspect": "9:16"}, {"tall"}),
        ({"q": "lighthouse storm"}, {"lighthouse"}),
        ({"q": "LIGHTHOUSE"}, {"lighthouse"}),
        ({"since": "2025-03-01", "until": "2025-03-31"}, {"march"}),
        ({"until": "2025-03-31"}, {"march", "old"}),
    ],
)
def test_filters(alice_client, alice, params, expected):
    now = timezone.now()
    rows = {
        "failed": make_gen(alice, status="failed"),
        "v16": make_gen(alice, model_name="kling-v1-6"),
        "pro": make_gen(alice, mode="pro"),
        "long": make_gen(alice, duration="10"),
        "tall": make_gen(alice, aspect_ratio="9:16"),
        "lighthouse": make_gen(alice, prompt="A lighthouse in a storm"),
        "march": make_gen(alice, created_at=now.replace(year=2025, month=3, day=15)),
        "old": make_gen(alice, created_at=now.replace(year=2024, month=1, day=1)),
    }
    expected_ids = {str(rows[k].public_id) for k in expected}
    assert shown(alice_client, MINE, **params) == expected_ids


def test_member_filter_in_the_team_gallery(alice_client, alice, bob):
    make_gen(alice)
    bobs = make_gen(bob)
    assert shown(alice_client, TEAM, member="bob") == {str(bobs.public_id)}


@pytest.mark.parametrize(
    "params",
    [
        {"state": "exploded"},
        {"model": "<script>"},
        {"duration": "999"},
        {"since": "2025-13-45"},
        {"since": "2025-05-01", "until": "2025-04-01"},
        {"member": "nobody"},
        {"order": "sideways"},
        {"after": "junk"},
        {"after": "99999999999999999999999_1"},
        {"after": "-5_x"},
        {"starred": "maybe"},
        {"q": "x" * 5000},
        {"q": "%_\\'\""},
    ],
)
@pytest.mark.parametrize("url", [MINE, TEAM])
def test_bad_params_never_fail(alice_client, alice, url, params):
    make_gen(alice)
    response = alice_client.get(url, params)
    assert response.status_code == 200
    zipped = alice_client.get(url + "clips.zip", params, follow=True)  # nothing to zip: a page
    assert zipped.status_code == 200


def test_bad_filters_are_reported_and_ignored(alice_client, alice):
    gen = make_gen(alice)
    response = alice_client.get(MINE, {"model": "kling-v9", "since": "soon"})
    body = response.content.decode()
    assert "Some filters were not applied" in body and "Model:" in body and "From:" in body
    assert ids(response) == {str(gen.public_id)}


def test_favourites_toggle_and_filter(alice_client, alice, bob):
    starred, other = make_gen(bob, prompt="starred"), make_gen(bob, prompt="other")
    url = reverse("generation-favourite", args=[starred.public_id])

    # Without JavaScript: a POST, then back to the page it came from.
    response = alice_client.post(url, {"on": "1", "next": TEAM + "?q=x"})
    assert response.status_code == 302 and response["Location"] == TEAM + "?q=x"
    alice_client.post(url, {"on": "1"})  # a resent form changes nothing
    assert Favourite.objects.filter(user=alice).count() == 1
    assert shown(alice_client, TEAM, starred="on") == {str(starred.public_id)}
    assert shown(alice_client, TEAM) == {str(starred.public_id), str(other.public_id)}
    # Stars are per member.
    alice_client.force_login(bob)
    assert shown(alice_client, TEAM, starred="on") == set()
    alice_client.force_login(alice)

    # With htmx: the button comes back, pressed or not.
    response = alice_client.post(url, {"on": "0"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'aria-pressed="false"' in response.content.decode()
    assert not Favourite.objects.exists()
    response = alice_client.post(url, {"on": "1"}, headers={"HX-Request": "true"})
    assert 'aria-pressed="true"' in response.content.decode()


def test_no_star_on_private_work_of_others(alice_client, bob):
    private = make_gen(bob, visibility="private")
    url = reverse("generation-favourite", args=[private.public_id])
    assert alice_client.post(url, {"on": "1"}).status_code == 404
    assert not Favourite.objects.exists()


def test_order_newest_or_oldest(alice_client, alice):
    now = timezone.now()
    old = make_gen(alice, prompt="first", created_at=now - timedelta(days=2))
    new = make_gen(alice, prompt="second", created_at=now)
    body = alice_client.get(MINE).content.decode()
    assert body.index(str(new.public_id)) < body.index(str(old.public_id))
    body = alice_client.get(MINE, {"order": "oldest"}).content.decode()
    assert body.index(str(old.public_id)) < body.index(str(new.public_id))


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_pages_load_more_as_you_scroll_with_links_as_fallback(alice_client, alice, order):
    same_moment = timezone.now()  # ties: the cursor must break them by id
    gens = [make_gen(alice, created_at=same_moment) for _ in range(30)]
    first = alice_client.get(MINE, {"order": order, "model": "kling-v1"})
    body = first.content.decode()
    assert len(ids(first)) == 24
    sentinel = re.search(r'<div class="more" hx-get="\?([^"]+)" hx-trigger="revealed"', body)
    assert sentinel, "no next-page sentinel"
    query = sentinel[1].replace("&amp;", "&")
    assert f'<a href="?{sentinel[1]}">Next page</a>' in body  # the no-JS link
    assert "order=" + order in query and "model=kling-v1" in query  # filters carried along

    partial = alice_client.get(f"{MINE}?{query}", headers={"HX-Request": "true"})
    assert "<html" not in partial.content.decode()  # just the cards and the next sentinel
    assert 'class="more"' not in partial.content.decode()  # last page
    assert ids(first) | ids(partial) == {str(g.public_id) for g in gens}
    assert not ids(first) & ids(partial)

    full = alice_client.get(f"{MINE}?{query}")  # the fallback link: a whole page
    assert "<html" in full.content.decode() and ids(full) == ids(partial)


@pytest.mark.parametrize(("url", "queries"), [(MINE, 5), (TEAM, 6)])
def test_query_count_is_fixed(client, alice, bob, charlie, django_assert_num_queries, url, queries):
    """session + user (+ members for the filter) + boards for the filter + one page with
    owners, stars and review tallies + the header's unread count. Comments, ratings, review
    states and boards add nothing per card."""

    def fill(n: int) -> None:
        board = Board.objects.create(owner=bob, name=f"takes {n}")
        for i in range(n):
            gen = make_gen([alice, bob, charlie][i % 3], prompt=f"clip {i}")
            if i % 2:
                Favourite.objects.create(user=alice, generation=gen)
            review.add_comment(gen, bob, f"comment {i} @alice", 1.0)
            review.set_rating(gen, charlie, 1 + i % 5)
            review.set_review(gen, charlie, ReviewState.APPROVED, "")
            boards.add_to_board(board, gen, bob)

    client.force_login(alice)
    fill(3)
    with django_assert_num_queries(queries):
        small = client.get(url)
    fill(27)
    with django_assert_num_queries(queries):
        large = client.get(url)
    with django_assert_num_queries(queries):
        client.get(url, {"q": "clip", "starred": "on", "order": "oldest"})
    with django_assert_num_queries(queries):
        client.get(url, {"review": "approved", "min_rating": "2", "order": "rating"})
    board = str(Board.objects.first().public_id)
    with django_assert_num_queries(queries):
        client.get(url, {"commented": "on", "board": board})
    assert len(ids(small)) <= 3 and len(ids(large)) >= 10


# ---------------------------------------------------------------------------------------
# Detail


def test_detail_shows_parameters_timings_cost_and_actions(alice_client, alice):
    Price.objects.update_or_create(
        model_name="kling-v1",
        mode="std",
        duration="5",
        defaults={"usd": Decimal("0.130"), "units": Decimal("1")},
    )
    now = timezone.now()
    gen = make_gen(
        alice,
        prompt="A heron lands",
        negative_prompt="blurry",
        cfg_scale=0.7,
        camera_control={"type": "simple", "config": {"zoom": 5}},
        task_id="8675309",
        created_at=now - timedelta(minutes=3),
        submitted_at=now - timedelta(minutes=3) + timedelta(seconds=4),
        finished_at=now,
    )
    gen.video.save("c.mp4", ContentFile(b"mp4"))
    body = alice_client.get(reverse("generation-detail", args=[gen.public_id])).content.decode()
    for text in ("A heron lands", "blurry", "0.7", "zoom 5", "8675309", gen.external_task_id):
        assert text in body
    assert "$0.13" in body and "1.00 (estimated)" in body
    assert "In our queue</dt><dd>4 s" in body and "Elapsed</dt><dd>3 min 00 s" in body
    assert f"/?remix={gen.public_id}" in body
    assert "?download=1" in body
    assert reverse("generation-delete", args=[gen.public_id]) in body
    assert "Make private" in body


def test_detail_of_a_failed_job_offers_edit_and_retry(alice_client, alice):
    gen = make_gen(alice, status="failed", error_message="Refused by moderation")
    body = alice_client.get(reverse("generation-detail", args=[gen.public_id])).content.decode()
    assert "Edit and retry" in body and "Refused by moderation" in body


def test_detail_of_a_queued_job_offers_cancel_not_delete(alice_client, alice):
    gen = make_gen(alice, status="queued")
    body = alice_client.get(reverse("generation-detail", args=[gen.public_id])).content.decode()
    assert reverse("generation-cancel", args=[gen.public_id]) in body
    assert reverse("generation-delete", args=[gen.public_id]) not in body


def test_team_members_see_shared_detail_without_owner_actions(alice_client, bob):
    gen = make_gen(bob)
    body = alice_client.get(reverse("generation-detail", args=[gen.public_id])).content.decode()
    assert "Remix" in body
    assert "Make private" not in body
    assert reverse("generation-delete", args=[gen.public_id]) not in body


# ---------------------------------------------------------------------------------------
# Delete


@pytest.fixture
def finished_clip(alice):
    gen = make_gen(alice)
    gen.video.save("clip.mp4", ContentFile(b"mp4 bytes"))
    gen.poster.save("poster.jpg", ContentFile(b"jpeg"))
    return gen


def test_delete_asks_then_removes_row_and_files(
    alice_client, finished_clip, django_capture_on_commit_callbacks
):
    url = reverse("generation-delete", args=[finished_clip.public_id])
    page = alice_client.get(url)
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    names = [finished_clip.video.name, finished_clip.poster.name]
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(url)
    assert response.status_code == 302 and response["Location"] == MINE
    assert not Generation.objects.exists()
    assert not any(default_storage.exists(n) for n in names)


def test_delete_with_htmx_redirects_the_page(alice_client, finished_clip):
    url = reverse("generation-delete", args=[finished_clip.public_id])
    response = alice_client.post(url, headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"] == MINE
    assert not Generation.objects.exists()


def test_delete_keeps_a_file_another_row_still_uses(
    alice_client, alice, finished_clip, django_capture_on_commit_callbacks
):
    twin = make_gen(alice, video=finished_clip.video.name)
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("generation-delete", args=[finished_clip.public_id]))
    assert default_storage.exists(twin.video.name)


def test_only_owner_or_staff_may_delete(client, bob, charlie, finished_clip):
    url = reverse("generation-delete", args=[finished_clip.public_id])
    client.force_login(bob)  # sees the shared clip, may not delete it
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert Generation.objects.exists()
    client.force_login(charlie)
    assert client.post(url).status_code == 302
    assert not Generation.objects.exists()


def test_a_running_job_is_not_deleted(alice_client, alice):
    gen = make_gen(alice, status="processing")
    response = alice_client.post(reverse("generation-delete", args=[gen.public_id]))
    assert response.status_code == 302
    assert Generation.objects.filter(pk=gen.pk).exists()


def test_delete_needs_csrf(alice, finished_clip):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("generation-delete", args=[finished_clip.public_id]))
    assert response.status_code == 403

"""Several clips at once from the galleries: zip, delete, visibility (Django test client).

All or nothing: a selection with anything the member may not act on (other members' clips,
unknown ids, junk, too many) changes nothing and says why; never a 500."""

import io
import uuid
import zipfile

import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from generations.galleries.bulk import SELECTION_MAX
from generations.models import Generation, Status, Visibility
from tests.factories import make_generation

pytestmark = pytest.mark.django_db

MINE_BULK, TEAM_BULK = reverse("my-generations-bulk"), reverse("gallery-bulk")
MINE, TEAM = reverse("my-generations"), reverse("gallery")


def clip(owner, prompt: str = "a clip", **kw) -> Generation:
    gen = make_generation(owner, prompt=prompt, **({"status": Status.SUCCEEDED} | kw))
    if gen.status == Status.SUCCEEDED:
        gen.video.save("clip.mp4", ContentFile(f"mp4 of {prompt}".encode()))
        gen.poster.save("poster.jpg", ContentFile(b"jpeg"))
    return gen


def post(client, url, gens_or_ids, action, confirm=True, **extra):
    ids = [str(getattr(g, "public_id", g)) for g in gens_or_ids]
    data = {"ids": ids, "action": action, **extra}
    if confirm:
        data["confirm"] = "yes"
    return client.post(url, data)


def said(response) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def snapshot() -> list[tuple]:
    return sorted(Generation.objects.values_list("public_id", "visibility", "status"))


# ---------------------------------------------------------------------------------------
# What each action does


def test_delete_several_after_one_confirmation_keeps_the_filters(
    alice_client, alice, django_capture_on_commit_callbacks
):
    gens = [clip(alice, f"fox {i}") for i in range(3)]
    keep = clip(alice, "keep me")
    back = f"{MINE}?q=fox&order=oldest"

    # Without confirm=yes (no JavaScript): one page asks about all three.
    page = post(alice_client, MINE_BULK, gens, "delete", confirm=False, back=back)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Delete 3 clips?" in text and "cannot be undone" in text
    assert text.count('name="ids"') == 3 and 'name="confirm" value="yes"' in text
    assert Generation.objects.count() == 4

    names = [f.name for g in gens for f in (g.video, g.poster)]
    with django_capture_on_commit_callbacks(execute=True):
        response = post(alice_client, MINE_BULK, gens, "delete", back=back)
    assert response.status_code == 302 and response["Location"] == back
    assert "Deleted 3 clips." in said(response)
    assert list(Generation.objects.all()) == [keep]
    assert not any(default_storage.exists(n) for n in names)
    assert default_storage.exists(keep.video.name)


def test_visibility_of_several(alice_client, alice):
    gens = [clip(alice, f"owl {i}") for i in range(2)]
    response = post(alice_client, MINE_BULK, gens, "private", back=f"{MINE}?q=owl")
    assert response["Location"] == f"{MINE}?q=owl"
    assert "2 clips are now private." in said(response)
    assert set(Generation.objects.values_list("visibility", flat=True)) == {Visibility.PRIVATE}
    response = post(alice_client, MINE_BULK, gens, "team")
    assert response["Location"] == MINE  # no back: the list it was posted from
    assert set(Generation.objects.values_list("visibility", flat=True)) == {Visibility.TEAM}


def test_visibility_asks_first_without_javascript(alice_client, alice):
    gens = [clip(alice, f"owl {i}") for i in range(2)]
    page = post(alice_client, MINE_BULK, gens, "private", confirm=False)
    assert page.status_code == 200 and "Make private 2 clips?" in page.content.decode()
    assert set(Generation.objects.values_list("visibility", flat=True)) == {Visibility.TEAM}


def test_zip_of_the_selection_only(client, alice, bob):
    mine = clip(alice, "A fox in snow")
    theirs = clip(bob, "A shared heron")  # others' shared clips may be downloaded
    clip(alice, "not selected")
    client.force_login(alice)
    response = post(client, TEAM_BULK, [mine, theirs], "zip", confirm=False)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="kling-selection-')
    zf = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    videos = sorted(n for n in zf.namelist() if n.endswith(".mp4"))
    assert len(videos) == 2 and "a-fox-in-snow" in videos[0] + videos[1]
    assert {zf.read(n) for n in videos} == {b"mp4 of A fox in snow", b"mp4 of A shared heron"}


def test_zip_of_nothing_finished_says_so(alice_client, alice):
    failed = clip(alice, "broken", status=Status.FAILED)
    response = post(alice_client, MINE_BULK, [failed], "zip", back=f"{MINE}?state=failed")
    assert response.status_code == 302 and response["Location"] == f"{MINE}?state=failed"
    assert "nothing to download" in said(response)


def test_staff_may_manage_others_clips_as_on_a_single_clip(client, alice, charlie):
    gens = [clip(alice, f"x {i}") for i in range(2)]
    client.force_login(charlie)
    response = post(client, TEAM_BULK, gens, "private")
    assert "2 clips are now private." in said(response)
    assert set(Generation.objects.values_list("visibility", flat=True)) == {Visibility.PRIVATE}


# ---------------------------------------------------------------------------------------
# What is refused, with nothing changed


def test_other_members_clips_change_nothing(client, alice, bob):
    mine = clip(bob, "bob's own")
    theirs = clip(alice, "alice's shared")
    before = snapshot()
    client.force_login(bob)
    for action in ("delete", "private", "team"):
        response = post(client, TEAM_BULK, [mine, theirs], action, back=f"{TEAM}?q=x")
        assert response.status_code == 302 and response["Location"] == f"{TEAM}?q=x"
        assert "1 clip of the selection belongs to other members (alice)" in said(response)
        assert "Nothing was changed." in said(response)
        assert snapshot() == before


def test_private_clips_of_others_are_unknown(client, alice, bob):
    hidden = clip(alice, "private", visibility=Visibility.PRIVATE)
    client.force_login(bob)
    for action in ("zip", "delete", "team"):
        response = post(client, MINE_BULK, [hidden], action)
        assert response.status_code == 302
        assert "1 clip of the selection no longer exists or can't be seen by you" in said(response)
    assert Generation.objects.get().visibility == Visibility.PRIVATE


@pytest.mark.parametrize(
    ("ids", "action", "message"),
    [
        ([], "delete", "No clips were selected"),
        (["not-a-uuid"], "delete", "not a clip"),
        (["", "{}"], "private", "not a clip"),
        (["\x00"], "zip", "not a clip"),
        (["OWN"], "", "Choose what to do"),
        (["OWN"], "explode", "Choose what to do"),
        (["OWN", str(uuid.uuid4())], "delete", "1 clip of the selection no longer exists"),
        (["OWN"] + ["junk"] * SELECTION_MAX, "delete", f"at most {SELECTION_MAX}"),
    ],
)
def test_bad_selections_change_nothing(alice_client, alice, ids, action, message):
    own = clip(alice, "mine")
    before = snapshot()
    ids = [str(own.public_id) if i == "OWN" else i for i in ids]
    response = alice_client.post(MINE_BULK, {"ids": ids, "action": action, "confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == MINE
    assert message in said(response)
    assert snapshot() == before


def test_running_jobs_are_not_deleted(alice_client, alice):
    done = clip(alice, "done")
    running = clip(alice, "running", status=Status.PROCESSING)
    response = post(alice_client, MINE_BULK, [done, running], "delete")
    assert "1 clip of the selection is still running" in said(response)
    assert Generation.objects.count() == 2


def test_a_replayed_delete_changes_nothing_more(alice_client, alice):
    gens = [clip(alice, f"fox {i}") for i in range(2)]
    other = clip(alice, "other")
    assert post(alice_client, MINE_BULK, gens, "delete").status_code == 302
    replay = post(alice_client, MINE_BULK, gens, "delete")
    assert replay.status_code == 302
    assert "2 clips of the selection no longer exist" in said(replay)
    assert list(Generation.objects.all()) == [other]


def test_a_foreign_back_url_is_not_followed(alice_client, alice):
    gen = clip(alice)
    response = post(alice_client, MINE_BULK, [gen], "private", back="https://evil.example/")
    assert response["Location"] == MINE


def test_get_is_not_allowed_and_csrf_is_needed(alice, alice_client):
    gen = clip(alice)
    assert alice_client.get(MINE_BULK).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert post(strict, MINE_BULK, [gen], "delete").status_code == 403
    assert Generation.objects.exists()


def test_logged_out_goes_to_login(client, alice):
    gen = clip(alice)
    response = post(client, MINE_BULK, [gen], "delete")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Generation.objects.exists()


def test_gallery_cards_have_tick_boxes_in_the_bulk_form(alice_client, alice):
    gen = clip(alice, "tick me")
    page = alice_client.get(MINE, {"q": "tick"}).content.decode()
    assert 'id="bulk-form"' in page and f'action="{MINE_BULK}"' in page
    assert f'name="ids" value="{gen.public_id}" form="bulk-form"' in page
    assert f'name="back" value="{MINE}?q=tick"' in page
    assert "{#" not in page and "{%" not in page  # no template comment shows as text
    studio = alice_client.get(reverse("studio")).content.decode()
    assert 'form="bulk-form"' not in studio  # no bar there to post them


def test_a_polled_card_in_a_gallery_keeps_its_tick_box(alice_client, alice):
    gen = clip(alice, "running", status=Status.PROCESSING)
    page = alice_client.get(MINE).content.decode()
    assert f'value="{gen.public_id.hex}:{gen.card_version}:pick"' in page
    url = reverse("generation-status", args=[gen.public_id])
    assert 'class="pick"' in alice_client.get(url, {"pick": "1"}).content.decode()
    assert 'class="pick"' not in alice_client.get(url).content.decode()

"""Issue 8, finding 5: a zip download reads what it needs before it streams, so a client
that reads slowly holds no database snapshot (SQLite's WAL can checkpoint), and each member
runs a bounded number of zips at once, across processes."""

import io
import sqlite3
import zipfile
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.signals import request_finished
from django.db import close_old_connections, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations.galleries import zipslots
from generations.models import DownloadSlot, Generation, Status
from tests.factories import DEFAULTS, make_generation

ROWS = 250  # more than one fetch (the old code iterated 200 rows at a time)


def many_clips(owner, n: int = ROWS) -> None:
    first = Generation(owner=owner, status=Status.SUCCEEDED, **DEFAULTS)
    first.video.save("shared.mp4", ContentFile(b"\x00" * 200_000), save=False)
    Generation.objects.bulk_create(
        Generation(
            owner=owner,
            status=Status.SUCCEEDED,
            video=first.video.name,
            **(DEFAULTS | {"prompt": f"clip {i}"}),
        )
        for i in range(n)
    )


def write_elsewhere(db_path: str, checkpoint: bool = False) -> int:
    """Write from another connection (a worker), and with `checkpoint` try to move the
    whole WAL into the database: 1 when a reader's snapshot pins the log, 0 when it went."""
    other = sqlite3.connect(db_path, timeout=0)
    try:
        other.execute("UPDATE generations_generation SET wait_reason = 'x' WHERE id = 1")
        other.commit()
        if not checkpoint:
            return 0
        busy, _log, _done = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy
    finally:
        other.close()


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_a_stalled_zip_holds_no_snapshot(client, alice):
    many_clips(alice)
    client.force_login(alice)
    db_path = connection.settings_dict["NAME"]
    write_elsewhere(db_path)  # the WAL holds a write: a snapshot taken now would pin it
    response = client.get(reverse("my-generations-zip"))
    try:
        chunks = iter(response.streaming_content)
        first = next(chunks)  # the client reads one chunk, then stalls
        assert write_elsewhere(db_path, checkpoint=True) == 0
        archive = zipfile.ZipFile(io.BytesIO(first + b"".join(chunks)))  # then reads on
    finally:
        response.close()
    assert len(archive.namelist()) == ROWS + 2  # the clips and the two manifests


def clip(owner, prompt: str = "a fox") -> Generation:
    gen = make_generation(owner, prompt=prompt, status=Status.SUCCEEDED)
    gen.video.save("clip.mp4", ContentFile(b"mp4"))
    return gen


def hang_up(response) -> None:
    """What the web server does when the client goes away: close the response. (As the
    test client does, without closing this test's database connection.)"""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def start_zip(user, name: str = "my-generations-zip"):
    """A zip response in its own client (another tab, another web process), unread."""
    other = Client()
    other.force_login(user)
    return other.get(reverse(name))


@pytest.mark.django_db
def test_a_member_runs_at_most_the_limit_of_zips_at_once(alice, bob, settings):
    settings.KLING_ZIPS_PER_MEMBER = 2
    clip(alice)
    clip(bob)  # a selection with nothing to zip answers a page, not a zip (issue 12)
    first, second = start_zip(alice), start_zip(alice, "gallery-zip")
    assert first.status_code == second.status_code == 200

    third = start_zip(alice)
    assert third.status_code == 429 and third["Retry-After"] == "30"
    text = third.content.decode()
    assert "You already have 2 zip downloads running" in text
    assert not third.has_header("Content-Disposition")
    assert start_zip(bob).status_code == 200  # the limit is per member

    b"".join(first.streaming_content)  # finished (the test client closes it at the end)
    fourth = start_zip(alice)
    assert fourth.status_code == 200
    hang_up(second)  # a client that disconnects frees its slot too
    fifth = start_zip(alice)
    assert fifth.status_code == 200
    for response in (fourth, fifth):
        hang_up(response)
    assert not DownloadSlot.objects.filter(owner=alice).exists()


@pytest.mark.django_db
def test_a_slot_whose_lease_ran_out_is_free_again(alice, settings):
    """A crashed worker never releases its slot; a stalled client stops renewing it."""
    settings.KLING_ZIPS_PER_MEMBER = 1
    clip(alice)
    held = start_zip(alice)
    assert start_zip(alice).status_code == 429
    DownloadSlot.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    again = start_zip(alice)
    assert again.status_code == 200
    hang_up(again)
    hang_up(held)  # the old holder's late release must not free the new holder's slot
    assert DownloadSlot.objects.count() == 0


@pytest.mark.django_db
def test_a_late_release_leaves_the_new_holders_slot(alice, settings):
    settings.KLING_ZIPS_PER_MEMBER = 1
    old = zipslots.claim(alice)
    DownloadSlot.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    new = zipslots.claim(alice)
    assert new is not None and new != old
    zipslots.release(old)
    assert list(DownloadSlot.objects.values_list("token", flat=True)) == [new]
    assert zipslots.claim(alice) is None


@pytest.mark.django_db
def test_a_moving_stream_renews_its_slot(alice, monkeypatch):
    clip(alice)
    response = start_zip(alice)
    monkeypatch.setattr(zipslots, "RENEW_EVERY", -1.0)  # every chunk comes "a while later"
    DownloadSlot.objects.update(expires_at=timezone.now() + timedelta(seconds=5))
    chunks = iter(response.streaming_content)
    next(chunks)
    next(chunks)
    assert DownloadSlot.objects.get().expires_at > timezone.now() + zipslots.LEASE / 2
    b"".join(chunks)
    assert not DownloadSlot.objects.exists()  # released at the end


def test_the_zip_reads_its_rows_before_the_first_byte(alice, django_assert_num_queries, db):
    """The stream itself makes no query: everything was read in the view."""
    from generations.galleries.zips import zip_entries, zip_stream

    clip(alice, "one")
    clip(alice, "two")
    entries = zip_entries(Generation.objects.filter(owner=alice))
    with django_assert_num_queries(0):
        data = b"".join(zip_stream(entries))
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 4

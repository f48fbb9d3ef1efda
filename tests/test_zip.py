"""A filtered selection as one streamed zip with manifest.csv and manifest.json."""

import csv
import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.http import StreamingHttpResponse
from django.urls import reverse

from generations.models import Generation, Price, Status
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


def clip(owner, prompt: str, data: bytes = b"\x00mp4", **kw) -> Generation:
    params = {"status": Status.SUCCEEDED, "task_id": f"task-{prompt}"} | kw
    gen = make_generation(owner, prompt=prompt, **params)
    if gen.status == Status.SUCCEEDED:
        gen.video.save("clip.mp4", ContentFile(data))
    return gen


def download(client, url: str, **params) -> tuple[StreamingHttpResponse, zipfile.ZipFile]:
    response = client.get(url, params)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="kling-')
    data = b"".join(response.streaming_content)
    return response, zipfile.ZipFile(io.BytesIO(data))


def manifest(zf: zipfile.ZipFile) -> tuple[list[dict], list[dict]]:
    rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
    return rows, json.loads(zf.read("manifest.json"))


def test_my_zip_has_my_finished_clips_and_a_correct_manifest(client, alice, bob):
    Price.objects.update_or_create(
        model_name="kling-v1",
        mode="std",
        duration="5",
        defaults={"usd": Decimal("0.130"), "units": Decimal("1")},
    )
    fox = clip(alice, "A fox in snow", b"fox-bytes", negative_prompt="blurry")
    owl = clip(alice, "An owl at night", b"owl-bytes", visibility="private", duration="10")
    clip(alice, "failed one", status=Status.FAILED)
    clip(bob, "bob's clip")
    client.force_login(alice)

    response, zf = download(client, reverse("my-generations-zip"))
    assert isinstance(response, StreamingHttpResponse) and not response.has_header("Content-Length")
    assert zf.testzip() is None
    videos = [n for n in zf.namelist() if n.endswith(".mp4")]
    assert len(videos) == 2 and set(zf.namelist()) == {*videos, "manifest.csv", "manifest.json"}
    csv_rows, json_rows = manifest(zf)
    assert [r["id"] for r in csv_rows] == [r["id"] for r in json_rows]
    by_id = {r["id"]: r for r in json_rows}
    assert set(by_id) == {str(fox.public_id), str(owl.public_id)}

    row = by_id[str(fox.public_id)]
    assert zf.read(row["file"]) == b"fox-bytes"
    assert row["prompt"] == "A fox in snow" and row["negative_prompt"] == "blurry"
    assert (row["model_name"], row["mode"], row["duration"], row["aspect_ratio"]) == (
        "kling-v1",
        "std",
        "5",
        "16:9",
    )
    assert row["cfg_scale"] == 0.5 and row["member"] == "alice"
    assert row["estimated_usd"] == "0.130" and row["units"] == "1.00"
    assert row["task_id"] == "task-A fox in snow"
    assert row["external_task_id"] == fox.external_task_id
    assert row["created_at"].startswith(str(fox.created_at.date()))
    assert zf.read(by_id[str(owl.public_id)]["file"]) == b"owl-bytes"
    csv_fox = next(r for r in csv_rows if r["id"] == str(fox.public_id))
    assert csv_fox["prompt"] == "A fox in snow" and csv_fox["member"] == "alice"


def test_team_zip_leaves_out_private_clips_of_others(client, alice, bob):
    shared = clip(alice, "shared")
    clip(alice, "secret", visibility="private")
    client.force_login(bob)
    _response, zf = download(client, reverse("gallery-zip"))
    _csv, rows = manifest(zf)
    assert [r["id"] for r in rows] == [str(shared.public_id)]
    assert b"secret" not in b"".join(zf.read(n) for n in zf.namelist())


def test_zip_follows_the_filters(client, alice):
    clip(alice, "a fox")
    owl = clip(alice, "an owl", model_name="kling-v1-6")
    client.force_login(alice)
    _response, zf = download(client, reverse("my-generations-zip"), model="kling-v1-6")
    assert [r["id"] for r in manifest(zf)[1]] == [str(owl.public_id)]
    empty = client.get(reverse("my-generations-zip"), {"q": "nothing-matches"})
    assert empty.status_code == 302  # a message on the list, not a zip of headers


def test_zip_is_streamed_in_chunks_not_built_in_memory(client, alice):
    big = bytes(range(256)) * 4096 * 3  # 3 MiB
    clip(alice, "big", big)
    client.force_login(alice)
    response = client.get(reverse("my-generations-zip"))
    chunks = list(response.streaming_content)
    assert len(chunks) > 40 and max(len(c) for c in chunks) < 128 * 1024
    zf = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    name = next(n for n in zf.namelist() if n.endswith(".mp4"))
    assert zf.getinfo(name).compress_type == zipfile.ZIP_STORED
    assert zf.read(name) == big


def test_a_missing_file_is_skipped_not_fatal(client, alice):
    gen = clip(alice, "gone")
    gen.video.storage.delete(gen.video.name)
    client.force_login(alice)
    _response, zf = download(client, reverse("my-generations-zip"))
    assert manifest(zf) == ([], [])

"""Clips and posters on S3-compatible storage, against a real local S3 server (moto's
server mode, over HTTP on loopback): the lifecycle stores through Django storage, and the
views stream from the bucket only after the permission check, with Range for seeking.

Runs everywhere the suite runs (moto[server] is a dev dependency): never skipped.
"""

import io
import json
import os
import socket
import subprocess
import sys
import uuid
import zipfile

import boto3
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from moto.server import ThreadedMotoServer

from generations import lifecycle
from generations.models import Generation, Status, Visibility

from .factories import drive, make_generation

pytestmark = pytest.mark.django_db
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server, settings):
    """A fresh private bucket, made the default storage the way settings.py does it."""
    name = f"clips-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **CREDENTIALS)
    client.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_server,
                "region_name": "us-east-1",
                "access_key": CREDENTIALS["aws_access_key_id"],
                "secret_key": CREDENTIALS["aws_secret_access_key"],
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 60,
                "file_overwrite": False,
            },
        },
    }
    yield client, name


def keys(bucket) -> list[str]:
    client, name = bucket
    return [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def stored_clip(bucket, alice):
    """A finished clip whose bytes are in the bucket."""
    gen = make_generation(alice, status=Status.SUCCEEDED, visibility=Visibility.TEAM)
    gen.video.save("clip.mp4", ContentFile(bytes(range(256)) * 40), save=False)
    gen.poster.save("poster.jpg", ContentFile(b"\xff\xd8poster"), save=False)
    gen.save()
    assert gen.video.name in keys(bucket) and gen.poster.name in keys(bucket)
    return gen


def test_settings_choose_s3_from_the_environment_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="kling_site.settings",
        KLING_VAR_DIR=str(tmp_path),
        AWS_STORAGE_BUCKET_NAME="team-clips",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_S3_REGION_NAME="eu-west-1",
    )
    (tmp_path / "secret").write_text("from-a-file\n")
    env["AWS_SECRET_ACCESS_KEY_FILE"] = str(tmp_path / "secret")
    script = (
        "import django; django.setup();"
        "from django.core.files.storage import storages; s = storages['default'];"
        "print(type(s).__name__, s.bucket_name, s.endpoint_url, s.region_name,"
        " s.secret_key, s.default_acl, s.querystring_expire)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [
        "S3Storage",
        "team-clips",
        "http://127.0.0.1:9",
        "eu-west-1",
        "from-a-file",
        "None",
        "60",
    ]
    del env["AWS_STORAGE_BUCKET_NAME"]
    local = subprocess.run(
        [sys.executable, "-c", script.split(";print")[0] + ";print(type(s).__name__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert local.stdout.strip() == "FileSystemStorage"


def test_the_lifecycle_stores_a_finished_clip_in_the_bucket(bucket, cometapi, alice):
    gen = make_generation(alice)
    lifecycle.submit(gen.pk)
    gen = drive(Generation.objects.get(pk=gen.pk), cometapi)
    assert gen.status == Status.SUCCEEDED, gen.error_message
    stored = keys(bucket)
    assert gen.video.name in stored and gen.poster.name in stored
    client, name = bucket
    head = client.head_object(Bucket=name, Key=gen.video.name)
    assert head["ContentLength"] > 1000


def test_the_owner_gets_the_clip_streamed_with_ranges(client, alice, stored_clip):
    client.force_login(alice)
    url = reverse("generation-video", args=[stored_clip.public_id])
    whole = client.get(url)
    assert whole.status_code == 200  # streamed by us: no redirect to a bucket URL
    assert whole["Cache-Control"] == "private, no-store"
    assert whole["Content-Length"] == "10240"
    assert body(whole) == bytes(range(256)) * 40

    part = client.get(url, headers={"Range": "bytes=256-511"})
    assert part.status_code == 206
    assert part["Content-Range"] == "bytes 256-511/10240"
    assert body(part) == bytes(range(256))
    tail = client.get(url, headers={"Range": "bytes=-3"})
    assert tail.status_code == 206 and body(tail) == bytes([253, 254, 255])
    assert client.get(url, headers={"Range": "bytes=20000-"}).status_code == 416

    poster = client.get(reverse("generation-poster", args=[stored_clip.public_id]))
    assert poster.status_code == 200 and body(poster) == b"\xff\xd8poster"
    assert poster["Cache-Control"] == "private, max-age=60"


def test_no_page_carries_a_bucket_url(client, alice, stored_clip, s3_server):
    client.force_login(alice)
    page = client.get(reverse("generation-detail", args=[stored_clip.public_id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert s3_server not in html and "X-Amz-Signature" not in html
    assert reverse("generation-video", args=[stored_clip.public_id]) in html


def test_a_teammate_gets_a_shared_clip_an_outsider_does_not(client, bob, stored_clip):
    url = reverse("generation-video", args=[stored_clip.public_id])
    client.force_login(bob)
    assert body(client.get(url)) == bytes(range(256)) * 40


def test_made_private_the_teammate_is_refused_at_once(client, alice, bob, stored_clip):
    url = reverse("generation-video", args=[stored_clip.public_id])
    client.force_login(bob)
    assert body(client.get(url, headers={"Range": "bytes=0-9"})) == bytes(range(10))

    client.force_login(alice)
    visibility = reverse("generation-visibility", args=[stored_clip.public_id])
    assert client.post(visibility, {"visibility": "private"}).status_code == 302

    client.force_login(bob)
    assert client.get(url, headers={"Range": "bytes=10-19"}).status_code == 404
    client.force_login(alice)
    assert body(client.get(url, headers={"Range": "bytes=10-19"})) == bytes(range(10, 20))


def test_deleted_the_clip_is_gone_from_the_bucket_and_the_site(
    client, alice, bucket, stored_clip, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    url = reverse("generation-video", args=[stored_clip.public_id])
    delete = reverse("generation-delete", args=[stored_clip.public_id])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(delete).status_code == 302
    assert client.get(url).status_code == 404
    assert stored_clip.video.name not in keys(bucket)
    assert stored_clip.poster.name not in keys(bucket)


def test_a_row_whose_object_vanished_answers_404(client, alice, bucket, stored_clip):
    client_s3, name = bucket
    client_s3.delete_object(Bucket=name, Key=stored_clip.video.name)
    client.force_login(alice)
    url = reverse("generation-video", args=[stored_clip.public_id])
    assert client.get(url).status_code == 404


def test_my_zip_reads_the_clips_from_the_bucket(client, alice, bucket, stored_clip, settings):
    """The "My zip" download streams each clip's bytes out of the bucket (not from local disk, where
    there is nothing), with its manifest row."""
    settings.MEDIA_ROOT = "/nonexistent-kling-media"  # any local read would find nothing
    client.force_login(alice)
    response = client.get(reverse("my-generations-zip"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(body(response)))
    videos = [n for n in zf.namelist() if n.endswith(".mp4")]
    assert len(videos) == 1
    assert zf.read(videos[0]) == bytes(range(256)) * 40
    rows = json.loads(zf.read("manifest.json"))
    assert [r["id"] for r in rows] == [str(stored_clip.public_id)]

    # The object gone from the bucket, the clip is left out rather than breaking the zip.
    client_s3, name = bucket
    client_s3.delete_object(Bucket=name, Key=stored_clip.video.name)
    again = zipfile.ZipFile(io.BytesIO(body(client.get(reverse("my-generations-zip")))))
    assert [n for n in again.namelist() if n.endswith(".mp4")] == []

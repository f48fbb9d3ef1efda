"""The worst inputs we could think of: never a 500, never someone else's work."""

import uuid

import pytest
from django.urls import reverse

from generations.models import Generation
from tests.factories import make_generation

pytestmark = pytest.mark.django_db

BAD_FORMS = [
    {"prompt": "x" * 1_000_000},
    {"prompt": "\x00\x01 control characters"},
    {"prompt": "ok", "model_name": ["kling-v1", "kling-v3"]},
    {"prompt": "ok", "cfg_scale": "nan"},
    {"prompt": "ok", "cfg_scale": "inf"},
    {"prompt": "ok", "camera": "simple", "camera_axis": "zoom", "camera_value": "1e309"},
    {"prompt": "ok", "visibility": "public"},
    {},
]


@pytest.mark.parametrize("data", BAD_FORMS, ids=range(len(BAD_FORMS)))
@pytest.mark.parametrize("htmx", [False, True])
def test_it_answers_bad_forms_without_saving(alice_client, data, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    response = alice_client.post("/", data, headers=headers)
    assert response.status_code in (200, 422)
    assert not Generation.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/?remix=not-a-uuid",
        f"/?remix={uuid.uuid4()}",
        "/mine/?state=zzz&from=2026-13-45&order=sideways",
        "/gallery/?member=%00&q=" + "a" * 5000,
        "/gallery/?cursor=garbage",
        "/mine/clips.zip?from=bad",
        f"/g/{uuid.uuid4()}/",
        f"/g/{uuid.uuid4()}/status/?v=x",
    ],
)
def test_it_never_answers_junk_urls_with_a_500(alice_client, url):
    response = alice_client.get(url)
    assert response.status_code < 500
    if response.streaming:
        b"".join(response.streaming_content)


@pytest.mark.parametrize(
    "name",
    [
        "generation-cancel",
        "generation-visibility",
        "generation-favourite",
        "generation-retry",
        "generation-delete",
    ],
)
def test_another_members_private_work_cannot_be_touched(alice_client, bob, name):
    gen = make_generation(bob, prompt="bob's", visibility="private")
    response = alice_client.post(
        reverse(name, args=[gen.public_id]), {"visibility": "team", "on": "1"}
    )
    assert response.status_code == 404
    assert Generation.objects.filter(pk=gen.pk, visibility="private").exists()

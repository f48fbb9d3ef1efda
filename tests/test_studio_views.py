"""The studio page, its form and the card partial, through Django's test client."""

import pytest
from django.urls import reverse

from generations.models import Generation, Status

pytestmark = pytest.mark.django_db

VALID = {
    "prompt": "A red fox runs through fresh snow at dawn",
    "negative_prompt": "blurry",
    "model_name": "kling-v1",
    "mode": "std",
    "duration": "5",
    "aspect_ratio": "16:9",
    "cfg_scale": "0.5",
    "camera": "auto",
    "visibility": "team",
}


def make_gen(owner, **kw) -> Generation:
    params = {
        "prompt": "a cat",
        "model_name": "kling-v1",
        "mode": "std",
        "duration": "5",
        "aspect_ratio": "16:9",
        "cfg_scale": 0.5,
    }
    params.update(kw)
    return Generation.objects.create(owner=owner, **params)


def test_it_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_shows_the_form_and_own_cards(alice_client, alice, bob):
    make_gen(alice, prompt="alice's fox")
    make_gen(bob, prompt="bob's owl")
    response = alice_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="prompt"' in body and 'name="cfg_scale"' in body
    assert "alice&#x27;s fox" in body
    assert "bob&#x27;s owl" not in body


def test_it_creates_a_queued_generation_and_redirects_without_js(
    alice_client, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post("/", VALID)
    assert response.status_code == 302
    gen = Generation.objects.get()
    assert gen.owner == alice and gen.status == Status.QUEUED
    assert gen.duration == "5" and gen.cfg_scale == 0.5 and gen.mode == "std"
    assert gen.external_task_id.startswith("ks-")
    assert len(callbacks) == 1  # the submit is enqueued only after commit


def test_it_answers_htmx_with_the_new_card(alice_client):
    response = alice_client.post("/", VALID, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    gen = Generation.objects.get()
    assert f'id="gen-{gen.public_id}"' in body
    assert 'hx-trigger="every 2s"' in body
    assert 'hx-swap-oob="true"' in body  # a fresh form replaces the used one


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"prompt": ""}, "prompt", "Describe the video"),
        ({"prompt": "   "}, "prompt", "Describe the video"),
        ({"prompt": "x" * 501}, "prompt", "500 characters"),
        ({"negative_prompt": "x" * 201}, "negative_prompt", "200 characters"),
        ({"cfg_scale": "1.5"}, "cfg_scale", "less than or equal to 1"),
        ({"cfg_scale": "abc"}, "cfg_scale", "number from 0 to 1"),
        ({"duration": "7"}, "duration", "valid choice"),
        ({"model_name": "kling-v9"}, "model_name", "valid choice"),
        ({"camera": "down_back", "mode": "pro"}, "camera", "Camera control needs"),
        (
            {"camera": "simple", "camera_axis": "zoom", "camera_value": "0"},
            "camera_value",
            "non-zero",
        ),
    ],
)
def test_it_rejects_bad_input_with_a_message(alice_client, change, field, message):
    response = alice_client.post("/", {**VALID, **change})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Generation.objects.exists()


def test_it_retargets_the_form_on_htmx_errors(alice_client):
    response = alice_client.post("/", {**VALID, "prompt": ""}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#prompt-form"
    assert "Describe the video" in response.content.decode()


def test_it_drops_parameters_a_model_does_not_take(alice_client):
    alice_client.post("/", {**VALID, "model_name": "kling-v2-master", "mode": "pro"})
    gen = Generation.objects.get()
    assert gen.mode == "" and gen.cfg_scale is None
    assert "mode" not in gen.api_params() and "cfg_scale" not in gen.api_params()


def test_it_builds_camera_control(alice_client):
    alice_client.post(
        "/", {**VALID, "camera": "simple", "camera_axis": "pan", "camera_value": "-4"}
    )
    gen = Generation.objects.get()
    assert gen.camera_control == {
        "type": "simple",
        "config": {"horizontal": 0, "vertical": 0, "pan": -4.0, "tilt": 0, "roll": 0, "zoom": 0},
    }


def test_status_partial_polls_until_terminal(alice_client, alice):
    gen = make_gen(alice, status=Status.PROCESSING)
    url = reverse("generation-status", args=[gen.public_id])
    response = alice_client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()

    Generation.objects.filter(pk=gen.pk).update(status=Status.FAILED, error_message="moderation")
    response = alice_client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 286  # htmx stops polling
    body = response.content.decode()
    assert "moderation" in body and "every 2s" not in body


def test_finished_cards_do_not_poll(alice_client, alice):
    make_gen(alice, status=Status.SUCCEEDED)
    assert "every 2s" not in alice_client.get("/").content.decode()


def test_a_refused_create_shows_its_reason(alice_client, alice):
    make_gen(
        alice,
        status=Status.FAILED,
        error_code="1301",
        error_message="CometAPI refused this prompt under its content policy.",
    )
    body = alice_client.get("/").content.decode()
    assert "content policy" in body


def test_owner_can_make_private_and_share_again(alice_client, alice):
    gen = make_gen(alice)
    url = reverse("generation-visibility", args=[gen.public_id])
    assert alice_client.post(url, {"visibility": "private"}).status_code == 302
    gen.refresh_from_db()
    assert gen.visibility == "private"
    assert alice_client.post(url, {"visibility": "bogus"}).status_code == 400


def test_owner_can_cancel_a_queued_job(alice_client, alice):
    gen = make_gen(alice)
    alice_client.post(reverse("generation-cancel", args=[gen.public_id]))
    gen.refresh_from_db()
    assert gen.status == Status.CANCELLED and "nothing was charged" in gen.error_message


def test_mutations_need_post(alice_client, alice):
    gen = make_gen(alice)
    assert alice_client.get(reverse("generation-cancel", args=[gen.public_id])).status_code == 405


def test_healthz_needs_no_login(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True


def test_pages_carry_a_strict_csp(alice_client):
    csp = alice_client.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

"""The studio page, its form and the card partial, through Django's test client."""

import json
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from generations.kling import capabilities as caps
from generations.lifecycle import heartbeat
from generations.models import Favourite, Generation, MemberLimits, Price, Status
from tests.factories import make_generation, put

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


def test_it_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_shows_the_form_and_own_cards(alice_client, alice, bob):
    make_generation(alice, prompt="alice's fox")
    make_generation(bob, prompt="bob's owl")
    response = alice_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="prompt"' in body and 'name="cfg_scale"' in body
    assert "alice&#x27;s fox" in body
    assert "bob&#x27;s owl" not in body


def test_it_creates_a_queued_generation_and_redirects_without_js(alice_client, alice):
    response = alice_client.post("/", VALID)
    assert response.status_code == 302
    gen = Generation.objects.get()
    assert gen.owner == alice and gen.status == Status.QUEUED
    assert gen.duration == "5" and gen.cfg_scale == 0.5 and gen.mode == "std"
    assert gen.external_task_id.startswith("ks-")


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


def test_a_card_carries_its_poll_token_until_terminal(alice_client, alice):
    gen = make_generation(alice, status=Status.PROCESSING)
    url = reverse("generation-status", args=[gen.public_id])
    response = alice_client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    # A live card carries its token for the page's one poll (views.live_cards).
    assert f'name="live" id="live-{gen.public_id.hex}"' in response.content.decode()

    put(Generation.objects.filter(pk=gen.pk), status=Status.FAILED, error_message="moderation")
    response = poll_page(alice_client, [gen])
    assert response.status_code == 286  # htmx stops polling
    body = response.content.decode()
    assert "moderation" in body and 'name="live"' not in body


def test_finished_cards_do_not_poll(alice_client, alice):
    make_generation(alice, status=Status.SUCCEEDED)
    assert "every 2s" not in alice_client.get("/").content.decode()


def test_a_refused_create_shows_its_reason(alice_client, alice):
    make_generation(
        alice,
        status=Status.FAILED,
        error_code="1301",
        error_message="CometAPI refused this prompt under its content policy.",
    )
    body = alice_client.get("/").content.decode()
    assert "content policy" in body


def test_owner_can_make_private_and_share_again(alice_client, alice):
    gen = make_generation(alice)
    url = reverse("generation-visibility", args=[gen.public_id])
    assert alice_client.post(url, {"visibility": "private"}).status_code == 302
    gen.refresh_from_db()
    assert gen.visibility == "private"
    assert alice_client.post(url, {"visibility": "bogus"}).status_code == 400


def test_owner_can_cancel_a_queued_job(alice_client, alice):
    gen = make_generation(alice)
    alice_client.post(reverse("generation-cancel", args=[gen.public_id]))
    gen.refresh_from_db()
    assert gen.status == Status.CANCELLED and "nothing was charged" in gen.error_message


def test_mutations_need_post(alice_client, alice):
    gen = make_generation(alice)
    assert alice_client.get(reverse("generation-cancel", args=[gen.public_id])).status_code == 405


def test_healthz_needs_no_login_when_healthy(client, db):
    heartbeat.record()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["database"] == {"ok": True}


def test_healthz_needs_no_login_when_unhealthy(client, db):
    response = client.get("/healthz")  # no cluster has ever beaten
    assert response.status_code == 503 and response.json()["database"] == {"ok": True}


def test_pages_carry_a_strict_csp(alice_client):
    csp = alice_client.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


# ---------------------------------------------------------------------------------------
# Remix, edit and retry


def test_remix_fills_the_form_with_the_cards_parameters(alice_client, alice):
    gen = make_generation(
        alice,
        prompt="a heron lands",
        negative_prompt="blur",
        model_name="kling-v1-6",
        mode="pro",
        duration="10",
        aspect_ratio="9:16",
        cfg_scale=0.8,
        visibility="private",
    )
    response = alice_client.get(f"/?remix={gen.public_id}")
    assert response.status_code == 200
    form = response.context["form"]
    assert not form.is_bound
    assert form.initial["model_name"] == "kling-v1-6" and form.initial["cfg_scale"] == 0.8
    body = response.content.decode()
    assert "a heron lands</textarea>" in body
    assert 'value="9:16" id="id_aspect_ratio_1" required checked>' in body
    assert "Remix</strong> of your clip" in body
    assert "$0.92" in body  # the estimate of the remixed choice


def test_anyone_may_remix_a_shared_clip_but_not_a_private_one(alice_client, bob):
    shared = make_generation(bob, prompt="bob's owl", status=Status.SUCCEEDED)
    private = make_generation(bob, visibility="private")
    response = alice_client.get(f"/?remix={shared.public_id}")
    assert response.status_code == 200 and "bob’s clip" in response.content.decode()
    assert alice_client.get(f"/?remix={private.public_id}").status_code == 404
    assert alice_client.get("/?remix=not-a-uuid").status_code == 404


def test_remix_with_htmx_answers_just_the_form(alice_client, alice):
    gen = make_generation(alice)
    response = alice_client.get(f"/?remix={gen.public_id}", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="prompt-form"')
    assert "my-cards" not in body.split("</form>")[-1]


def test_a_failed_card_offers_edit_and_retry(alice_client, alice):
    gen = make_generation(
        alice, prompt="[fail] stadium", status=Status.FAILED, error_message="moderation"
    )
    body = alice_client.get("/").content.decode()
    assert f'href="/?remix={gen.public_id}#composer">Edit and retry</a>' in body
    body = alice_client.get(f"/?remix={gen.public_id}").content.decode()
    assert "Edit and retry.</strong> The last try failed: moderation" in body


def test_retry_as_is_makes_a_new_job(alice_client, alice):
    gen = make_generation(alice, model_name="kling-v1-6", mode="pro", status=Status.FAILED)
    response = alice_client.post(reverse("generation-retry", args=[gen.public_id]))
    assert response.status_code == 302
    new = Generation.objects.exclude(pk=gen.pk).get()
    assert new.status == Status.QUEUED and new.external_task_id != gen.external_task_id
    assert (new.model_name, new.mode, new.prompt) == ("kling-v1-6", "pro", gen.prompt)


def test_only_failed_or_cancelled_jobs_of_ones_own_are_retried(alice_client, alice, bob):
    done = make_generation(alice, status=Status.SUCCEEDED)
    assert alice_client.post(reverse("generation-retry", args=[done.public_id])).status_code == 400
    bobs = make_generation(bob, status=Status.FAILED)
    assert alice_client.post(reverse("generation-retry", args=[bobs.public_id])).status_code == 404
    assert Generation.objects.count() == 2


def test_after_an_htmx_submit_the_form_keeps_its_settings(alice_client):
    response = alice_client.post(
        "/", {**VALID, "model_name": "kling-v1-6", "mode": "pro"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    form_html = body[body.index('<form id="prompt-form"') :]
    assert '<option value="kling-v1-6" selected>' in form_html
    assert 'id="id_prompt">\n</textarea>' in form_html  # empty, ready for the next prompt


# ---------------------------------------------------------------------------------------
# Prices


def test_a_failed_submit_without_js_shows_the_estimate(alice_client):
    response = alice_client.post(
        "/", {**VALID, "prompt": "", "model_name": "kling-v1", "mode": "pro", "duration": "10"}
    )
    assert response.status_code == 422
    assert "$0.92 · 7 units" in response.content.decode()


def test_a_choice_without_a_price_says_so(alice_client):
    Price.objects.filter(model_name="kling-v3").delete()
    response = alice_client.post("/", {**VALID, "prompt": "", "model_name": "kling-v3"})
    assert "no published price" in response.content.decode()


def test_the_page_carries_matrix_and_prices_for_the_script(alice_client):
    body = alice_client.get("/").content.decode()
    assert '<script id="capability-matrix" type="application/json">' in body
    assert '"kling-v1|std|5": "$0.13 \\u00b7 1 unit"' in body


def test_price_list_shows_every_offered_choice(alice_client):
    body = alice_client.get(reverse("prices")).content.decode()
    assert body.count("<tr>") == 1 + sum(
        len(m.modes or ("",)) * len(m.durations) for m in caps.MODELS.values()
    )
    assert "price not yet confirmed" in body  # Kling 2.5 Turbo std, 2.6, 3.0: seeded guesses


def test_admins_edit_prices(admin_client):
    assert admin_client.get("/admin/generations/price/").status_code == 200


# ---------------------------------------------------------------------------------------
# Cards: queue position, cancel, the finished notice


def test_queued_cards_show_their_place_in_the_fair_queue(alice_client, alice, bob, api_key):
    first = make_generation(alice)
    make_generation(bob)
    second = make_generation(alice)  # after bob's: every member's first job goes first
    body = alice_client.get("/").content.decode()
    assert "#1 in line" in body and "#3 in line" in body
    response = alice_client.get(reverse("generation-status", args=[second.public_id]))
    assert "#3 in line" in response.content.decode()
    assert "2 jobs ahead of it" in response.content.decode()
    assert (
        "Next to be sent"
        in alice_client.get(reverse("generation-status", args=[first.public_id])).content.decode()
    )


def poll_page(client, gens, version=None):
    """The page's one poll (views.live_cards) for these cards, as a page showing each at its
    version (or at `version`) sends it."""
    tokens = [f"{g.public_id.hex}:{version or g.card_version}:card" for g in gens]
    return client.post(reverse("live-cards"), {"live": tokens}, headers={"HX-Request": "true"})


def test_a_finished_clip_triggers_a_notice_for_its_owner(alice_client, alice):
    gen = make_generation(alice, status=Status.SUCCEEDED, prompt="a lighthouse in a storm")
    response = poll_page(alice_client, [gen], version="processing.processing.0")
    assert response.status_code == 286
    (event,) = json.loads(response["HX-Trigger"])["generationsFinished"]
    assert event == {
        "id": str(gen.public_id),
        "status": "succeeded",
        "prompt": "a lighthouse in a storm",
        "url": reverse("generation-detail", args=[gen.public_id]),
        "remix_url": f"/?remix={gen.public_id}",
    }


def test_no_notice_while_running_or_for_someone_elses_clip(client, alice, bob):
    client.force_login(bob)
    running = make_generation(bob, status=Status.PROCESSING)
    assert "HX-Trigger" not in poll_page(client, [running], version="submitted.-.0")
    alices = make_generation(alice, status=Status.SUCCEEDED)
    response = poll_page(client, [alices], version="processing.processing.0")
    assert response.status_code == 286 and "HX-Trigger" not in response


def test_stopping_an_in_flight_job_asks_first_without_js(alice_client, alice):
    gen = make_generation(alice, status=Status.PROCESSING)
    url = reverse("generation-cancel", args=[gen.public_id])
    response = alice_client.post(url, {"next": "/"})
    assert response.status_code == 200
    assert "The charge stands" in response.content.decode()
    gen.refresh_from_db()
    assert gen.status == Status.PROCESSING
    response = alice_client.post(url, {"next": "/", "confirm": "yes"})
    assert response.status_code == 302
    gen.refresh_from_db()
    assert gen.status == Status.CANCELLED and "may still charge" in gen.error_message


def test_in_flight_cards_confirm_with_htmx(alice_client, alice):
    gen = make_generation(alice, status=Status.SUBMITTED)
    body = alice_client.get("/").content.decode()
    assert 'hx-confirm="Kling is already making this clip, so the charge stands.' in body
    assert 'hx-vals=\'{"confirm": "yes"}\'' in body
    # A card that was still "queued" on screen: no confirm sent, so nothing is stopped.
    url = reverse("generation-cancel", args=[gen.public_id])
    response = alice_client.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Stop tracking…" in response.content.decode()
    gen.refresh_from_db()
    assert gen.status == Status.SUBMITTED


def test_every_state_reads_clearly(alice_client, alice):
    now = timezone.now()
    make_generation(alice, status=Status.SUBMITTED, submitted_at=now)
    make_generation(alice, status=Status.PROCESSING, submitted_at=now - timedelta(seconds=75))
    make_generation(alice, status=Status.CANCELLED, error_message="Cancelled before it was sent.")
    body = alice_client.get("/").content.decode()
    assert "Kling has it, starting soon" in body
    assert 'Generating · <span class="elapsed" data-elapsed="75">1:15</span>' in body
    assert "Cancelled before it was sent." in body


# ---------------------------------------------------------------------------------------
# Query counts do not grow with the number of generations


def _mixed_generations(owner, n: int) -> None:
    states = [Status.QUEUED, Status.PROCESSING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    for i in range(n):
        make_generation(owner, status=states[i % len(states)], prompt=f"clip {i}")


@pytest.mark.parametrize("n", [3, 30])
def test_studio_page_query_count_is_fixed(alice_client, alice, bob, n, django_assert_num_queries):
    _mixed_generations(alice, n)
    _mixed_generations(bob, n)
    Favourite.objects.create(user=alice, generation=Generation.objects.filter(owner=alice).first())
    # session, user, cards (with owner and star), keys, queue positions, prices, budget
    # limits, budget usage, the header's unread count
    with django_assert_num_queries(9):
        assert alice_client.get("/").status_code == 200


@pytest.mark.parametrize("n", [3, 30])
def test_status_partial_query_count_is_fixed(alice_client, alice, n, django_assert_num_queries):
    _mixed_generations(alice, n)
    queued = Generation.objects.filter(status=Status.QUEUED).last()
    done = Generation.objects.filter(status=Status.SUCCEEDED).last()
    # session, user, the card, queue positions (queued cards only)
    with django_assert_num_queries(4):
        alice_client.get(reverse("generation-status", args=[queued.public_id]))
    with django_assert_num_queries(3):
        alice_client.get(reverse("generation-status", args=[done.public_id]))


def test_an_unchanged_card_answers_204_without_rendering(alice_client, alice):
    gen = make_generation(alice, status=Status.PROCESSING, remote_status="processing")
    page = alice_client.get("/").content.decode()
    # the live card carries its version for the page's poll
    assert f'value="{gen.public_id.hex}:{gen.card_version}:card"' in page
    assert poll_page(alice_client, [gen]).status_code == 204
    shown = gen.card_version
    Generation.objects.filter(pk=gen.pk).update(remote_status="submitted")
    changed = poll_page(alice_client, [gen], version=shown)
    assert changed.status_code == 200 and 'name="live"' in changed.content.decode()


def test_the_card_view_hides_private_work(client, alice, bob):
    gen = make_generation(alice, status=Status.PROCESSING, visibility="private")
    client.force_login(bob)
    url = reverse("generation-status", args=[gen.public_id])
    assert client.get(url).status_code == 404


def test_card_links_are_what_reverse_makes(alice, settings):
    """`card_url` (reversed once per name, the clip's id put in) gives reverse's string for
    every link a card has, under a script prefix too."""
    from django.urls import set_script_prefix

    from generations.templatetags.studio import card_url

    gen = make_generation(alice)
    names = [
        "generation-status", "generation-poster", "generation-video", "generation-detail",
        "generation-retry", "generation-cancel", "generation-visibility", "generation-favourite",
        "clip-boards", "mine-view", "gallery-view",
    ]  # fmt: skip
    for prefix in ("/", "/studio/"):
        set_script_prefix(prefix)
        try:
            assert card_url("studio") == reverse("studio")
            for name in names:
                assert card_url(name, gen.public_id) == reverse(name, args=[gen.public_id])
                assert card_url(name, gen.public_id).startswith(prefix)
        finally:
            set_script_prefix("/")


def test_a_cancel_that_came_too_late_says_so(alice_client, alice):
    """Issue 19: a cancel that lost the race with a free key slot turned the card into
    "Kling has it, starting soon" without a word."""
    gen = make_generation(alice, status=Status.SUBMITTED, create_sent=True, task_id="t-1")
    url = reverse("generation-cancel", args=[gen.public_id])
    response = alice_client.post(url, {"confirm": "no"}, headers={"HX-Request": "true"})
    assert response.status_code == 200  # a card in flight needs its confirmation first
    put(Generation.objects.filter(pk=gen.pk), status=Status.QUEUED)
    # The member pressed cancel on a queued card; a worker sent it first.
    with mock.patch("generations.lifecycle.cancel", return_value=False):
        response = alice_client.post(url, headers={"HX-Request": "true"})
    events = json.loads(response["HX-Trigger"])
    assert events["notice"]["text"].startswith("Too late to cancel")


def test_a_cancel_refreshes_the_budget_line(alice_client, alice):
    """Issue 19: after a cancel the line under Generate still counted the job."""
    MemberLimits.objects.create(user=alice, jobs_per_day=5)
    gen = make_generation(alice, price_usd=Decimal("0.2"))
    assert "1 of 5 jobs today" in alice_client.get("/").content.decode()
    url = reverse("generation-cancel", args=[gen.public_id])
    response = alice_client.post(url, headers={"HX-Request": "true"})
    room = json.loads(response["HX-Trigger"])["budgetChanged"]
    assert room["label"].startswith("0 of 5 jobs today") and room["jobs_left"] == 5
    assert "notice" not in json.loads(response["HX-Trigger"])

"""A clip's page follows its job and says each thing once (issue 12, items 1, 2, 4, 5)."""

import re
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Price, Status
from tests.factories import make_generation, put

pytestmark = pytest.mark.django_db


def detail(client, gen: Generation) -> str:
    response = client.get(reverse("generation-detail", args=[gen.public_id]))
    assert response.status_code == 200
    return response.content.decode()


def poll_detail(client, gen: Generation, v: str):
    """The clip page's one poll (views.live_cards), from a body that shows version `v`."""
    token = f"{gen.public_id.hex}:{v}:detail"
    return client.post(reverse("live-cards"), {"live": token}, headers={"HX-Request": "true"})


def test_the_polled_body_carries_state_timings_cost_and_actions(alice_client, alice):
    gen = make_generation(
        alice, status=Status.SUBMITTED, task_id="t-1", submitted_at=timezone.now()
    )
    page = detail(alice_client, gen)
    # The whole body is live (the page's poll asks for it), not just the card at the top.
    assert re.search(r'<div class="detail" id="detail-body"[^>]*>\s*<input[^>]*name="live"', page)
    assert f'value="{gen.public_id.hex}:{gen.card_version}:detail"' in page
    assert "Stop tracking…" in page and "Download mp4" not in page

    put(
        Generation.objects.filter(pk=gen.pk),
        status=Status.SUCCEEDED,
        finished_at=timezone.now(),
        units=Decimal("1"),
    )
    gen.refresh_from_db()
    gen.video.save("clip.mp4", ContentFile(b"mp4"))
    response = poll_detail(alice_client, gen, v="submitted.-.0")
    assert response.status_code == 286  # final: htmx stops polling
    body = response.content.decode()
    assert 'id="detail-body"' in body and 'name="live"' not in body
    assert "<dt>State</dt><dd>Finished</dd>" in body
    assert "1.00 charged" in body and "(estimated)" not in body
    assert "Download mp4" in body and "Delete…" in body and "Stop tracking" not in body


def test_an_unchanged_job_still_answers_204_from_the_detail_page(alice_client, alice):
    gen = make_generation(alice, status=Status.PROCESSING, remote_status="processing")
    assert poll_detail(alice_client, gen, v=gen.card_version).status_code == 204


@pytest.mark.parametrize("status", [Status.FAILED, Status.PROCESSING])
def test_one_set_of_actions_one_prompt_one_error(alice_client, alice, status):
    gen = make_generation(
        alice,
        status=status,
        prompt="A unique heron prompt",
        error_message="Refused by moderation" if status == Status.FAILED else "",
        error_code="1301" if status == Status.FAILED else "",
        submitted_at=timezone.now(),
    )
    page = detail(alice_client, gen)
    text = re.sub(r"<[^>]+>", "", page)  # what the member reads, not attributes
    assert text.count("A unique heron prompt") == 2  # the page title and the prompt itself
    assert page.count("<article") == 0  # no card with its own actions above the panel
    assert page.count("Remix") + page.count("Edit and retry") == 1
    if status == Status.FAILED:
        assert text.count("Refused by moderation") == 1
        assert "Retry as is" in page and "(code 1301)" in page
    else:
        # One way to stop: hx-confirm with JavaScript, the confirm page without.
        assert text.count("Stop tracking…") == 1 and "hx-confirm" in page


def test_stopping_from_the_detail_page_answers_the_detail_body(alice_client, alice):
    gen = make_generation(alice, status=Status.PROCESSING, task_id="t-2")
    url = reverse("generation-cancel", args=[gen.public_id])
    response = alice_client.post(
        url, {"confirm": "yes", "detail": "1"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert 'id="detail-body"' in body and "<dt>State</dt><dd>Cancelled</dd>" in body


def test_the_detail_page_speaks_the_cards_vocabulary(alice_client, alice):
    gen = make_generation(alice, model_name="kling-v3", mode="std", aspect_ratio="9:16")
    page = detail(alice_client, gen)
    assert "<dd>Kling 3.0</dd>" in page and "<dd>Standard</dd>" in page
    assert "<dd>Portrait 9:16</dd>" in page
    assert "kling-v3" not in page and "<dd>std</dd>" not in page


def test_the_gallery_mode_filter_speaks_it_too(alice_client):
    page = alice_client.get(reverse("my-generations")).content.decode()
    assert '<option value="std">Standard</option>' in page
    assert ">Std<" not in page and ">Pro<" not in page


def test_a_job_refused_at_create_was_never_sent(alice_client, alice):
    gen = make_generation(alice, status=Status.FAILED, error_code="1301", error_message="no")
    page = detail(alice_client, gen)
    assert "not sent yet" not in page and "Kling never made a task for it" in page


def test_failed_jobs_are_not_charged(alice_client, alice):
    Price.objects.update_or_create(
        model_name="kling-v1", mode="std", duration="5", defaults={"usd": Decimal("0.13")}
    )
    gen = make_generation(alice, status=Status.FAILED, error_message="no")
    page = detail(alice_client, gen)
    assert '<dd id="detail-cost">Not charged</dd>' in page and "No price on file" not in page


def test_a_new_card_says_just_now(alice_client, alice):
    make_generation(alice)
    page = alice_client.get("/").content.decode()
    assert "just now" in page and "0 minutes ago" not in page

"""Making many at once (issue 12): variations, a batch of prompts, all or nothing."""

import pytest

from generations.kling import capabilities as caps
from generations.models import Generation

pytestmark = pytest.mark.django_db

FORM = {
    "model_name": "kling-v1",
    "mode": "std",
    "duration": "5",
    "aspect_ratio": "16:9",
    "cfg_scale": "0.5",
    "camera": "auto",
    "visibility": "team",
}


def test_variations_make_that_many_jobs_of_the_same_parameters(alice_client):
    response = alice_client.post("/", {**FORM, "prompt": "A fox", "variations": "3"})
    assert response.status_code == 302
    gens = list(Generation.objects.all())
    assert len(gens) == 3 and len({g.external_task_id for g in gens}) == 3
    assert {(g.prompt, g.model_name, g.mode, g.duration) for g in gens} == {
        ("A fox", "kling-v1", "std", "5")
    }


def test_a_batch_makes_one_job_per_line(alice_client):
    prompts = "A fox\n\n  An owl at night  \nA heron\n"
    alice_client.post("/", {**FORM, "prompt": prompts, "batch": "on", "variations": "2"})
    made = sorted(Generation.objects.values_list("prompt", flat=True))
    assert made == sorted(["A fox", "An owl at night", "A heron"] * 2)


def test_a_bad_line_is_named_and_nothing_is_created(alice_client):
    lines = ["A fox", "x" * (caps.PROMPT_MAX + 1), "An owl", "y" * (caps.PROMPT_MAX + 5)]
    response = alice_client.post("/", {**FORM, "prompt": "\n".join(lines), "batch": "on"})
    body = response.content.decode()
    assert response.status_code == 422
    assert f"Line 2: keep it to {caps.PROMPT_MAX} characters" in body
    assert f"Line 4: keep it to {caps.PROMPT_MAX} characters (it has 505)" in body
    assert not Generation.objects.exists()


def test_a_batch_holds_at_most_twenty(alice_client):
    prompts = "\n".join(f"clip {i}" for i in range(caps.BATCH_MAX + 1))
    response = alice_client.post("/", {**FORM, "prompt": prompts, "batch": "on"})
    assert "A batch holds up to 20 prompts; this one has 21." in response.content.decode()
    assert not Generation.objects.exists()


def test_without_batch_a_long_prompt_is_still_refused(alice_client):
    response = alice_client.post("/", {**FORM, "prompt": "a\n" * 300})
    assert response.status_code == 422 and not Generation.objects.exists()


@pytest.mark.parametrize("variations", ["0", "5", "-1", "many"])
def test_variations_out_of_range_are_refused(alice_client, variations):
    response = alice_client.post("/", {**FORM, "prompt": "A fox", "variations": variations})
    assert response.status_code == 422 and not Generation.objects.exists()


def test_htmx_answers_every_new_card(alice_client):
    response = alice_client.post(
        "/", {**FORM, "prompt": "A fox", "variations": "4"}, headers={"HX-Request": "true"}
    )
    assert response.content.decode().count('<article class="card gen') == 4


def test_the_estimate_multiplies(alice_client):
    response = alice_client.post(
        "/", {**FORM, "prompt": "", "variations": "3"}
    )  # invalid: the form comes back with its estimate
    assert "× 3 jobs = $0.39" in response.content.decode()


def test_a_budget_refusal_creates_none_of_the_submit(alice_client, alice):
    from generations.models import MemberLimits

    MemberLimits.objects.create(user=alice, jobs_per_day=2)
    response = alice_client.post("/", {**FORM, "prompt": "A fox", "variations": "3"})
    assert response.status_code == 422 and not Generation.objects.exists()

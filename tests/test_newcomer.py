"""What a newcomer tripped on outside the detail page (issue 12, items 3, 8, 9, 10)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from generations.kling import capabilities as caps
from generations.management.commands.run_studio import DEMO_ADMIN, Command
from generations.models import ApiKey, Price, Status
from generations.studio.forms import GenerationForm, price_table
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


def test_with_no_key_a_queued_card_waits_for_an_admin(alice_client, alice):
    gen = make_generation(alice)
    for body in (
        alice_client.get("/").content.decode(),
        alice_client.get(reverse("generation-status", args=[gen.public_id])).content.decode(),
    ):
        assert "waits for an admin to add a CometAPI key" in body
        assert "Next to be sent to Kling" not in body


def test_with_a_key_it_shows_its_place_in_line(alice_client, alice, api_key):
    make_generation(alice)
    body = alice_client.get("/").content.decode()
    assert "Next to be sent to Kling" in body and "waits for an admin" not in body


def test_a_superusers_banner_links_to_adding_a_key(client, admin_user, alice):
    client.force_login(admin_user)
    body = client.get("/").content.decode()
    assert reverse("admin:generations_apikey_add") in body
    client.force_login(alice)
    assert reverse("admin:generations_apikey_add") not in client.get("/").content.decode()


def test_the_demo_makes_an_admin_in_its_own_database(django_user_model):
    password = Command()._prepare_demo()
    admin = django_user_model.objects.get(username=DEMO_ADMIN)
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)
    assert Command()._prepare_demo() != password  # a fresh one each start


def test_the_form_defaults_to_a_current_model():
    assert GenerationForm().current("model_name") == caps.DEFAULT_MODEL != "kling-v1"


def test_every_offered_choice_has_a_price_and_new_ones_are_to_confirm():
    prices = price_table()
    for name, model in caps.MODELS.items():
        for mode in model.modes or ("",):
            for duration in model.durations:
                assert caps.price_key(name, mode, duration) in prices, (name, mode, duration)
    assert not Price.objects.get(model_name="kling-v3", mode="pro", duration="5").confirmed
    assert Price.objects.get(model_name="kling-v1", mode="std", duration="5").confirmed
    assert "not yet confirmed" in prices[caps.price_key("kling-v3", "std", "5")].label


def test_admins_generation_list_shows_each_clips_cost(admin_client, alice):
    make_generation(alice, status=Status.SUCCEEDED, price_usd=Decimal("0.13"))
    make_generation(alice, status=Status.FAILED, price_usd=Decimal("0.13"))
    body = admin_client.get(reverse("admin:generations_generation_changelist")).content.decode()
    assert "$0.13" in body and "Not charged" in body and "Kling 1.0 · Standard" in body


def test_cards_show_each_clips_cost(alice_client, alice):
    make_generation(alice, status=Status.SUCCEEDED, price_usd=Decimal("0.33"))
    make_generation(alice, status=Status.FAILED, price_usd=Decimal("0.47"))
    body = alice_client.get("/").content.decode()
    assert '<span class="cost">$0.33</span>' in body
    assert '<span class="cost">Not charged</span>' in body and "$0.47" not in body


def test_a_new_key_does_not_offer_to_keep_a_current_one(admin_client):
    body = admin_client.get(reverse("admin:generations_apikey_add")).content.decode()
    assert "leave empty to keep" not in body.lower()
    key = ApiKey.objects.create(name="k", secret="sk-0123456789abcdef")
    body = admin_client.get(reverse("admin:generations_apikey_change", args=[key.pk])).content
    assert b"leave empty to keep the current one" in body


def test_admin_says_whose_administration_it_is(admin_client):
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert "Kling Studio administration" in body and "Django administration" not in body


def test_favicon_ico_is_served_without_login(client):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/img/favicon.ico"
    with open(finders.find("img/favicon.ico"), "rb") as f:
        assert f.read(4) == b"\x00\x00\x01\x00"  # an ICO file
    assert "/static/img/favicon.ico" in client.get(reverse("login")).content.decode()


def test_the_policy_refusal_says_it_once():
    from generations.kling import ContentRejected
    from generations.lifecycle import member_message

    text = member_message(ContentRejected("content security policy: refused", code=1301))
    assert text.count("policy") == 1


def test_with_the_only_key_disabled_the_card_does_not_ask_to_add_one(alice_client, alice, api_key):
    """Issue 19: cards asked an admin to "add" a key that existed but was disabled."""
    ApiKey.objects.filter(pk=api_key.pk).update(is_active=False)
    make_generation(alice)
    body = alice_client.get("/").content.decode()
    assert "add a CometAPI key" not in body
    assert "the team's keys are disabled or refused" in body


def test_a_queued_card_says_its_price_is_charged_once_sent(alice_client, alice, api_key):
    """Issue 19: a queued card showed "$0.20" beside "Not charged until it is sent"."""
    make_generation(alice, price_usd=Decimal("0.2"))
    body = alice_client.get("/").content.decode()
    assert "$0.20 once sent" in body and "Not charged until it is sent" in body

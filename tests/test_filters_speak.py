"""Filters never fail silently (issue 12, item 7)."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Status
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


def test_a_reversed_date_range_is_swapped_and_said(alice_client, alice):
    gen = make_generation(alice, status=Status.SUCCEEDED)
    today = timezone.localdate()
    since, until = today + timedelta(days=2), today - timedelta(days=2)
    response = alice_client.get(reverse("my-generations"), {"since": since, "until": until})
    body = response.content.decode()
    assert f'id="gen-{gen.public_id}"' in body  # not an empty page
    assert "From was after To, so they were swapped" in body


@pytest.mark.parametrize("url_name", ["my-generations-zip", "gallery-zip"])
def test_a_zip_of_nothing_answers_a_message(alice_client, alice, url_name):
    make_generation(alice, status=Status.FAILED)
    response = alice_client.get(reverse(url_name), {"q": "nothing like this"}, follow=True)
    assert response.headers["Content-Type"].startswith("text/html")
    assert "nothing to download" in response.content.decode()
    assert response.redirect_chain[-1][0].endswith("?q=nothing+like+this")


def test_deleting_from_a_filtered_list_returns_to_it(alice_client, alice):
    gen = make_generation(alice, status=Status.SUCCEEDED, prompt="a heron")
    gen.video.save("c.mp4", ContentFile(b"mp4"))
    listing = reverse("my-generations") + "?q=heron"
    page = alice_client.get(listing).content.decode()
    detail_link = f"/g/{gen.public_id}/?back=%2Fmine%2F%3Fq%3Dheron"
    assert detail_link in page
    detail = alice_client.get(detail_link).content.decode()
    assert '<input type="hidden" name="back" value="/mine/?q=heron">' in detail
    response = alice_client.post(
        reverse("generation-delete", args=[gen.public_id]), {"back": "/mine/?q=heron"}
    )
    assert response.status_code == 302 and response["Location"] == listing
    assert not Generation.objects.exists()


@pytest.mark.parametrize("back", ["https://evil.example/mine/", "//evil.example/", "/admin/"])
def test_back_goes_only_to_our_lists(alice_client, alice, back):
    gen = make_generation(alice, status=Status.SUCCEEDED)
    response = alice_client.post(reverse("generation-delete", args=[gen.public_id]), {"back": back})
    assert response["Location"] == reverse("my-generations")

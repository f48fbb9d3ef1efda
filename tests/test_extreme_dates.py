"""Issue 8, finding 4: dates at the ends of the calendar are reported and ignored, not 500s,
in the galleries and their zips, whatever the site's TIME_ZONE."""

import pytest
from django.urls import reverse

from tests.factories import make_generation

pytestmark = pytest.mark.django_db

URLS = ["gallery", "my-generations", "gallery-zip", "my-generations-zip"]
# Tokyo's and Kiritimati's old local mean times put the start of 0001-01-01 (local) before
# datetime.min in UTC; Los Angeles puts the end of 9999-12-31 after datetime.max.
ZONES = ["UTC", "America/Los_Angeles", "Pacific/Kiritimati", "Asia/Tokyo"]
EXTREMES = [
    {"until": "9999-12-31"},
    {"since": "9999-12-31"},
    {"since": "0001-01-01"},
    {"until": "0001-01-01"},
    {"since": "0001-01-01", "until": "9999-12-31"},
]


def get(client, name: str, params: dict):
    response = client.get(reverse(name), params, follow=True)  # an empty zip: a page
    if response.streaming:
        b"".join(response.streaming_content)
    return response


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("params", EXTREMES)
@pytest.mark.parametrize("name", URLS)
def test_it_never_fails_on_extreme_dates(client, alice, settings, zone, params, name):
    settings.TIME_ZONE = zone
    make_generation(alice, status="succeeded")
    client.force_login(alice)
    assert get(client, name, params).status_code == 200


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Tokyo"])
def test_it_reports_the_date_it_ignored(client, alice, settings, zone):
    settings.TIME_ZONE = zone
    gen = make_generation(alice, prompt="still shown")
    client.force_login(alice)
    response = client.get(reverse("my-generations"), {"until": "9999-12-31"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Some filters were not applied" in body
    assert "To: Pick a date between 0001-01-02 and 9999-12-29." in body
    assert str(gen.public_id) in body  # ignored, not applied as "nothing matches"


def test_the_last_and_first_accepted_days_still_filter(client, alice, settings):
    settings.TIME_ZONE = "America/Los_Angeles"
    gen = make_generation(alice, prompt="inside")
    client.force_login(alice)
    response = client.get(reverse("my-generations"), {"since": "0001-01-02", "until": "9999-12-29"})
    assert "Some filters were not applied" not in response.content.decode()
    assert str(gen.public_id) in response.content.decode()

"""Usage for staff: the page, its SVG chart and the CSV agree, cost a fixed number of
queries whatever the range, refuse members who aren't staff and bad dates (never a 500)."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from generations.models import ApiKey, Status
from tests.factories import make_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, charlie):
    client.force_login(charlie)
    return client


@pytest.fixture
def jobs(alice, bob):
    """A small month: alice's two finished and one failed on key "team", bob's cancelled
    (sent, so charged) and queued (no key yet), and one of alice's from long ago."""
    key = ApiKey.objects.create(name="team", secret="sk-usage-0000000000000")
    today = timezone.localdate()
    at = timezone.make_aware(timezone.datetime.combine(today, timezone.datetime.min.time()))
    at += timedelta(hours=1)
    made = [
        make_generation(
            alice,
            status=Status.SUCCEEDED,
            api_key=key,
            price_usd=Decimal("0.13"),
            units=Decimal("1"),
            created_at=at,
        ),
        make_generation(
            alice,
            status=Status.SUCCEEDED,
            api_key=key,
            price_usd=Decimal("0.13"),
            units=Decimal("1"),
            created_at=at,
        ),
        make_generation(
            alice, status=Status.FAILED, api_key=key, price_usd=Decimal("0.13"), created_at=at
        ),
        make_generation(
            bob,
            status=Status.CANCELLED,
            create_sent=True,
            api_key=key,
            model_name="kling-v1-6",
            price_usd=Decimal("0.26"),
            created_at=at,
        ),
        make_generation(
            bob,
            status=Status.QUEUED,
            price_usd=Decimal("0.26"),
            created_at=at,
            prompt="=HYPERLINK(1)",
        ),
        make_generation(
            alice,
            status=Status.SUCCEEDED,
            price_usd=Decimal("9"),
            created_at=at - timedelta(days=400),
        ),
    ]
    return made


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_page_sums_this_month_by_member_model_key_and_day(staff_client, jobs):
    page = staff_client.get("/usage/")
    assert page.status_code == 200
    text = page.text
    # 0.13 + 0.13 (failed refunded) + 0.26 (cancelled after sending) + 0.26 (queued)
    assert "<strong>$0.78</strong> spent on <strong>5</strong> jobs" in text
    assert "2 finished, 1 failed, 1 cancelled" in text
    assert '<rect class="chart-bar"' in text and "style=" not in text.split("<main")[1]
    assert (
        '<th scope="row">alice</th><td>3</td><td>2</td><td>1</td><td>0</td><td>$0.26</td>' in text
    )
    assert '<th scope="row">— (not sent)</th><td>1</td>' in text


def test_the_csv_has_the_columns_and_its_sums_match_the_page(staff_client, jobs):
    today = timezone.localdate()
    start = today.replace(day=1)
    response = staff_client.get(f"/usage.csv?start={start}&end={today}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    header = response.content.decode().splitlines()[0]
    assert (
        header == "day,member,model,mode,duration,key,jobs,succeeded,failed,cancelled,spend,units"
    )
    rows = read_csv(response)
    assert sum(int(r["jobs"]) for r in rows) == 5
    assert sum(Decimal(r["spend"]) for r in rows) == Decimal("0.78")
    assert sum(Decimal(r["units"] or 0) for r in rows) == Decimal("2")
    alice = [r for r in rows if r["member"] == "alice"]
    assert alice == [
        {
            "day": today.isoformat(),
            "member": "alice",
            "model": "kling-v1",
            "mode": "std",
            "duration": "5",
            "key": "team",
            "jobs": "3",
            "succeeded": "2",
            "failed": "1",
            "cancelled": "0",
            "spend": "0.260",
            "units": "2.00",
        }
    ]


def test_both_days_are_included_and_old_jobs_appear_in_their_range(staff_client, jobs):
    old = jobs[-1].created_at.astimezone(timezone.get_current_timezone()).date()
    rows = read_csv(staff_client.get(f"/usage.csv?start={old}&end={old}"))
    assert [(r["member"], r["spend"]) for r in rows] == [("alice", "9.000")]
    page = staff_client.get(f"/usage/?start={old}&end={old}")
    assert "<strong>$9</strong> spent on <strong>1</strong> job " in page.text


def test_a_cell_that_looks_like_a_formula_is_neutralised(staff_client, django_user_model):
    mallory = django_user_model.objects.create_user("=cmd|' /C calc'!A0", password="x")
    make_generation(mallory, price_usd=Decimal("1"))
    today = timezone.localdate()
    rows = read_csv(staff_client.get(f"/usage.csv?start={today}&end={today}"))
    assert rows[0]["member"].startswith("'=")


@pytest.mark.parametrize("days", [1, 31, 366])
def test_the_page_costs_the_same_queries_whatever_the_range(
    staff_client, jobs, days, django_assert_num_queries
):
    end = timezone.localdate()
    start = end - timedelta(days=days - 1)
    # session, user, the one grouped usage query, the nav's unread-notification count
    with django_assert_num_queries(4):
        assert staff_client.get(f"/usage/?start={start}&end={end}").status_code == 200


def test_members_who_are_not_staff_get_403(alice_client):
    assert alice_client.get("/usage/").status_code == 403
    assert alice_client.get("/usage.csv?start=2026-01-01&end=2026-01-31").status_code == 403


def test_visitors_are_sent_to_log_in(client):
    assert client.get("/usage/").status_code == 302
    assert client.get("/usage.csv").status_code == 302


@pytest.mark.parametrize(
    "query",
    [
        "start=yesterday",
        "start=2026-13-01&end=2026-12-31",
        "start=2026-02-01&end=2026-01-01",
        "start=0001-01-01&end=2026-01-01",
        "start=2026-01-01&end=9999-12-31",
        "start=" + "9" * 5000,
        "start=2026-01-01%00",
        "start=2020-01-01&end=2026-01-01",
    ],
)
def test_bad_dates_get_a_clear_message_not_a_500(staff_client, query):
    page = staff_client.get(f"/usage/?{query}")
    assert page.status_code == 400
    assert 'class="error" role="alert"' in page.text


@pytest.mark.parametrize(
    "query", ["", "start=2026-01-01", "start=x&end=y", "start=2026-02-01&end=2026-01-01"]
)
def test_bad_csv_dates_get_a_clear_message(staff_client, query):
    if query == "start=2026-01-01":
        # One end given: the other defaults (today), so this one is fine.
        assert staff_client.get(f"/usage.csv?{query}").status_code == 200
        return
    if query == "":
        assert staff_client.get("/usage.csv").status_code == 200  # this month
        return
    response = staff_client.get(f"/usage.csv?{query}")
    assert response.status_code == 400
    assert response.content.decode().startswith("Bad date range:")


def test_the_csv_takes_a_range_longer_than_the_page(staff_client, jobs):
    response = staff_client.get("/usage.csv?start=2000-01-01&end=2030-12-31")
    assert response.status_code == 200
    assert sum(int(r["jobs"]) for r in read_csv(response)) == 6


def test_staff_see_the_usage_link(staff_client):
    assert 'href="/usage/"' in staff_client.get("/").text


def test_members_dont(alice_client):
    assert 'href="/usage/"' not in alice_client.get("/").text

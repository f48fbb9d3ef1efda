"""Budgets: limits per member and for the team, counted from acceptance, refunded by state,
checked before anything is sent upstream, and never raced past."""

import threading
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from generations import lifecycle
from generations.governance import budgets
from generations.models import Generation, MemberLimits, Price, Status, TeamLimits
from tests.factories import make_generation

pytestmark = pytest.mark.django_db

V1_STD_5 = {
    "prompt": "a fox",
    "model_name": "kling-v1",
    "mode": "std",
    "duration": "5",
    "aspect_ratio": "16:9",
    "cfg_scale": 0.5,
}


def set_limits(user, jobs=None, spend=None) -> None:
    MemberLimits.objects.update_or_create(
        user=user, defaults={"jobs_per_day": jobs, "monthly_spend": spend}
    )


def test_it_snapshots_the_price_on_acceptance(alice):
    gen = lifecycle.create_generation(alice, **V1_STD_5)
    assert gen.price_usd == Decimal("0.130")
    Price.objects.filter(model_name="kling-v1", mode="std", duration="5").update(usd="9")
    gen.refresh_from_db()
    assert gen.price_usd == Decimal("0.130")  # the edit doesn't rewrite history


def test_it_refuses_the_job_over_the_daily_limit_before_anything_is_saved(alice):
    set_limits(alice, jobs=2)
    lifecycle.create_generation(alice, **V1_STD_5)
    lifecycle.create_generation(alice, **V1_STD_5)
    with pytest.raises(budgets.LimitExceeded) as exc:
        lifecycle.create_generation(alice, **V1_STD_5)
    message = str(exc.value)
    assert "Daily job limit" in message
    assert "used 2 of your 2 jobs today" in message
    assert "resets at midnight (UTC)" in message
    assert Generation.objects.count() == 2


def test_it_checks_all_jobs_of_one_submit_together(alice):
    set_limits(alice, jobs=3)
    lifecycle.create_generation(alice, **V1_STD_5)
    with pytest.raises(budgets.LimitExceeded, match="this submit has 3 jobs"):
        lifecycle.create_generations(alice, [V1_STD_5] * 3)
    assert Generation.objects.count() == 1  # none of the three, not two of them
    assert len(lifecycle.create_generations(alice, [V1_STD_5] * 2)) == 2


def test_it_refuses_spend_over_the_monthly_limit_and_says_when_it_resets(alice):
    set_limits(alice, spend=Decimal("0.30"))
    lifecycle.create_generation(alice, **V1_STD_5)  # 0.13
    lifecycle.create_generation(alice, **V1_STD_5)  # 0.26
    with pytest.raises(budgets.LimitExceeded) as exc:
        lifecycle.create_generation(alice, **V1_STD_5)
    message = str(exc.value)
    assert "Monthly spend limit: you have used $0.26 of your $0.30 this month" in message
    assert f"It resets on 1 {budgets.next_month_start():%B %Y}" in message


def test_the_team_limit_counts_every_member(alice, bob):
    TeamLimits.objects.filter(pk=1).update(monthly_spend=Decimal("0.26"))
    lifecycle.create_generation(alice, **V1_STD_5)
    lifecycle.create_generation(bob, **V1_STD_5)
    with pytest.raises(budgets.LimitExceeded, match="Team monthly spend limit: the team has used"):
        lifecycle.create_generation(alice, **V1_STD_5)


def test_a_job_without_a_price_is_refused_only_under_a_spend_limit(alice):
    Price.objects.filter(model_name="kling-v1", mode="std", duration="5").delete()
    assert lifecycle.create_generation(alice, **V1_STD_5).price_usd is None
    set_limits(alice, jobs=10)
    lifecycle.create_generation(alice, **V1_STD_5)
    set_limits(alice, spend=Decimal(5))
    with pytest.raises(budgets.LimitExceeded, match="no price on file"):
        lifecycle.create_generation(alice, **V1_STD_5)


@pytest.mark.parametrize(
    ("status", "create_sent", "counts"),
    [
        (Status.QUEUED, False, True),
        (Status.SUBMITTING, True, True),
        (Status.PROCESSING, True, True),
        (Status.SUCCEEDED, True, True),
        (Status.FAILED, True, False),  # failed upstream: Kling charges nothing
        (Status.FAILED, False, False),  # refused at create
        (Status.CANCELLED, False, False),  # cancelled before it reached CometAPI
        (Status.CANCELLED, True, True),  # stopped tracking: the charge stands
    ],
)
def test_refunds_follow_the_rows_state(alice, status, create_sent, counts):
    make_generation(alice, status=status, create_sent=create_sent, price_usd=Decimal("0.5"))
    standing = budgets.standing(alice)
    assert standing.jobs_today == int(counts)
    assert standing.spend_month == (Decimal("0.5") if counts else 0)


def test_a_cancelled_queued_job_gives_its_slot_back(alice):
    set_limits(alice, jobs=1)
    gen = lifecycle.create_generation(alice, **V1_STD_5)
    with pytest.raises(budgets.LimitExceeded):
        lifecycle.create_generation(alice, **V1_STD_5)
    assert lifecycle.cancel(gen)
    lifecycle.create_generation(alice, **V1_STD_5)


def test_days_and_months_are_calendar_ones(alice):
    set_limits(alice, jobs=1, spend=Decimal(1))
    yesterday = budgets.day_start() - timedelta(minutes=1)
    last_month = budgets.month_start() - timedelta(minutes=1)
    make_generation(alice, created_at=yesterday, price_usd=Decimal("0.5"))
    make_generation(alice, created_at=last_month, price_usd=Decimal("0.9"))
    standing = budgets.standing(alice)
    assert standing.jobs_today == 0
    expected = Decimal("0.5") if yesterday >= budgets.month_start() else 0
    assert standing.spend_month == expected
    lifecycle.create_generation(alice, **V1_STD_5)


def test_the_standing_label():
    s = budgets.Standing(3, 20, Decimal("4.2"), Decimal(25))
    assert s.label == "3 of 20 jobs today · $4.20 of $25 this month"
    assert budgets.Standing(1, None, Decimal(0), None).label == "1 job today · $0 this month"
    assert budgets.Standing(2, 2, Decimal("1"), Decimal("1.5")).usd_left == Decimal("0.5")


# -- the studio


def test_the_studio_shows_where_a_member_stands(alice_client, alice):
    set_limits(alice, jobs=20, spend=Decimal(25))
    make_generation(alice, price_usd=Decimal("4.2"))
    response = alice_client.get("/")
    assert "1 of 20 jobs today · $4.20 of $25 this month" in response.text


def test_the_estimate_says_when_a_job_would_not_fit(alice_client, alice):
    set_limits(alice, spend=Decimal("0.10"))
    response = alice_client.get("/")
    assert "Won&#x27;t fit: $0.10 left this month." in response.text


def test_a_refused_submit_shows_the_limit_and_sends_nothing(alice_client, alice, cometapi):
    set_limits(alice, jobs=0)
    response = alice_client.post("/", V1_STD_5 | {"visibility": "team"})
    assert response.status_code == 422
    assert "Daily job limit: you have used 0 of your 0 jobs today" in response.text
    assert Generation.objects.count() == 0
    assert cometapi.create_count() == 0


def test_a_refused_htmx_submit_comes_back_in_the_form(alice_client, alice):
    set_limits(alice, jobs=0)
    response = alice_client.post(
        "/", V1_STD_5 | {"visibility": "team"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#prompt-form"
    assert "Daily job limit" in response.text


def test_retry_over_the_limit_says_why(alice_client, alice):
    gen = make_generation(alice, status=Status.FAILED)
    set_limits(alice, jobs=0)
    response = alice_client.post(f"/g/{gen.public_id}/retry/", follow=True)
    assert "Daily job limit" in response.text
    assert Generation.objects.count() == 1


# -- the race at the cap


@pytest.mark.django_db(transaction=True)
def test_ten_simultaneous_submits_one_below_the_cap_let_exactly_one_through(alice):
    set_limits(alice, jobs=5)
    for _ in range(4):
        lifecycle.create_generation(alice, **V1_STD_5)
    start = threading.Barrier(10)
    outcomes: list[str] = []

    def submit() -> None:
        try:
            start.wait()
            lifecycle.create_generation(alice, **V1_STD_5)
            outcomes.append("ok")
        except budgets.LimitExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["ok"] + ["refused"] * 9
    assert Generation.objects.filter(owner=alice).count() == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_of_two_members_cant_overshoot_the_team_limit(alice, bob):
    # A transaction test starts from empty tables: no seeded prices, no team row.
    Price.objects.create(model_name="kling-v1", mode="std", duration="5", usd=Decimal("0.13"))
    TeamLimits.objects.create(pk=1, monthly_spend=Decimal("0.65"))
    make_generation(alice, price_usd=Decimal("0.52"))
    start = threading.Barrier(10)
    outcomes: list[str] = []

    def submit(user) -> None:
        try:
            start.wait()
            lifecycle.create_generation(user, **V1_STD_5)
            outcomes.append("ok")
        except budgets.LimitExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=([alice, bob][i % 2],)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["ok"] + ["refused"] * 9


# -- the shell


def test_set_limits_sets_and_clears(alice):
    out = StringIO()
    call_command("set_limits", "alice", "--jobs-per-day", "20", "--monthly-spend", "25", stdout=out)
    assert out.getvalue().strip() == "alice: 20 jobs a day, $25 a month."
    call_command("set_limits", "alice", "--jobs-per-day", "none", stdout=out)
    limits = MemberLimits.objects.get(user=alice)
    assert (limits.jobs_per_day, limits.monthly_spend) == (None, Decimal(25))
    call_command("set_limits", "--team", "--monthly-spend", "100.5", stdout=out)
    assert TeamLimits.objects.get(pk=1).monthly_spend == Decimal("100.50")
    call_command("set_limits", "--team", "--monthly-spend", "none", stdout=out)
    assert TeamLimits.objects.get(pk=1).monthly_spend is None


@pytest.mark.parametrize(
    "args",
    [
        ["nobody", "--jobs-per-day", "3"],
        ["alice"],
        ["alice", "--jobs-per-day", "-1"],
        ["alice", "--jobs-per-day", "lots"],
        ["alice", "--monthly-spend", "NaN"],
        ["alice", "--monthly-spend", "1e30"],
        ["alice", "--monthly-spend", "abc"],
        ["--team", "--jobs-per-day", "3"],
        ["--team"],
        ["alice", "--team", "--monthly-spend", "3"],
        [],
    ],
)
def test_set_limits_refuses_bad_input_clearly(alice, args):
    with pytest.raises(CommandError):
        call_command("set_limits", *args, stdout=StringIO())


def test_it_uses_the_configured_time_zone(alice, settings):
    settings.TIME_ZONE = "Pacific/Auckland"
    timezone.deactivate()
    assert budgets.day_start().utcoffset() == budgets.day_start().tzinfo.utcoffset(
        budgets.day_start()
    )
    set_limits(alice, jobs=0)
    with pytest.raises(budgets.LimitExceeded, match=r"midnight \(Pacific/Auckland\)"):
        lifecycle.create_generation(alice, **V1_STD_5)


# -- admin


@pytest.fixture
def admin_client_(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="root-pass")
    client.force_login(admin)
    return client


def test_admin_sets_a_members_limits_on_their_user_page(admin_client_, alice):
    url = f"/admin/auth/user/{alice.pk}/change/"
    page = admin_client_.get(url)
    assert page.status_code == 200
    assert "Budget limits" in page.text
    form = {
        "username": "alice",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-user": str(alice.pk),
        "limits-0-jobs_per_day": "2",
        "limits-0-monthly_spend": "",
    }
    response = admin_client_.post(url, form)
    assert response.status_code == 302, response.text
    limits = MemberLimits.objects.get(user=alice)
    assert (limits.jobs_per_day, limits.monthly_spend) == (2, None)


def test_admin_team_budget_page(admin_client_):
    assert admin_client_.get("/admin/generations/teamlimits/").status_code == 200
    response = admin_client_.post(
        "/admin/generations/teamlimits/1/change/", {"monthly_spend": "50"}
    )
    assert response.status_code == 302
    assert TeamLimits.objects.get().monthly_spend == Decimal(50)

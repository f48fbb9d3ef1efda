"""The ledger (issue 20): an append-only record of money that outlives clips, members and keys,
written once per job and kind by the engine, read by every figure of money."""

import csv
import io
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from generations import lifecycle
from generations.governance import budgets
from generations.models import (
    ApiKey,
    AppendOnly,
    Entry,
    Generation,
    LedgerEntry,
    MemberLimits,
    Price,
    Status,
)
from tests.factories import DEFAULTS, drive, make_generation

pytestmark = pytest.mark.django_db

V1_STD_5 = DEFAULTS | {"prompt": "a fox"}  # the studio form's defaults


def kinds(gen: Generation) -> list[tuple[str, Decimal, int]]:
    return [
        (e.kind, e.amount, e.jobs)
        for e in LedgerEntry.objects.filter(job=gen.public_id).order_by("id")
    ]


# -- what the engine writes


def test_a_job_made_to_the_end_has_its_charge_its_key_and_its_result(cometapi, alice):
    gen = lifecycle.create_generation(alice, **V1_STD_5)
    price = gen.price_usd
    assert kinds(gen) == [("charge", price, 1)]
    gen = drive(gen, cometapi)
    assert gen.status == Status.SUCCEEDED
    assert kinds(gen) == [("charge", price, 1), ("sent", 0, 0), ("result", 0, 0)]
    sent, result = LedgerEntry.objects.filter(job=gen.public_id).exclude(kind=Entry.CHARGE)
    assert sent.key_name == "team" and sent.price == price
    assert result.outcome == "succeeded" and result.units == gen.units
    assert result.member_name == "alice" and result.model_name == "kling-v1"


def test_a_failed_job_is_refunded_once_whatever_the_engine_retries(cometapi, alice):
    gen = lifecycle.create_generation(alice, **{**V1_STD_5, "prompt": "[fail] a fox"})
    gen = drive(gen, cometapi)
    assert gen.status == Status.FAILED
    price = gen.price_usd
    assert kinds(gen)[-1] == ("refund", -price, -1)
    lifecycle.base.fail(gen, "lost", "again")  # a retried end: no row moves, nothing written
    Generation.objects.filter(pk=gen.pk).move(Status.PROCESSING, Status.FAILED)
    assert [k for k, _, _ in kinds(gen)].count("refund") == 1
    assert budgets.standing(alice).jobs_today == 0


def test_a_cancel_before_sending_refunds_and_one_after_does_not(cometapi, alice):
    waiting = lifecycle.create_generation(alice, **V1_STD_5)
    assert lifecycle.cancel(waiting)
    assert kinds(waiting)[-1] == ("refund", -waiting.price_usd, -1)
    running = lifecycle.create_generation(alice, **V1_STD_5)
    lifecycle.submit(running.pk)
    running.refresh_from_db()
    assert lifecycle.cancel(running)
    end = LedgerEntry.objects.get(job=running.public_id, kind=Entry.RESULT)
    assert (end.outcome, end.amount, end.key_name) == ("cancelled", 0, "team")


# -- append-only


def test_entries_are_never_changed_or_deleted(alice):
    make_generation(alice, price_usd=Decimal("0.2"))
    entry = LedgerEntry.objects.get()
    with pytest.raises(AppendOnly):
        LedgerEntry.objects.update(amount=0)
    with pytest.raises(AppendOnly):
        LedgerEntry.objects.all().delete()
    with pytest.raises(AppendOnly):
        entry.delete()
    entry.amount = Decimal(0)
    with pytest.raises(AppendOnly):
        entry.save()
    assert LedgerEntry.objects.get().amount == Decimal("0.2")


def test_admin_shows_entries_read_only(admin_client, alice):
    make_generation(alice, price_usd=Decimal("0.2"))
    entry = LedgerEntry.objects.get()
    page = admin_client.get(reverse("admin:generations_ledgerentry_changelist"), {"q": "alice"})
    assert page.status_code == 200 and "alice" in page.content.decode()
    change = reverse("admin:generations_ledgerentry_change", args=[entry.pk])
    assert admin_client.post(change, {"amount": "0"}).status_code == 403
    delete = reverse("admin:generations_ledgerentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.get().amount == Decimal("0.2")


# -- deleting things takes no money off


@pytest.fixture
def month(alice, bob):
    """This month: alice's finished $0.20 clip on key "team", her failed one (refunded),
    bob's finished $0.50 on key "spare"; alice has limits so the line counts them."""
    team = ApiKey.objects.create(name="team", secret="sk-ledger-team-00000000")
    spare = ApiKey.objects.create(name="spare", secret="sk-ledger-spare-0000000")
    MemberLimits.objects.create(user=alice, jobs_per_day=14, monthly_spend=Decimal(5))
    done = make_generation(
        alice, status=Status.SUCCEEDED, api_key=team, task_id="t1", price_usd=Decimal("0.2")
    )
    make_generation(
        alice, status=Status.FAILED, api_key=team, task_id="t2", price_usd=Decimal("0.2")
    )
    bobs = make_generation(
        bob, status=Status.SUCCEEDED, api_key=spare, task_id="t3", price_usd=Decimal("0.5")
    )
    return {"done": done, "bobs": bobs, "team": team, "spare": spare}


def figures(admin_client, alice) -> dict:
    """Everything that shows money: alice's budget line, /usage/, its CSV, admin's keys."""
    usage = admin_client.get(reverse("usage")).content.decode()
    csv_rows = list(
        csv.DictReader(io.StringIO(admin_client.get(reverse("usage-csv")).content.decode()))
    )
    keys = admin_client.get(reverse("admin:generations_apikey_changelist")).content.decode()
    keys = keys[keys.index("<tbody>") : keys.index("</tbody>")]
    return {
        "line": budgets.standing(alice).label,
        "usage": usage[usage.index("<main") :],
        "csv": sorted(
            (r["member"], r["key"], r["jobs"], r["spend"], r["succeeded"]) for r in csv_rows
        ),
        "keys": keys,
    }


def test_deleting_a_finished_clip_changes_no_figure(admin_client, alice, month):
    before = figures(admin_client, alice)
    # The failed job is refunded: one job, $0.20.
    assert before["line"].startswith("1 of 14 jobs today · $0.20 of $5")
    month["done"].delete()
    assert figures(admin_client, alice) == before


def test_deleting_a_member_changes_no_figure_and_keeps_their_name(admin_client, alice, bob, month):
    before = figures(admin_client, alice)
    assert any(row[0] == "bob" for row in before["csv"])
    bob.delete()  # cascades their clips
    after = figures(admin_client, alice)
    assert after == before
    assert LedgerEntry.objects.filter(member_name="bob", member=None).exists()


def test_deleting_a_key_changes_no_figure_of_the_others(admin_client, alice, month):
    before = figures(admin_client, alice)
    month["spare"].delete()
    after = figures(admin_client, alice)
    assert (after["line"], after["usage"], after["csv"]) == (
        before["line"],
        before["usage"],
        before["csv"],
    )
    team_row = before["keys"][before["keys"].index(">team<") :]
    assert team_row[: team_row.index("</tr>")] in after["keys"]


# -- the migration


@pytest.mark.django_db(transaction=True)
def test_existing_jobs_migrate_with_the_same_totals_per_member_key_model_and_day():
    from collections import Counter

    before = [("generations", "0016_no_pump_lease")]
    after = [("generations", "0017_ledger")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Old = old.get_model("generations", "Generation")
    User = old.get_model("auth", "User")
    Key = old.get_model("generations", "ApiKey")
    ann, ben = User.objects.create(username="ann"), User.objects.create(username="ben")
    key = Key.objects.create(name="k", secret="x")
    cases = [
        (ann, "succeeded", True, key, "0.200"),
        (ann, "failed", True, key, "0.200"),
        (ann, "cancelled", False, None, "0.300"),
        (ann, "cancelled", True, key, "0.300"),
        (ben, "queued", False, None, "0.500"),
        (ben, "processing", True, key, "0.125"),
        (ben, "succeeded", True, key, None),
    ]
    for owner, status, sent, api_key, price in cases:
        Old.objects.create(
            owner=owner, prompt="p", model_name="kling-v1", duration="5", aspect_ratio="16:9",
            status=status, create_sent=sent, api_key=api_key,
            price_usd=Decimal(price) if price else None,
        )  # fmt: skip

    def old_totals():  # what budgets.CHARGED summed before the ledger
        totals = Counter()
        for g in Old.objects.all():
            charged = g.status != "failed" and not (g.status == "cancelled" and not g.create_sent)
            if charged:
                group = (g.owner.username, g.api_key.name if g.api_key else "", g.model_name)
                totals[group] += g.price_usd or 0
                totals[(g.owner.username, "jobs")] += 1
        return totals

    expected = old_totals()
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        New = executor.loader.project_state(after).apps.get_model("generations", "LedgerEntry")
        totals = Counter()
        paid_by = {e.job: e.key_name for e in New.objects.filter(kind="sent")}
        for e in New.objects.all():
            totals[(e.member_name, paid_by.get(e.job, ""), e.model_name)] += e.amount
            totals[(e.member_name, "jobs")] += e.jobs
        assert {k: v for k, v in totals.items() if v} == {k: v for k, v in expected.items() if v}
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


# -- concurrency


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_submits_racing_a_limit_and_refunds_racing_each_other(alice, api_key):
    """Twelve threads submit against a limit of five jobs a day while eight threads end the
    same two jobs as failed: five are accepted, and each failed job has one refund."""
    Price.objects.create(model_name="kling-v1", mode="std", duration="5", usd=Decimal("0.13"))
    MemberLimits.objects.create(user=alice, jobs_per_day=7)
    failing = [
        make_generation(alice, status=Status.PROCESSING, api_key=api_key, task_id=f"t{i}")
        for i in range(2)
    ]
    start = threading.Barrier(20)
    outcomes: list[str] = []

    def submit() -> None:
        try:
            start.wait(timeout=30)
            lifecycle.create_generation(alice, **V1_STD_5)
            outcomes.append("ok")
        except budgets.LimitExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    def end(gen) -> None:
        try:
            start.wait(timeout=30)
            lifecycle.base.fail(gen, "lost", "gone")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(12)]
    threads += [threading.Thread(target=end, args=(failing[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # 2 jobs at the start, 7 allowed: the refunds may come before some submits, so 5 to 7
    # are accepted, never more than the limit allows.
    accepted = outcomes.count("ok")
    assert 5 <= accepted <= 7 and len(outcomes) == 12
    for gen in failing:
        assert LedgerEntry.objects.filter(job=gen.public_id, kind=Entry.REFUND).count() == 1
    assert budgets.standing(alice).jobs_today <= 7
    charges = LedgerEntry.objects.filter(kind=Entry.CHARGE).count()
    assert charges == 2 + accepted

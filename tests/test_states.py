"""The table of job states (models/states.py): its shape, the sets derived from it, the guard
that keeps every status change inside it, and the migration that named the implicit states."""

import ast
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from generations.models import (
    ALWAYS_CHARGED,
    CANCELLABLE,
    CHARGED_IF_SENT,
    HOLDS_SLOT,
    IN_FLIGHT,
    LIVE,
    STATES,
    TERMINAL,
    TO_READ,
    TO_STORE,
    TO_SUBMIT,
    TRANSITIONS,
    Generation,
    IllegalTransition,
    Status,
)
from tests.factories import make_generation

S = Status
GENERATIONS = Path(__file__).resolve().parent.parent / "generations"


def test_every_status_has_one_row_and_moves_only_to_statuses():
    assert set(STATES) == set(Status.values)
    for source, targets in TRANSITIONS.items():
        assert targets <= set(Status.values), source
        assert source not in targets, f"{source}: a move to itself is not a transition"


def test_every_job_can_end_and_every_state_can_be_reached_from_the_queue():
    def reachable(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(S.QUEUED) == set(Status.values)
    for status in LIVE:
        assert reachable(status) & set(TERMINAL), f"{status} can never end"


def test_the_sets_the_product_reads_derive_from_the_table():
    assert TERMINAL == (S.SUCCEEDED, S.FAILED, S.CANCELLED)
    assert LIVE == (S.QUEUED, S.RETRYING, S.SUBMITTING, S.SUBMITTED, S.PROCESSING, S.STORING)
    assert HOLDS_SLOT == (S.RETRYING, S.SUBMITTING, S.SUBMITTED, S.PROCESSING)
    assert TO_SUBMIT == (S.QUEUED, S.RETRYING, S.SUBMITTING)
    assert TO_READ == (S.SUBMITTED, S.PROCESSING)
    assert TO_STORE == (S.STORING,)
    assert IN_FLIGHT == (S.SUBMITTED, S.PROCESSING, S.STORING)
    assert CANCELLABLE == (S.QUEUED, S.RETRYING, S.SUBMITTED, S.PROCESSING)
    assert S.FAILED not in ALWAYS_CHARGED and CHARGED_IF_SENT == (S.CANCELLED,)
    assert set(ALWAYS_CHARGED) == set(LIVE) | {S.SUCCEEDED}


def test_every_status_has_a_label_members_read():
    labels = dict(Status.choices)
    assert labels["retrying"] == "Sending again"
    assert labels["storing"] == "Saving the clip"
    assert len(set(labels.values())) == len(labels)


def test_a_move_the_table_has_is_made(alice):
    gen = make_generation(alice)
    assert Generation.objects.filter(pk=gen.pk).move(S.QUEUED, S.SUBMITTING) == 1
    assert Generation.objects.filter(pk=gen.pk).move(S.QUEUED, S.SUBMITTING) == 0  # moved on
    gen.refresh_from_db()
    assert gen.status == S.SUBMITTING


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.SUCCEEDED, S.QUEUED),
        (S.STORING, S.CANCELLED),  # a made and paid clip is kept
        (S.QUEUED, S.SUBMITTED),  # only through submitting
        (S.QUEUED, S.RETRYING),  # retrying means a create may have been sent
        (S.FAILED, S.SUCCEEDED),
    ],
)
def test_a_move_the_table_lacks_is_refused_even_when_no_row_would_move(alice, source, target):
    gen = make_generation(alice)
    with pytest.raises(IllegalTransition):
        Generation.objects.filter(pk=gen.pk).move(source, target)
    with pytest.raises(IllegalTransition):
        Generation.objects.none().move([S.QUEUED, source], target)


def test_a_status_set_around_the_table_is_refused(alice):
    gen = make_generation(alice)
    with pytest.raises(IllegalTransition):
        Generation.objects.filter(pk=gen.pk).update(status=S.SUCCEEDED)
    gen.refresh_from_db()
    assert gen.status == S.QUEUED
    Generation.objects.filter(pk=gen.pk).update(wait_reason="other fields are fine")


def _product_modules():
    for path in GENERATIONS.rglob("*.py"):
        parts = path.relative_to(GENERATIONS).parts
        if parts[0] in ("migrations", "simulator", "kling"):
            continue  # history, and the two packages without our models
        yield path


def test_no_product_code_sets_a_status_around_the_table():
    """`move` is the one way: no `x.status = ...` on a row, no `QuerySet.update(...)` that
    skips the guard, no `bulk_update` of the status."""
    found = []
    for path in _product_modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Call):
                continue
            where = f"{path.relative_to(GENERATIONS)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr == "status":
                        found.append(f"{where}: assigns .status")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = node.func
                around = func.attr == "update" and ast.unparse(func.value).endswith("QuerySet")
                if around and "models/generation.py" not in where:  # but move() itself
                    found.append(f"{where}: QuerySet.update around the guard")
                if func.attr == "bulk_update" and "status" in ast.unparse(node):
                    found.append(f"{where}: bulk_update of the status")
    # seed_demo builds finished rows before saving them (a creation, not a move).
    found = [f for f in found if not f.startswith("management/commands/seed_demo.py")]
    assert not found, found


@pytest.mark.django_db(transaction=True)
def test_rows_in_flight_when_it_deploys_take_their_named_state_and_back():
    before = [("generations", "0014_engine_claims")]
    after = [("generations", "0015_job_states")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Old = old.get_model("generations", "Generation")
    owner = old.get_model("auth", "User").objects.create(username="before-the-states")
    common = {"owner": owner, "prompt": "p", "model_name": "kling-v1", "duration": "5"}

    def row(**fields):
        return Old.objects.create(aspect_ratio="16:9", **common, **fields).pk

    storing = row(status="processing", remote_status="succeed", remote_video_url="https://x/v")
    processing = row(status="processing", remote_status="processing")
    retrying = row(status="queued", create_sent=True)
    queued = row(status="queued")
    finished = row(status="succeeded", remote_status="succeed")
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        New = executor.loader.project_state(after).apps.get_model("generations", "Generation")
        states = dict(New.objects.values_list("pk", "status"))
        assert states == {
            storing: "storing",
            processing: "processing",
            retrying: "retrying",
            queued: "queued",
            finished: "succeeded",
        }
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        assert dict(Old.objects.values_list("pk", "status")) == {
            storing: "processing",
            processing: "processing",
            retrying: "queued",
            queued: "queued",
            finished: "succeeded",
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


# What members see of the two named states.


def test_a_retrying_card_says_it_is_sent_again_and_asks_before_stopping(alice_client, alice):
    from django.urls import reverse

    gen = make_generation(alice, status=S.RETRYING, create_sent=True, wait_reason="")
    page = alice_client.get("/").content.decode()
    assert "Sending again" in page and "it may already be running" in page
    assert "Not charged until it is sent" not in page
    url = reverse("generation-cancel", args=[gen.public_id])
    asks = alice_client.post(url)  # without JavaScript: the confirmation page
    assert asks.status_code == 200 and "charge" in asks.content.decode()
    gen.refresh_from_db()
    assert gen.status == S.RETRYING
    alice_client.post(url, {"confirm": "yes"})
    gen.refresh_from_db()
    assert gen.status == S.CANCELLED and "may still charge" in gen.error_message


def test_a_storing_card_says_the_clip_is_being_saved_and_cannot_be_cancelled(alice_client, alice):
    import json

    from django.urls import reverse

    gen = make_generation(alice, status=S.STORING, create_sent=True, remote_status="succeed")
    page = alice_client.get("/").content.decode()
    assert "Saving the clip" in page and "saving the clip…" in page
    assert f'id="cancel-{gen.public_id}"' not in page
    url = reverse("generation-cancel", args=[gen.public_id])
    response = alice_client.post(url, {"confirm": "yes"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    notice = json.loads(response["HX-Trigger"])["notice"]["text"]
    assert notice.startswith("Too late to cancel: Kling has already made this clip")
    gen.refresh_from_db()
    assert gen.status == S.STORING


def test_the_state_filter_offers_the_named_states(alice_client, alice):
    make_generation(alice, status=S.STORING, create_sent=True)
    html = alice_client.get("/mine/", {"state": "storing"}).content.decode()
    assert '<option value="storing"' in html and "Saving the clip" in html
    assert '<option value="retrying"' in html

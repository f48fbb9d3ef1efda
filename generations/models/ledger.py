"""The ledger: an append-only record of money, which budgets, usage and admin read.

One job writes at most three entries, each once (unique per job and kind):

- `charge` when the job is accepted: its price (+), one job;
- `sent` when its create first may reach CometAPI: the key that pays for it (no money moves:
  it says whose account the job's money went through);
- its end, once, when it reaches a final state: `refund` when it failed or was cancelled
  before anything was sent (its price back (−), the job back), else `result` (finished, or
  cancelled after it was sent), with the units Kling reported, if it ever did.

Entries are never updated or deleted (the model, its queryset and admin refuse to) and
outlive what they name: the member, the key and the clip are nullable references with their
names snapshotted, so a deleted member's spend still shows under their name. Every entry
carries the job's acceptance time (`booked_at`), so a refund nets against its charge on the
day and in the month the job was accepted, whenever it comes.

Rounding: prices and amounts keep the Price table's three decimals everywhere they are
stored and summed; sums are quantized to 0.001 where SQLite returns floats, and only `usd()`
(governance/costs.py) rounds to cents, for display.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Entry(models.TextChoices):
    CHARGE = "charge", "Charge"
    SENT = "sent", "Sent"
    REFUND = "refund", "Refund"
    RESULT = "result", "Result"


ENDS = (Entry.REFUND, Entry.RESULT)


class AppendOnly(Exception):
    """Code tried to change or delete a ledger entry: a bug, never a member's doing."""


class LedgerQuerySet(models.QuerySet):
    def update(self, **fields):
        raise AppendOnly("ledger entries are never updated")

    def delete(self):
        raise AppendOnly("ledger entries are never deleted")

    def for_month_of(self, start):
        return self.filter(booked_at__gte=start)


class LedgerEntry(models.Model):
    kind = models.CharField(max_length=8, choices=Entry.choices)
    # The job (Generation.public_id): kept when the clip is deleted.
    job = models.UUIDField(default=uuid.uuid4)
    generation = models.ForeignKey(
        "generations.Generation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ledger",
    )
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ledger",
    )
    member_name = models.CharField(max_length=150)
    key = models.ForeignKey(
        "generations.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    key_name = models.CharField(max_length=100, blank=True)
    # What was made: the family (text today; image and extend to come), model and options.
    family = models.CharField(max_length=10, default="text")
    model_name = models.CharField(max_length=40)
    mode = models.CharField(max_length=10, blank=True)
    duration = models.CharField(max_length=4)
    sound = models.BooleanField(default=False)
    # The job's price as accepted (None: none on file), and this entry's effect on spend.
    price = models.DecimalField(max_digits=8, decimal_places=3, null=True, blank=True)
    amount = models.DecimalField(max_digits=8, decimal_places=3, default=0)
    jobs = models.SmallIntegerField(default=0)  # +1 charge, −1 refund
    # Ends only: how the job ended, and the units Kling reported (None: never reported).
    outcome = models.CharField(max_length=12, blank=True)
    units = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    booked_at = models.DateTimeField()  # the job's acceptance: its day and month
    # Its day in settings.TIME_ZONE, kept so usage groups by it without converting every
    # entry's time (on SQLite a Python call per row).
    booked_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)  # when this entry was written

    objects = LedgerQuerySet.as_manager()

    class Meta:
        ordering = ["booked_at", "id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=Q(kind__in=["charge", "sent"]),
                name="one_charge_and_one_sent_per_job",
            ),
            # Refund or result: one end per job, whatever the engine retries.
            models.UniqueConstraint(
                fields=["job"], condition=Q(kind__in=["refund", "result"]), name="one_end_per_job"
            ),
        ]
        indexes = [
            models.Index(fields=["member", "booked_at"], name="ledger_member_month"),
            models.Index(fields=["booked_at"], name="ledger_by_time"),
            models.Index(fields=["booked_on"], name="ledger_by_day"),
            models.Index(fields=["key", "kind", "booked_at"], name="ledger_key_month"),
            models.Index(fields=["job", "kind"], name="ledger_job"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} for {self.member_name} ({self.job})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnly("ledger entries are never updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("ledger entries are never deleted")


# What a move needs to know of each row to write its entries (GenerationQuerySet.move).
ROW_FIELDS = (
    "pk",
    "public_id",
    "owner_id",
    "owner__username",
    "api_key_id",
    "api_key__name",
    "task_id",
    "model_name",
    "mode",
    "duration",
    "price_usd",
    "create_sent",
    "units",
    "created_at",
)


def _entry(kind: str, row: dict, **fields) -> LedgerEntry:
    return LedgerEntry(
        kind=kind,
        job=row["public_id"],
        generation_id=row["pk"],
        member_id=row["owner_id"],
        member_name=row["owner__username"],
        model_name=row["model_name"],
        mode=row["mode"],
        duration=row["duration"],
        price=row["price_usd"],
        booked_at=row["created_at"],
        booked_on=timezone.localdate(row["created_at"]),
        **fields,
    )


def _key(row: dict) -> dict:
    return {"key_id": row["api_key_id"], "key_name": row["api_key__name"] or ""}


def record_charges(rows: list[dict]) -> None:
    """Jobs accepted: each one's charge (its price, one job)."""
    LedgerEntry.objects.bulk_create(
        [_entry(Entry.CHARGE, r, amount=r["price_usd"] or 0, jobs=1) for r in rows],
        ignore_conflicts=True,
    )


def record_sent(rows: list[dict]) -> None:
    """Jobs whose task now exists upstream: the key whose account pays for each."""
    LedgerEntry.objects.bulk_create(
        [_entry(Entry.SENT, r, **_key(r)) for r in rows if r["api_key_id"]],
        ignore_conflicts=True,
    )


def record_ends(rows: list[dict], outcome: str, refund: bool, units=None) -> None:
    """Jobs that reached a final state: a refund (their price and job back) when `refund`,
    else their result; Kling's units when it reported them. Once per job: a second end of
    the same job (an engine retrying) is ignored by the one_end_per_job constraint."""
    # An end names the key that paid for the job's task (its `sent`), if one did: so a key's
    # spend is its `sent` prices plus the refunds that name it.
    paid = {
        job: {"key_id": key_id, "key_name": key_name}
        for job, key_id, key_name in LedgerEntry.objects.filter(
            job__in=[r["public_id"] for r in rows], kind=Entry.SENT
        ).values_list("job", "key_id", "key_name")
    }
    entries = []
    for r in rows:
        reported = units if units is not None else r["units"]
        key = paid.get(r["public_id"], {})
        if refund:
            entry = _entry(
                Entry.REFUND, r, amount=-(r["price_usd"] or 0), jobs=-1, outcome=outcome, **key
            )
        else:
            entry = _entry(Entry.RESULT, r, outcome=outcome, **key)
        entry.units = reported
        entries.append(entry)
    LedgerEntry.objects.bulk_create(entries, ignore_conflicts=True)


def row_of(gen) -> dict:
    """ROW_FIELDS of a Generation in hand (its owner and key loaded or loadable)."""
    return {
        "pk": gen.pk,
        "public_id": gen.public_id,
        "owner_id": gen.owner_id,
        "owner__username": gen.owner.get_username(),
        "api_key_id": gen.api_key_id,
        "api_key__name": gen.api_key.name if gen.api_key_id else "",
        "task_id": gen.task_id,
        "model_name": gen.model_name,
        "mode": gen.mode,
        "duration": gen.duration,
        "price_usd": gen.price_usd,
        "create_sent": gen.create_sent,
        "units": gen.units,
        "created_at": gen.created_at,
    }


def history_entries(gen) -> list[LedgerEntry]:
    """Every entry a job in `gen`'s state has, for a row made in that state without the
    engine (the demo's seeded clips, a test's starting point), as migration 0017 wrote them
    for the jobs before the ledger: its charge; its `sent` if it is bound to a key; its end
    if it has ended (a refund when its state is not charged), naming that key."""
    from .states import TERMINAL, is_charged  # the table of states imports nothing of ours

    row = row_of(gen)
    price = row["price_usd"] or 0
    entries = [_entry(Entry.CHARGE, row, amount=price, jobs=1)]
    key = _key(row) if gen.api_key_id else {}
    if key:
        entries.append(_entry(Entry.SENT, row, **key))
    if gen.status in TERMINAL:
        refund = not is_charged(gen.status, gen.create_sent)
        end = {"amount": -price, "jobs": -1} if refund else {}
        kind = Entry.REFUND if refund else Entry.RESULT
        entries.append(_entry(kind, row, outcome=gen.status, units=gen.units, **key, **end))
    return entries


def record_history(gen) -> None:
    LedgerEntry.objects.bulk_create(history_entries(gen), ignore_conflicts=True)

"""Usage for staff: spend and jobs by member, model, key and day, as a page with a chart
drawn on the server (SVG) and as CSV.

Everything comes from one grouped query (`usage_rows`): one row per day × member × model ×
mode × duration × key, which is exactly the CSV, and which the page sums in Python. So the
page and the CSV always agree, and the query count doesn't grow with the range.

Everything is read from the ledger (models/ledger.py), so a deleted clip, member or key takes
nothing off it. A job belongs to the day it was accepted (its entries' booked_at, in
settings.TIME_ZONE) and to the key that paid for its task (its `sent` entry); its spend is its
charge less its refund, units are what Kling reported charging.
"""

import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from .. import csvsafe
from ..models import Entry, LedgerEntry, Status
from ..web import within_range
from . import costs

CSV_COLUMNS = [
    "day",
    "member",
    "model",
    "mode",
    "duration",
    "key",
    "jobs",
    "succeeded",
    "failed",
    "cancelled",
    "spend",
    "units",
]
# The page draws every day of its range; the CSV has no such limit.
MAX_PAGE_DAYS = 366
# The chart's drawing box (SVG user units); the page scales it to its width.
CHART_W, CHART_H, CHART_PAD = 720, 200, 24


class UsageRange(forms.Form):
    start = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Write the start as YYYY-MM-DD."},
    )
    end = forms.DateField(
        label="To (included)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Write the end as YYYY-MM-DD."},
    )

    def clean_start(self) -> date | None:
        return within_range(self.cleaned_data["start"])

    def clean_end(self) -> date | None:
        return within_range(self.cleaned_data["end"])

    def clean(self) -> dict:
        data = super().clean()
        today = timezone.localdate()
        start = data.get("start") or today.replace(day=1)
        end = data.get("end") or today
        if "start" in self.errors or "end" in self.errors:
            return data
        if end < start:
            raise forms.ValidationError("The end date is before the start date.")
        data["start"], data["end"] = start, end
        return data

    def error_text(self) -> str:
        return " ".join(e for errors in self.errors.values() for e in errors)


SPEND_PLACES = Decimal("0.001")  # as Price.usd and Generation.price_usd
UNITS_PLACES = Decimal("0.01")  # as Generation.units


def usage_rows(start: date, end: date) -> list[dict]:
    """One row per day × member × model × mode × duration × key, both days included. Sums
    come back at the columns' own precision (SQLite sums decimals as floats)."""
    rows = _grouped_rows(start, end)
    for row in rows:
        row["spend"] = Decimal(row["spend"] or 0).quantize(SPEND_PLACES)
        if row["units"] is not None:
            row["units"] = Decimal(row["units"]).quantize(UNITS_PLACES)
    return rows


def _grouped_rows(start: date, end: date) -> list[dict]:
    """The ledger's entries summed by day × member × model × mode × duration × key and kind
    (one query, no lookup per entry), then put together per key here: a job's charge carries
    no key (it is accepted before one is chosen), its `sent` names the key that pays and its
    end the same key, so a key's row takes the jobs and prices of its `sent` entries and its
    ends, and the row without a key keeps the charges no key has taken."""
    entries = LedgerEntry.objects.filter(booked_on__gte=start, booked_on__lte=end)
    group = ("day", "member_name", "model_name", "mode", "duration", "key_name")
    sums = (
        entries.annotate(day=F("booked_on"))
        .values(*group, "kind")
        .annotate(
            n=Count("id"),
            amount=Sum("amount"),
            price=Sum("price"),
            units=Sum("units"),
            succeeded=Count("id", filter=Q(outcome=Status.SUCCEEDED)),
            failed=Count("id", filter=Q(outcome=Status.FAILED)),
            cancelled=Count("id", filter=Q(outcome=Status.CANCELLED)),
        )
        .order_by()
    )
    rows: dict[tuple, dict] = {}

    def row(job: tuple, key: str) -> dict:
        if (job, key) not in rows:
            day, member, model, mode, duration = job
            rows[(job, key)] = {
                "day": day,
                "owner__username": member,
                "model_name": model,
                "mode": mode,
                "duration": duration,
                "api_key__name": key,
                "jobs": 0,
                "succeeded": 0,
                "failed": 0,
                "cancelled": 0,
                "spend": Decimal(0),
                "units": None,
            }
        return rows[(job, key)]

    for s in sums:
        job, key = tuple(s[g] for g in group[:-1]), s["key_name"]
        if s["kind"] == Entry.CHARGE:
            unsent = row(job, "")
            unsent["jobs"] += s["n"]
            unsent["spend"] += Decimal(s["amount"] or 0)
        elif s["kind"] == Entry.SENT:  # the key takes these jobs and their prices over
            price = Decimal(s["price"] or 0)
            row(job, key)["jobs"] += s["n"]
            row(job, key)["spend"] += price
            row(job, "")["jobs"] -= s["n"]
            row(job, "")["spend"] -= price
        else:  # an end: a refund's amount, the outcome, Kling's units
            ended = row(job, key)
            ended["spend"] += Decimal(s["amount"] or 0)
            for outcome in ("succeeded", "failed", "cancelled"):
                ended[outcome] += s[outcome]
            if s["units"] is not None:
                ended["units"] = Decimal(ended["units"] or 0) + Decimal(s["units"])
    kept = [
        r
        for r in rows.values()
        if r["jobs"]
        or r["spend"]
        or r["succeeded"]
        or r["failed"]
        or r["cancelled"]
        or r["units"] is not None
    ]
    order = ("day", "owner__username", "model_name", "mode", "duration", "api_key__name")
    return sorted(kept, key=lambda r: tuple(r[k] for k in order))


@dataclass
class Tally:
    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    spend: Decimal = field(default_factory=Decimal)
    units: Decimal = field(default_factory=Decimal)

    def add(self, row: dict) -> None:
        self.jobs += row["jobs"]
        self.succeeded += row["succeeded"]
        self.failed += row["failed"]
        self.cancelled += row["cancelled"]
        self.spend += row["spend"] or 0
        self.units += row["units"] or 0

    @property
    def spend_label(self) -> str:
        return costs.usd(self.spend)


def _model_label(row: dict) -> str:
    return " · ".join(p for p in (row["model_name"], row["mode"], f"{row['duration']} s") if p)


def summarise(rows: list[dict], start: date, end: date) -> dict:
    """The page's tables: totals by member, model, key and day (every day of the range)."""
    total = Tally()
    by: dict[str, dict[str, Tally]] = {"member": {}, "model": {}, "key": {}}
    days = {start + timedelta(days=i): Tally() for i in range((end - start).days + 1)}
    for row in rows:
        total.add(row)
        for group, name in (
            ("member", row["owner__username"]),
            ("model", _model_label(row)),
            ("key", row["api_key__name"] or "— (not sent)"),
        ):
            by[group].setdefault(name, Tally()).add(row)
        days.setdefault(row["day"], Tally()).add(row)
    ordered = {
        group: sorted(tallies.items(), key=lambda kv: (-kv[1].spend, -kv[1].jobs, kv[0]))
        for group, tallies in by.items()
    }
    day_rows = [(f"{d:%a %-d %b}", t) for d, t in sorted(days.items()) if t.jobs]
    return {
        "total": total,
        "days": days,
        "tables": [
            ("By member", "Member", ordered["member"], "member"),
            ("By model", "Model", ordered["model"], "model"),
            ("By key", "Key", ordered["key"], "key"),
            ("By day", "Day", day_rows, "day"),
        ],
    }


@dataclass(frozen=True)
class Bar:
    day: date
    x: float
    y: float
    width: float
    height: float
    tally: Tally


def chart(days: dict[date, Tally]) -> dict:
    """Bars of spend per day, in SVG user units (no inline styles: the strict CSP)."""
    peak = max((t.spend for t in days.values()), default=Decimal(0))
    slot = (CHART_W - 2 * CHART_PAD) / max(1, len(days))
    usable = CHART_H - 2 * CHART_PAD
    bars = []
    for i, (day, tally) in enumerate(sorted(days.items())):
        height = float(tally.spend / peak) * usable if peak else 0.0
        bars.append(
            Bar(
                day=day,
                x=round(CHART_PAD + i * slot + slot * 0.1, 2),
                y=round(CHART_H - CHART_PAD - height, 2),
                width=round(max(slot * 0.8, 0.5), 2),
                height=round(height, 2),
                tally=tally,
            )
        )
    return {
        "bars": bars,
        "width": CHART_W,
        "height": CHART_H,
        "pad": CHART_PAD,
        "baseline": CHART_H - CHART_PAD,
        "right": CHART_W - CHART_PAD,
        "peak": costs.usd(peak),
    }


def _staff_only(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Usage is for staff.")


@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    """Spend and jobs for a range of days (this month by default), by member, model, key and
    day, with the day chart. Three queries (session, user, usage) whatever the range."""
    _staff_only(request)
    form = UsageRange(request.GET)
    if form.is_valid():
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        if (end - start).days >= MAX_PAGE_DAYS:
            form.add_error(
                None,
                f"Choose at most {MAX_PAGE_DAYS} days here (the CSV takes any range).",
            )
    if not form.is_valid():
        return render(request, "generations/usage.html", {"form": form}, status=400)
    summary = summarise(usage_rows(start, end), start, end)
    query = urlencode({"start": start.isoformat(), "end": end.isoformat()})
    return render(
        request,
        "generations/usage.html",
        {
            "form": UsageRange(initial={"start": start, "end": end}),
            "start": start,
            "end": end,
            "csv_url": f"{reverse('usage-csv')}?{query}",
            "chart": chart(summary["days"]),
            **summary,
        },
    )


@require_GET
def usage_csv(request: HttpRequest) -> HttpResponse:
    _staff_only(request)
    form = UsageRange(request.GET)
    if not form.is_valid():
        return HttpResponse(
            f"Bad date range: {form.error_text()} Use ?start=YYYY-MM-DD&end=YYYY-MM-DD.\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    out = io.StringIO()
    writer = csvsafe.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in usage_rows(start, end):
        writer.writerow(
            [
                row["day"].isoformat(),
                row["owner__username"],
                row["model_name"],
                row["mode"],
                row["duration"],
                row["api_key__name"] or "",
                row["jobs"],
                row["succeeded"],
                row["failed"],
                row["cancelled"],
                row["spend"],
                "" if row["units"] is None else row["units"],
            ]
        )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{start}-{end}.csv"'
    return response

"""Budgets: the limits an admin sets, and the one check every submit goes through.

Limits (each optional, None: no limit): per member, jobs per calendar day and spend per
calendar month; for the team, spend per calendar month (models.MemberLimits, TeamLimits).
Days and months are calendar ones in settings.TIME_ZONE.

Spend is the Price table's price of each job, snapshotted when the job is accepted. A job
counts from acceptance, so a burst can't overshoot, and stops counting (is refunded) when it
ends failed (refused at create or failed upstream: Kling charges neither) or is cancelled
before a create may have reached CometAPI. Both are entries of the ledger
(models/ledger.py), which every figure of money reads: deleting a clip, a member or a key
takes nothing off it. `CHARGED` says the same of rows in hand (the table of states).

`admit` is the one check: the create path calls it with all the jobs of one submit (a batch
of prompts, variations) inside the transaction that inserts them, and it locks the member's
row, and the team's budget row, first: of concurrent submits by one member, each sees the
jobs the ones before it inserted, so none can race past a limit.
"""

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Q, Subquery, Sum
from django.utils import timezone

from ..models import ALWAYS_CHARGED, CHARGED_IF_SENT, LedgerEntry, MemberLimits, TeamLimits
from . import costs
from .costs import price_in, usd

# Rows whose price counts against a budget: accepted and not refunded (see above), from the
# table of states (models/states.py): a cancelled job counts only if its create was sent.
CHARGED = Q(status__in=ALWAYS_CHARGED) | Q(status__in=CHARGED_IF_SENT, create_sent=True)


class LimitExceeded(Exception):
    """A submit refused by a budget; str() is the message for the member."""


@dataclass(frozen=True)
class Standing:
    """Where a member stands: used so far and the limits (None: no limit)."""

    jobs_today: int
    jobs_per_day: int | None
    spend_month: Decimal
    monthly_spend: Decimal | None
    team_spend_month: Decimal | None = None  # only read when the team has a limit
    team_monthly_spend: Decimal | None = None

    @property
    def jobs_left(self) -> int | None:
        if self.jobs_per_day is None:
            return None
        return max(0, self.jobs_per_day - self.jobs_today)

    @property
    def usd_left(self) -> Decimal | None:
        """What the tighter of the member's and the team's monthly limit still allows."""
        room = []
        if self.monthly_spend is not None:
            room.append(self.monthly_spend - self.spend_month)
        if self.team_monthly_spend is not None and self.team_spend_month is not None:
            room.append(self.team_monthly_spend - self.team_spend_month)
        return max(Decimal(0), min(room)) if room else None

    @property
    def label(self) -> str:
        """ "3 of 20 jobs today · $4.20 of $25 this month" (without limits: "3 jobs today …")."""
        jobs = f"{self.jobs_today}" + (
            f" of {self.jobs_per_day}" if self.jobs_per_day is not None else ""
        )
        jobs += f" job{'' if (self.jobs_per_day or self.jobs_today) == 1 else 's'} today"
        spend = usd(self.spend_month)
        if self.monthly_spend is not None:
            spend += f" of {usd(self.monthly_spend)}"
        return f"{jobs} · {spend} this month"


def day_start(t: datetime | None = None) -> datetime:
    local = timezone.localtime(t)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(t: datetime | None = None) -> datetime:
    return day_start(t).replace(day=1)


def next_month_start(t: datetime | None = None) -> datetime:
    start = month_start(t)
    days = calendar.monthrange(start.year, start.month)[1]
    return timezone.localtime(start + timedelta(days=days)).replace(day=1, hour=0)


def _tz_name() -> str:
    return timezone.get_current_timezone_name()


def _resets_tomorrow() -> str:
    return f"It resets at midnight ({_tz_name()})."


def _resets_next_month() -> str:
    return f"It resets on {next_month_start():%-d %B %Y} ({_tz_name()})."


SPEND_PLACES = Decimal("0.001")  # as Price.usd: SQLite sums decimals as floats


def money(total) -> Decimal:
    """A sum of the ledger's amounts at their own precision."""
    return Decimal(total or 0).quantize(SPEND_PLACES)


def _member_usage(user, t: datetime) -> tuple[int, Decimal]:
    """Jobs today and spend this month of one member, from the ledger: one query."""
    usage = LedgerEntry.objects.filter(member=user, booked_at__gte=month_start(t)).aggregate(
        jobs=Sum("jobs", filter=Q(booked_at__gte=day_start(t))), spend=Sum("amount")
    )
    return usage["jobs"] or 0, money(usage["spend"])


def _team_spend(t: datetime) -> Decimal:
    spend = LedgerEntry.objects.filter(booked_at__gte=month_start(t)).aggregate(
        spend=Sum("amount")
    )["spend"]
    return money(spend)


def standing(user) -> Standing:
    """For the studio (never the page's poll): two queries (limits, usage), three with a
    team limit."""
    t = timezone.now()
    limits = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values("limits__jobs_per_day", "limits__monthly_spend")
        .annotate(team=Subquery(TeamLimits.objects.filter(pk=1).values("monthly_spend")))
        .first()
    ) or {}
    team_limit = limits.get("team")
    jobs, spend = _member_usage(user, t)
    return Standing(
        jobs_today=jobs,
        jobs_per_day=limits.get("limits__jobs_per_day"),
        spend_month=spend,
        monthly_spend=limits.get("limits__monthly_spend"),
        team_spend_month=_team_spend(t) if team_limit is not None else None,
        team_monthly_spend=team_limit,
    )


def prices_for(jobs: list[dict]) -> list[Decimal | None]:
    """Each job's price on file now (None: none on file): one query."""
    table = costs.price_table()
    found = [price_in(table, j["model_name"], j.get("mode", ""), j["duration"]) for j in jobs]
    return [price.usd if price else None for price in found]


def admit(user, jobs: list[dict]) -> list[Decimal | None]:
    """Check the jobs of one submit against every limit together, or raise LimitExceeded.
    Returns each job's price to snapshot on its row.

    Must run inside the transaction that inserts the jobs (transaction.atomic): the locks
    taken here hold until it commits, so the next submit counts these jobs.
    """
    t = timezone.now()
    # Lock order is always member, then team, so two submits can't deadlock. SQLite ignores
    # FOR UPDATE; there the IMMEDIATE transaction already holds the database's write lock.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    team_limit = (
        TeamLimits.objects.select_for_update()
        .filter(pk=1)
        .values_list("monthly_spend", flat=True)
        .first()
    )
    limits = MemberLimits.objects.filter(user=user).first()
    jobs_limit = limits.jobs_per_day if limits else None
    spend_limit = limits.monthly_spend if limits else None
    prices = prices_for(jobs)
    if jobs_limit is None and spend_limit is None and team_limit is None:
        return prices
    n = len(jobs)
    these = f"this submit has {n} job{'' if n == 1 else 's'}"
    if (spend_limit is not None or team_limit is not None) and None in prices:
        raise LimitExceeded(
            "This choice has no price on file, so it can't be counted against the monthly "
            "spend limit. Choose another model, mode or duration, or ask an admin to add "
            "its price."
        )
    cost = sum((p for p in prices if p is not None), Decimal(0))
    used_jobs, used_spend = _member_usage(user, t)
    if jobs_limit is not None and used_jobs + n > jobs_limit:
        raise LimitExceeded(
            f"Daily job limit: you have used {used_jobs} of your {jobs_limit} jobs today and "
            f"{these}. {_resets_tomorrow()}"
        )
    if spend_limit is not None and used_spend + cost > spend_limit:
        raise LimitExceeded(
            f"Monthly spend limit: you have used {usd(used_spend)} of your "
            f"{usd(spend_limit)} this month and {these} costing {usd(cost)}. "
            f"{_resets_next_month()}"
        )
    if team_limit is not None:
        team_spend = _team_spend(t)
        if team_spend + cost > team_limit:
            raise LimitExceeded(
                f"Team monthly spend limit: the team has used {usd(team_spend)} of its "
                f"{usd(team_limit)} this month and {these} costing {usd(cost)}. "
                f"{_resets_next_month()}"
            )
    return prices


def wont_fit(standing: Standing, price: Decimal | None) -> str:
    """Why one more job of this price would be refused, for the estimate ("" if it fits)."""
    if standing.jobs_left == 0:
        return "Won't fit: no jobs left today."
    left = standing.usd_left
    if left is not None and (price is None or price > left):
        return f"Won't fit: {usd(left)} left this month."
    return ""

from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generations.governance import audit
from generations.governance.costs import usd
from generations.models import MemberLimits, TeamLimits

UNSET = object()  # the option was not given: leave that limit as it is


def _jobs(value: str) -> int | None:
    if value.lower() == "none":
        return None
    try:
        n = int(value)
    except ValueError:
        raise CommandError(
            f"--jobs-per-day wants a whole number or 'none', not {value!r}."
        ) from None
    if n < 0:
        raise CommandError("--jobs-per-day can't be negative.")
    return n


def _amount(value: str) -> Decimal | None:
    if value.lower() == "none":
        return None
    try:
        usd = Decimal(value.removeprefix("$"))
    except InvalidOperation:
        raise CommandError(
            f"--monthly-spend wants an amount in USD or 'none', not {value!r}."
        ) from None
    if not usd.is_finite() or usd < 0 or usd >= Decimal("1e8"):
        raise CommandError("--monthly-spend must be an amount from 0 to 99999999.99.")
    return usd.quantize(Decimal("0.01"))


def _show(value) -> str:
    if value is None:
        return "no limit"
    return usd(value) if isinstance(value, Decimal) else str(value)


class Command(BaseCommand):
    help = (
        "Set a member's budget limits (jobs per day, spend per calendar month) or, with "
        "--team, the team's monthly spend limit. 'none' clears a limit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="The member (omit with --team)")
        parser.add_argument("--team", action="store_true", help="Set the team's limit")
        parser.add_argument("--jobs-per-day", dest="jobs", default=UNSET, metavar="N|none")
        parser.add_argument("--monthly-spend", dest="spend", default=UNSET, metavar="AMOUNT|none")

    def handle(self, *args, username, team, jobs, spend, **options) -> None:
        if team:
            if username:
                raise CommandError("Give either a username or --team, not both.")
            if jobs is not UNSET:
                raise CommandError("The team has a monthly spend limit only, no daily job limit.")
            if spend is UNSET:
                raise CommandError("Say the limit: --team --monthly-spend AMOUNT (or none).")
            limits, _ = TeamLimits.objects.get_or_create(pk=1)
            before = {"monthly_spend": limits.monthly_spend}
            limits.monthly_spend = _amount(spend)
            limits.save()
            self._audit("the team", before, {"monthly_spend": limits.monthly_spend})
            self.stdout.write(f"Team: {_show(limits.monthly_spend)} a month.")
            return
        if not username:
            raise CommandError("Name the member (or use --team).")
        if jobs is UNSET and spend is UNSET:
            raise CommandError("Give --jobs-per-day and/or --monthly-spend.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No member is called {username!r}.")
        limits, _ = MemberLimits.objects.get_or_create(user=user)
        before = {"jobs_per_day": limits.jobs_per_day, "monthly_spend": limits.monthly_spend}
        if jobs is not UNSET:
            limits.jobs_per_day = _jobs(jobs)
        if spend is not UNSET:
            limits.monthly_spend = _amount(spend)
        limits.save()
        after = {"jobs_per_day": limits.jobs_per_day, "monthly_spend": limits.monthly_spend}
        self._audit(user, before, after)
        self.stdout.write(
            f"{user.get_username()}: {_show(limits.jobs_per_day)} jobs a day, "
            f"{_show(limits.monthly_spend)} a month."
        )

    def _audit(self, target, before: dict, after: dict) -> None:
        if diff := audit.changes(before, after):
            audit.record(audit.shell_actor("set_limits"), audit.LIMITS_CHANGED, target, diff)

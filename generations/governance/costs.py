"""What a clip costs, in the words every page uses (cards, the detail page, admin).

Kling charges a task once it exists upstream and did not fail: a failed task and a job
cancelled before it was sent cost nothing; a job whose tracking was stopped is still charged.
"""

from decimal import Decimal

from ..models import IN_FLIGHT, Generation, Status


def not_charged(gen: Generation) -> bool:
    """The same rule as budgets.CHARGED, for one row already in hand."""
    if gen.status == Status.FAILED:
        return True
    return gen.status == Status.CANCELLED and not gen.create_sent


def usd_label(usd: Decimal) -> str:
    cents = usd.quantize(Decimal("0.01"))
    return f"${cents if cents == usd else usd.normalize()}"


def cost_label(gen: Generation, usd: Decimal | None) -> str:
    """ "$0.33", "$0.33 (estimated)", "Not charged" or "No price on file"."""
    if not_charged(gen):
        return "Not charged"
    if usd is None:
        return "No price on file"
    if gen.status == Status.SUCCEEDED or gen.status == Status.CANCELLED:
        return usd_label(usd)
    if gen.status in IN_FLIGHT:
        return f"{usd_label(usd)} (estimated)"
    return f"{usd_label(usd)} (estimated; not charged until it is sent)"


def short_cost(gen: Generation) -> str:
    """For a card: the price snapshotted when the job was accepted, "Not charged", or ""."""
    if not_charged(gen):
        return "Not charged"
    return usd_label(gen.price_usd) if gen.price_usd is not None else ""

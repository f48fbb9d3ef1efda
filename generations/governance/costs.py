"""What a clip costs, in the words every page uses (cards, the detail page, budgets, usage,
admin): the one money formatter and the one price lookup.

Kling charges a task once it exists upstream and did not fail: a failed task and a job
cancelled before it was sent cost nothing; a job whose tracking was stopped is still charged.
"""

from decimal import Decimal

from ..kling import capabilities as caps
from ..models import Generation, Price, Status, is_charged

CENT = Decimal("0.01")


def usd(amount: Decimal, *, exact: bool = False) -> str:
    """Money as members read it. Sums are kept exact (prices have three decimals); rounding
    happens here, for display only.

    exact=True, for a price or an estimate: every digit it has, and at least cents ("$0.125",
    "$2.00"). exact=False, for a total (spend, limits, usage): to the cent, and whole dollars
    without cents ("$4.20", "$25", "$0").
    """
    cents = amount.quantize(CENT)
    if exact:
        return f"${cents if cents == amount else amount.normalize()}"
    return f"${cents:f}" if cents != cents.to_integral_value() else f"${cents:.0f}"


def price_table() -> dict[str, Price]:
    """Every price on file, keyed as `capabilities.price_key`: one query."""
    return {caps.price_key(p.model_name, p.mode, p.duration): p for p in Price.objects.all()}


def price_in(table: dict[str, Price], model_name: str, mode: str, duration: str) -> Price | None:
    """The price of one choice in a `price_table` (None: none on file)."""
    return table.get(caps.price_key(model_name, mode, duration))


def price_for(gen: Generation) -> Price | None:
    """The price on file now for this clip's choice: one query."""
    return price_in(price_table(), gen.model_name, gen.mode, gen.duration)


def not_charged(gen: Generation) -> bool:
    """The same rule as budgets.CHARGED (the table of states), for one row already in hand."""
    return not is_charged(gen.status, gen.create_sent)


def cost_label(gen: Generation, price: Decimal | None) -> str:
    """ "$0.33", "$0.33 (estimated)", "Not charged" or "No price on file"."""
    if not_charged(gen):
        return "Not charged"
    if price is None:
        return "No price on file"
    if gen.status == Status.SUCCEEDED or gen.status == Status.CANCELLED:
        return usd(price, exact=True)
    if gen.status != Status.QUEUED:  # retrying, being sent, in flight or being stored
        return f"{usd(price, exact=True)} (estimated)"
    return f"{usd(price, exact=True)} (estimated; not charged until it is sent)"


def short_cost(gen: Generation) -> str:
    """For a card: the price snapshotted when the job was accepted ("once sent" while it
    waits in our queue, which charges nothing yet), "Not charged", or ""."""
    if not_charged(gen):
        return "Not charged"
    if gen.price_usd is None:
        return ""
    price = usd(gen.price_usd, exact=True)
    return f"{price} once sent" if gen.status == Status.QUEUED and not gen.create_sent else price

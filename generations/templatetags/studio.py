"""Small filters for the generation card."""

from datetime import datetime

from django import template
from django.utils import timezone

from generations import capabilities as caps

register = template.Library()


@register.filter
def seconds_since(start: datetime | None, end: datetime | None = None) -> int:
    """Whole seconds from `start` to `end` (or now): the card's running clock."""
    if start is None:
        return 0
    return max(0, int(((end or timezone.now()) - start).total_seconds()))


@register.filter
def clock(seconds: int | float | None) -> str:
    """42 → "0:42", 3725 → "1:02:05": short enough for a card, exact enough to watch."""
    s = int(seconds or 0)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@register.filter
def model_label(model_name: str) -> str:
    model = caps.MODELS.get(model_name)
    return model.label if model else model_name


@register.filter
def mode_label(mode: str) -> str:
    return {"std": "Standard", "pro": "Professional"}.get(mode, mode)

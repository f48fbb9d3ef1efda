"""Small filters for the generation card."""

import uuid
from datetime import datetime

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.timesince import timesince

from generations.governance import costs
from generations.kling import capabilities as caps

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
    return caps.model_label(model_name)


@register.filter
def mode_label(mode: str) -> str:
    return caps.mode_name(mode)


@register.filter
def ago(at: datetime | None) -> str:
    """ "just now" for the first minute, where timesince would say "0 minutes ago"."""
    if at is None:
        return ""
    if (timezone.now() - at).total_seconds() < 60:
        return "just now"
    return f"{timesince(at)} ago"


@register.filter
def aspect_label(aspect_ratio: str) -> str:
    return caps.ASPECT_RATIOS.get(aspect_ratio, aspect_ratio)


@register.filter
def camera_label(camera_type: str) -> str:
    return caps.CAMERA_PRESETS.get(camera_type) or {"simple": "Simple move"}.get(
        camera_type, camera_type
    )


@register.filter
def any_live(generations) -> bool:
    """Whether any of these cards is still live: the page's poll runs only then."""
    return any(not g.is_terminal for g in generations)


@register.filter
def short_cost(generation) -> str:
    return costs.short_cost(generation)


_PLACEHOLDER = str(uuid.UUID(int=0))
_CARD_URLS: dict[tuple[str, str | None, str], str] = {}


@register.simple_tag
def card_url(name: str, public_id=None) -> str:
    """`{% url name public_id %}` for a card's links: URLs with no argument, or a clip's
    `<uuid:public_id>` alone. The same string, several times cheaper: each name is reversed
    once per process (with a placeholder id) and the clip's id put in its place. A card has
    about ten links, and reversing them was a sixth of a page's CPU (docs/benchmarks.md)."""
    key = (get_script_prefix(), get_urlconf(), name)
    pattern = _CARD_URLS.get(key)
    if pattern is None:
        args = [] if public_id is None else [_PLACEHOLDER]
        pattern = _CARD_URLS[key] = reverse(name, args=args)
    return pattern if public_id is None else pattern.replace(_PLACEHOLDER, str(public_id))

"""Keyset pages on (created_at, id), after rating_avg when sorted by rating: each page costs
the same whatever the page number or the table size.
"""

from datetime import UTC, datetime, timedelta

from django.db.models import Q
from django.http import HttpRequest

from ..models import (
    Generation,
    GenerationQuerySet,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# Keyset pages: the cursor is the (created_at, id) of the last card shown, after its
# rating_avg when sorted by rating.


def cursor_of(gen: Generation, order: str = "newest") -> str:
    keyset = f"{(gen.created_at - EPOCH) // timedelta(microseconds=1)}_{gen.pk}"
    return f"{gen.rating_avg!r}_{keyset}" if order == "rating" else keyset


def rows_after(qs: GenerationQuerySet, cursor: str, *, order: str = "newest") -> GenerationQuerySet:
    parts = cursor.split("_")
    try:
        rating = float(parts.pop(0)) if order == "rating" and len(parts) == 3 else None
        micros, pk = (int(part) for part in parts)
        at = EPOCH + timedelta(microseconds=micros)
    except (ValueError, OverflowError):
        return qs  # a mangled cursor starts from the first page rather than failing
    if order == "rating" and (rating is None or rating != rating):  # missing, or nan
        return qs
    op = "gt" if order == "oldest" else "lt"
    later = Q(**{f"created_at__{op}": at}) | Q(created_at=at, **{f"id__{op}": pk})
    if order == "rating":
        return qs.filter(Q(rating_avg__lt=rating) | (Q(rating_avg=rating) & later))
    return qs.filter(later)


def rows_before(qs: GenerationQuerySet, gen: Generation, order: str) -> GenerationQuerySet:
    """The rows before `gen` in this order, nearest first: the viewer's "previous"."""
    op = "lt" if order == "oldest" else "gt"
    earlier = Q(**{f"created_at__{op}": gen.created_at}) | Q(
        created_at=gen.created_at, **{f"id__{op}": gen.pk}
    )
    if order == "rating":
        earlier = Q(rating_avg__gt=gen.rating_avg) | (Q(rating_avg=gen.rating_avg) & earlier)
    return qs.filter(earlier).reverse()


def query_string(request: HttpRequest, **changes) -> str:
    params = request.GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value is not None:
            params[key] = value
    return params.urlencode()

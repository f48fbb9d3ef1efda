"""What every view shares: the request type, the page size, where a form goes back to, and the
date bounds of the filter forms. Views of every domain import these; nothing here imports a
view."""

from datetime import date, datetime, time, timedelta

from django import forms
from django.http import HttpRequest, HttpResponseRedirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails

PAGE_SIZE = 24  # cards on a page of the studio, the galleries and a board


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware leaves it: `request.htmx` says whether htmx
    sent it."""

    htmx: HtmxDetails


# ---------------------------------------------------------------------------------------
# Where a form goes back to


def is_local_path(url: str | None) -> bool:
    """Whether `url` is a path on this site ("/mine/?state=failed"), the only kind of `next`
    or `back` we follow. Anything else (a bare word that Django's `redirect()` would take
    for a view name, another host, "//evil.example", a control character) is not."""
    if not url or not url.startswith("/") or url.startswith(("//", "/\\")):
        return False
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    return url_has_allowed_host_and_scheme(url, allowed_hosts=None)


def next_url(request: HttpRequest, default: str, *, field: str = "next") -> str:
    """The page a form asked to go back to (its `next` field, posted or in the query), if
    it is a local path; else `default`. Never raises, whatever was sent."""
    value = request.POST.get(field) or request.GET.get(field) or ""
    return value if is_local_path(value) else default


def redirect_next(request: HttpRequest, default: str, *, field: str = "next"):
    """A redirect to `next_url`. `HttpResponseRedirect`, not `redirect()`: the value is a
    path, never a view name to look up."""
    return HttpResponseRedirect(next_url(request, default, field=field))


# ---------------------------------------------------------------------------------------
# Dates in filter forms (the galleries' From/To, the usage page's range)

FIRST_DAY = date.min + timedelta(days=1)
LAST_DAY = date.max - timedelta(days=2)


def within_range(d: date | None) -> date | None:
    """A form's date, refused with a message when so far out that the day's start or end
    would overflow (9999-12-31 in a time zone ahead of UTC)."""
    if d is not None and not FIRST_DAY <= d <= LAST_DAY:
        raise forms.ValidationError(
            "Pick a date between %(first)s and %(last)s.",
            code="out_of_range",
            params={"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()},
        )
    return d


def day_start(d: date) -> datetime:
    """Midnight at the start of `d` in the site's time zone."""
    return timezone.make_aware(datetime.combine(d, time.min))

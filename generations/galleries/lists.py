"""The two lists: "My generations" and the team gallery, one view over a filtered queryset."""

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from ..web import PAGE_SIZE, HtmxHttpRequest
from .filters import MINE, TEAM, Scope, filtered_selection, order_of
from .paging import cursor_of, query_string, rows_after


def _gallery(request: HtmxHttpRequest, scope: Scope) -> HttpResponse:
    form, qs = filtered_selection(request, scope)
    if cursor := request.GET.get("after", ""):
        qs = rows_after(qs, cursor, order=order_of(form))
    rows = list(qs[: PAGE_SIZE + 1])
    page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    context = {
        "scope": scope,
        "other": TEAM if scope is MINE else MINE,
        "form": form,
        "ignored": form.ignored(),
        "notes": form.notes,
        "generations": page,
        "next_query": query_string(request, after=cursor_of(page[-1], order_of(form)))
        if more
        else "",
        "filter_query": query_string(request, after=None),
        # Where a card's detail page goes back to (and deleting there returns): this list.
        "list_url": reverse(scope.url_name)
        + (f"?{q}" if (q := query_string(request, after=None)) else ""),
        "filtered": any(v for k, v in request.GET.items() if k not in ("after", "order")),
        "first_page": not cursor,
    }
    template = "generations/gallery.html"
    if request.htmx and cursor:
        template += "#gallery-page"  # the next cards and the next sentinel, nothing else
    elif request.htmx and request.htmx.target == "gallery-results":
        template += "#gallery-results"  # the filters applied: the results, the bar kept
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


@require_GET
def my_generations(request: HtmxHttpRequest) -> HttpResponse:
    return _gallery(request, MINE)


@require_GET
def team_gallery(request: HtmxHttpRequest) -> HttpResponse:
    return _gallery(request, TEAM)

"""One clip: its page, the full-window viewer, its star, and deleting it."""

from datetime import timedelta
from urllib.parse import quote

from django.contrib import messages
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from .. import access
from ..governance import costs
from ..models import (
    Favourite,
    Generation,
    Status,
)
from ..web import HtmxHttpRequest, is_local_path, next_url
from .filters import MINE, TEAM, Scope, filtered_selection, order_of
from .paging import cursor_of, query_string, rows_after, rows_before

# ---------------------------------------------------------------------------------------
# One generation


def _span(delta: timedelta) -> str:
    """'1 h 02 min', '3 min 07 s', '42 s': timesince only counts whole minutes."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def gallery_back_url(url: str | None) -> str:
    """`url` if it is one of our galleries (with its filters), else "": where a detail page
    reached from a filtered list goes back to, and where deleting from it returns."""
    if not is_local_path(url):
        return ""
    lists = (reverse("my-generations"), reverse("gallery"))
    return url if url.split("?")[0] in lists else ""


def detail_context(request: HttpRequest, gen: Generation, back: str | None = None) -> dict:
    """Everything the detail page's body shows; the status view renders the same body for
    a detail page that polls (views.generation_status)."""
    timings = [("Created", gen.created_at), ("Submitted", gen.submitted_at)]
    timings.append(("Finished" if gen.status == Status.SUCCEEDED else "Ended", gen.finished_at))
    price = costs.price_for(gen)
    # What the job was accepted at (budgets snapshot it); the table's price for older rows.
    usd = gen.price_usd if gen.price_usd is not None else (price.usd if price else None)
    return {
        "generation": gen,
        "back": gallery_back_url(request.GET.get("back") if back is None else back),
        "price": price,
        "cost": costs.cost_label(gen, usd),
        "not_charged": costs.not_charged(gen),
        "can_manage": access.can_manage(request.user, gen),
        "timings": [(label, at) for label, at in timings if at],
        "queued_for": _span(gen.submitted_at - gen.created_at) if gen.submitted_at else "",
        "generating_for": (
            _span(gen.finished_at - gen.submitted_at)
            if gen.submitted_at and gen.finished_at
            else ""
        ),
        "elapsed": _span(gen.elapsed),
    }


@require_GET
def generation_detail(request: HttpRequest, public_id) -> HttpResponse:
    gen = access.get_clip_or_404(request.user, public_id)
    return render(request, "generations/generation_detail.html", detail_context(request, gen))


def _viewer(request: HttpRequest, public_id, scope: Scope) -> HttpResponse:
    """One clip full-window, with the previous and next clips of the list it was opened
    from (same filters, same order, carried in the query string): a real, shareable URL
    that works without JavaScript; gallery.js adds arrow keys, swipes and Escape."""
    gen = access.get_clip_or_404(request.user, public_id)
    form, qs = filtered_selection(request, scope)
    order = order_of(form)
    # The clip as the list sees it (with the rating it may be sorted by); a clip outside
    # the list (a shared link, a changed filter) is shown without steps.
    listed = qs.filter(pk=gen.pk).first()
    query = query_string(request, after=None)
    suffix = f"?{query}" if query else ""

    def url_of(other: Generation | None) -> str:
        if other is None:
            return ""
        return reverse(scope.view_url_name, args=[other.public_id]) + suffix

    following = preceding = None
    if order == "rating" and getattr(listed, "rating_avg", None) is None:
        listed = None  # unrated clips have no place in the rating order's keyset
    if listed is not None:
        following = rows_after(qs, cursor_of(listed, order), order=order).first()
        preceding = rows_before(qs, listed, order).first()
    context = {
        "generation": gen,
        "scope": scope,
        "next_url": url_of(following),
        "prev_url": url_of(preceding),
        "close_url": reverse(scope.url_name) + suffix + f"#gen-{gen.public_id}",
        "detail_url": reverse("generation-detail", args=[gen.public_id])
        + (f"?back={quote(reverse(scope.url_name) + suffix, safe='')}"),
    }
    return render(request, "generations/generation_viewer.html", context)


@require_GET
def mine_view(request: HttpRequest, public_id) -> HttpResponse:
    return _viewer(request, public_id, MINE)


@require_GET
def gallery_view(request: HttpRequest, public_id) -> HttpResponse:
    return _viewer(request, public_id, TEAM)


@require_POST
def generation_favourite(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """Star (`on=1`) or unstar (`on=0`) for this member. Idempotent: a double click or a
    resent form ends in the state the member asked for."""
    gen = access.get_clip_or_404(request.user, public_id)
    if request.POST.get("on") == "1":
        Favourite.objects.get_or_create(user=request.user, generation=gen)
        gen.is_favourite = True
    else:
        Favourite.objects.filter(user=request.user, generation=gen).delete()
        gen.is_favourite = False
    nxt = next_url(request, reverse("generation-detail", args=[gen.public_id]))
    if request.htmx:
        return render(
            request, "generations/_favourite_button.html", {"generation": gen, "next": nxt}
        )
    return redirect(nxt)


def _delete_files(names: list[str]) -> None:
    """Remove stored files no other row still uses (seed_demo shares one clip among many)."""
    for name in names:
        in_use = Generation.objects.filter(Q(video=name) | Q(poster=name)).exists()
        if not in_use and default_storage.exists(name):
            default_storage.delete(name)


def delete_clips(gens: list[Generation]) -> None:
    """Delete these rows, then (once that is committed) their files no other row uses."""
    names = [f.name for gen in gens for f in (gen.video, gen.poster) if f]
    with transaction.atomic():
        Generation.objects.filter(pk__in=[gen.pk for gen in gens]).delete()
        transaction.on_commit(lambda: _delete_files(names))


@require_http_methods(["GET", "POST"])
def generation_delete(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """GET: a confirm page (for browsers without JS). POST: delete the row and its files.
    With htmx the detail page's button asks with hx-confirm and POSTs here directly."""
    gen = access.get_managed_clip_or_404(request.user, public_id)
    detail = reverse("generation-detail", args=[gen.public_id])
    if not gen.is_terminal:
        # A worker may be writing this row or its files right now: stop it first.
        messages.error(request, "This job is still running: cancel it first, then delete it.")
        return HttpResponseClientRedirect(detail) if request.htmx else redirect(detail)
    back = gallery_back_url(request.POST.get("back") or request.GET.get("back"))
    if request.method == "GET":
        return render(
            request,
            "generations/generation_confirm_delete.html",
            {"generation": gen, "back": back},
        )
    delete_clips([gen])
    messages.success(request, "Deleted.")
    back = back or reverse("my-generations")  # the list it was reached from, filters and all
    return HttpResponseClientRedirect(back) if request.htmx else redirect(back)

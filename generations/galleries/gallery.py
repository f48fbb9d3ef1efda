"""The galleries: "My generations", the team gallery, the detail page, stars, delete and zips.

Both lists are one view over a filtered queryset (`_selection`), so the page, its next-page
partial and the zip download always agree on what "these clips" means. Pages are keyset
pages on (created_at, id): each costs the same whatever the page number or the table size.
"""

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Protocol
from urllib.parse import quote

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from .. import csvsafe
from ..governance import costs
from ..kling import capabilities as caps
from ..models import (
    Board,
    Favourite,
    Generation,
    GenerationQuerySet,
    Price,
    ReviewState,
    Status,
    Visibility,
)
from . import zipslots

PAGE_SIZE = 24
SEARCH_WORDS = 8  # more words than this in a search are ignored: each is one LIKE
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK = 64 * 1024


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@dataclass(frozen=True)
class Scope:
    name: str  # "mine" | "team"
    title: str
    url_name: str
    zip_url_name: str
    view_url_name: str  # the full-window viewer, stepping through this list
    bulk_url_name: str  # where the ticked clips are posted (zip, delete, visibility)


MINE = Scope(
    "mine",
    "My generations",
    "my-generations",
    "my-generations-zip",
    "mine-view",
    "my-generations-bulk",
)
TEAM = Scope("team", "Team gallery", "gallery", "gallery-zip", "gallery-view", "gallery-bulk")


def _choices(label: str, pairs) -> list[tuple[str, str]]:
    return [("", label), *pairs]


class GalleryFilters(forms.Form):
    """The filter bar. Every field is optional; a bad value is reported and ignored."""

    q = forms.CharField(label="Search prompts", required=False, max_length=200)
    state = forms.ChoiceField(
        label="State", required=False, choices=_choices("Any state", Status.choices)
    )
    model = forms.ChoiceField(
        label="Model",
        required=False,
        choices=_choices("Any model", [(k, v.label) for k, v in caps.MODELS.items()]),
    )
    mode = forms.ChoiceField(
        label="Mode", required=False, choices=_choices("Any mode", caps.MODE_NAMES.items())
    )
    duration = forms.ChoiceField(
        label="Duration", required=False, choices=_choices("Any length", caps.DURATIONS.items())
    )
    aspect = forms.ChoiceField(
        label="Aspect ratio",
        required=False,
        choices=_choices("Any shape", caps.ASPECT_RATIOS.items()),
    )
    member = forms.ChoiceField(label="Member", required=False)
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    starred = forms.BooleanField(label="Favourites only", required=False)
    # Team review (review.py): the tallies and state stored on the row, so no join.
    review = forms.ChoiceField(
        label="Review",
        required=False,
        choices=_choices(
            "Any review state",
            [(ReviewState.APPROVED, "Approved only"), (ReviewState.CHANGES, "Needs changes")],
        ),
    )
    min_rating = forms.TypedChoiceField(
        label="Rated at least",
        required=False,
        coerce=int,
        empty_value=None,
        choices=_choices(
            "Any rating", [(n, f"{n} star{'s' if n > 1 else ''}") for n in range(1, 6)]
        ),
    )
    commented = forms.BooleanField(label="Has comments", required=False)
    board = forms.ChoiceField(label="On board", required=False)
    order = forms.ChoiceField(
        label="Order",
        required=False,
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("rating", "Highest rated"),
        ],
    )

    def __init__(
        self,
        *args,
        scope: Scope,
        members: dict[str, int] | None = None,
        boards: dict[str, tuple[int, str]] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.notes: list[str] = []  # filters applied other than as given, and why
        self.members = members or {}
        self.boards = boards or {}
        self.fields["board"].choices = _choices(
            "Any board", ((key, name) for key, (_pk, name) in self.boards.items())
        )
        if scope is MINE:
            del self.fields["member"]  # always the member themself
        else:
            del self.fields["state"]  # the team gallery is finished clips only
            self.fields["member"].choices = _choices("Anyone", ((u, u) for u in self.members))

    def clean_since(self) -> date | None:
        return _within_range(self.cleaned_data["since"])

    def clean_until(self) -> date | None:
        return _within_range(self.cleaned_data["until"])

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            # Both dates were meant; applying one of them would show an empty page.
            data["since"], data["until"] = until, since
            self.notes.append(
                f"From was after To, so they were swapped: {until:%-d %b %Y} to {since:%-d %b %Y}."
            )
        return data

    def ignored(self) -> list[str]:
        """One plain sentence per filter that was not applied."""
        out = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else "Filters"
            out.append(f"{label}: {' '.join(errors)}")
        return out


# A day's bounds are its local midnight and the next one, in UTC for the database: a day
# one short of date.min/date.max keeps both inside datetime's range in every time zone
# (offsets, old local mean times included, are under a day). Beyond them Python raises
# OverflowError, which used to be a 500.
FIRST_DAY = date.min + timedelta(days=1)
LAST_DAY = date.max - timedelta(days=2)


def _within_range(d: date | None) -> date | None:
    if d is not None and not FIRST_DAY <= d <= LAST_DAY:
        raise forms.ValidationError(
            "Pick a date between %(first)s and %(last)s.",
            code="out_of_range",
            params={"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()},
        )
    return d


def _day_start(d: date) -> datetime:
    return timezone.make_aware(datetime.combine(d, time.min))


def _apply_filters(qs: GenerationQuerySet, form: GalleryFilters, user) -> GenerationQuerySet:
    form.is_valid()  # fills cleaned_data with the valid fields; errors are shown, not raised
    data = form.cleaned_data
    for word in (data.get("q") or "").split()[:SEARCH_WORDS]:
        qs = qs.filter(prompt__icontains=word)
    simple = {
        "state": "status",
        "model": "model_name",
        "mode": "mode",
        "duration": "duration",
        "aspect": "aspect_ratio",
    }
    for field, column in simple.items():
        if data.get(field):
            qs = qs.filter(**{column: data[field]})
    if data.get("member"):
        qs = qs.filter(owner_id=form.members[data["member"]])
    if data.get("since"):
        qs = qs.filter(created_at__gte=_day_start(data["since"]))
    if data.get("until"):
        qs = qs.filter(created_at__lt=_day_start(data["until"] + timedelta(days=1)))
    if data.get("starred"):
        qs = qs.starred_by(user)
    if data.get("review"):
        qs = qs.filter(review_state=data["review"])
    if data.get("min_rating"):
        qs = qs.filter(rating_count__gt=0, rating_avg__gte=data["min_rating"])
    if data.get("commented"):
        qs = qs.filter(comment_count__gt=0)
    if data.get("board"):
        qs = qs.filter(board_items__board_id=form.boards[data["board"]][0])
    return qs


def _members() -> dict[str, int]:
    User = get_user_model()
    rows = User.objects.filter(is_active=True).order_by(User.USERNAME_FIELD)
    return dict(rows.values_list(User.USERNAME_FIELD, "pk"))


def _boards(user) -> dict[str, tuple[int, str]]:
    """The boards this member may filter by: public id → (pk, name)."""
    rows = Board.objects.visible_to(user).only("pk", "public_id", "name").order_by("name", "id")
    return {str(b.public_id): (b.pk, b.name) for b in rows[:200]}


# Each order is a keyset: the cursor holds these columns of the last card shown.
ORDERS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "rating": ("-rating_avg", "-created_at", "-id"),
}


def _order(form: GalleryFilters) -> str:
    return form.cleaned_data.get("order") or "newest"


def _selection(request: HttpRequest, scope: Scope) -> tuple[GalleryFilters, GenerationQuerySet]:
    """The filter form and the generations it selects, in the order asked for."""
    user = request.user
    if scope is MINE:
        form = GalleryFilters(request.GET, scope=scope, boards=_boards(user))
        qs = Generation.objects.filter(owner=user).for_cards(user)
    else:
        form = GalleryFilters(request.GET, scope=scope, members=_members(), boards=_boards(user))
        qs = Generation.objects.team_gallery(user)
    qs = _apply_filters(qs, form, user)
    return form, qs.order_by(*ORDERS[_order(form)])


# ---------------------------------------------------------------------------------------
# Keyset pages: the cursor is the (created_at, id) of the last card shown, after its
# rating_avg when sorted by rating.


def _cursor(gen: Generation, order: str = "newest") -> str:
    keyset = f"{(gen.created_at - EPOCH) // timedelta(microseconds=1)}_{gen.pk}"
    return f"{gen.rating_avg!r}_{keyset}" if order == "rating" else keyset


def _after(qs: GenerationQuerySet, cursor: str, *, order: str = "newest") -> GenerationQuerySet:
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


def _before(qs: GenerationQuerySet, gen: Generation, order: str) -> GenerationQuerySet:
    """The rows before `gen` in this order, nearest first: the viewer's "previous"."""
    op = "lt" if order == "oldest" else "gt"
    earlier = Q(**{f"created_at__{op}": gen.created_at}) | Q(
        created_at=gen.created_at, **{f"id__{op}": gen.pk}
    )
    if order == "rating":
        earlier = Q(rating_avg__gt=gen.rating_avg) | (Q(rating_avg=gen.rating_avg) & earlier)
    return qs.filter(earlier).reverse()


def _query(request: HttpRequest, **changes) -> str:
    params = request.GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value is not None:
            params[key] = value
    return params.urlencode()


def _gallery(request: HtmxHttpRequest, scope: Scope) -> HttpResponse:
    form, qs = _selection(request, scope)
    if cursor := request.GET.get("after", ""):
        qs = _after(qs, cursor, order=_order(form))
    rows = list(qs[: PAGE_SIZE + 1])
    page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    context = {
        "scope": scope,
        "other": TEAM if scope is MINE else MINE,
        "form": form,
        "ignored": form.ignored(),
        "notes": form.notes,
        "generations": page,
        "next_query": _query(request, after=_cursor(page[-1], _order(form))) if more else "",
        "filter_query": _query(request, after=None),
        # Where a card's detail page goes back to (and deleting there returns): this list.
        "list_url": reverse(scope.url_name)
        + (f"?{q}" if (q := _query(request, after=None)) else ""),
        "filtered": any(v for k, v in request.GET.items() if k not in ("after", "order")),
        "first_page": not cursor,
    }
    template = "generations/gallery.html"
    if request.htmx and cursor:
        template += "#gallery-page"  # the next cards and the next sentinel, nothing else
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_GET
def my_generations(request: HtmxHttpRequest) -> HttpResponse:
    return _gallery(request, MINE)


@require_GET
def team_gallery(request: HtmxHttpRequest) -> HttpResponse:
    return _gallery(request, TEAM)


# ---------------------------------------------------------------------------------------
# One generation


def _visible(request: HttpRequest, public_id) -> Generation:
    """The generation if this user may see it; else 404, so private work isn't confirmed."""
    qs = Generation.objects.visible_to(request.user).for_cards(request.user)
    try:
        return qs.get(public_id=public_id)
    except Generation.DoesNotExist:
        raise Http404("No such generation") from None


def _may_manage(request: HttpRequest, gen: Generation) -> bool:
    return request.user.is_staff or gen.owner_id == request.user.pk


def _price_for(gen: Generation) -> Price | None:
    return Price.objects.filter(
        model_name=gen.model_name, mode=gen.mode, duration=gen.duration
    ).first()


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


def _list_url(url: str | None) -> str:
    """`url` if it is one of our galleries (with its filters), else "": where a detail page
    reached from a filtered list goes back to, and where deleting from it returns."""
    if not url or not url_has_allowed_host_and_scheme(url, allowed_hosts=None):
        return ""
    lists = (reverse("my-generations"), reverse("gallery"))
    return url if url.split("?")[0] in lists else ""


def detail_context(request: HttpRequest, gen: Generation) -> dict:
    """Everything the detail page's body shows; the status view renders the same body for
    a detail page that polls (views.generation_status)."""
    timings = [("Created", gen.created_at), ("Submitted", gen.submitted_at)]
    timings.append(("Finished" if gen.status == Status.SUCCEEDED else "Ended", gen.finished_at))
    price = _price_for(gen)
    # What the job was accepted at (budgets snapshot it); the table's price for older rows.
    usd = gen.price_usd if gen.price_usd is not None else (price.usd if price else None)
    return {
        "generation": gen,
        "back": _list_url(request.GET.get("back")),
        "price": price,
        "cost": costs.cost_label(gen, usd),
        "not_charged": costs.not_charged(gen),
        "can_manage": _may_manage(request, gen),
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
    gen = _visible(request, public_id)
    return render(request, "generations/generation_detail.html", detail_context(request, gen))


def _viewer(request: HttpRequest, public_id, scope: Scope) -> HttpResponse:
    """One clip full-window, with the previous and next clips of the list it was opened
    from (same filters, same order, carried in the query string): a real, shareable URL
    that works without JavaScript; gallery.js adds arrow keys, swipes and Escape."""
    gen = _visible(request, public_id)
    form, qs = _selection(request, scope)
    order = _order(form)
    # The clip as the list sees it (with the rating it may be sorted by); a clip outside
    # the list (a shared link, a changed filter) is shown without steps.
    listed = qs.filter(pk=gen.pk).first()
    query = _query(request, after=None)
    suffix = f"?{query}" if query else ""

    def url_of(other: Generation | None) -> str:
        if other is None:
            return ""
        return reverse(scope.view_url_name, args=[other.public_id]) + suffix

    following = preceding = None
    if order == "rating" and getattr(listed, "rating_avg", None) is None:
        listed = None  # unrated clips have no place in the rating order's keyset
    if listed is not None:
        following = _after(qs, _cursor(listed, order), order=order).first()
        preceding = _before(qs, listed, order).first()
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


def _next_url(request: HttpRequest, default: str) -> str:
    nxt = request.POST.get("next", "")
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        return nxt
    return default


@require_POST
def generation_favourite(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """Star (`on=1`) or unstar (`on=0`) for this member. Idempotent: a double click or a
    resent form ends in the state the member asked for."""
    gen = _visible(request, public_id)
    if request.POST.get("on") == "1":
        Favourite.objects.get_or_create(user=request.user, generation=gen)
        gen.is_favourite = True
    else:
        Favourite.objects.filter(user=request.user, generation=gen).delete()
        gen.is_favourite = False
    nxt = _next_url(request, reverse("generation-detail", args=[gen.public_id]))
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


def _delete_clips(gens: list[Generation]) -> None:
    """Delete these rows, then (once that is committed) their files no other row uses."""
    names = [f.name for gen in gens for f in (gen.video, gen.poster) if f]
    with transaction.atomic():
        Generation.objects.filter(pk__in=[gen.pk for gen in gens]).delete()
        transaction.on_commit(lambda: _delete_files(names))


@require_http_methods(["GET", "POST"])
def generation_delete(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """GET: a confirm page (for browsers without JS). POST: delete the row and its files.
    With htmx the detail page's button asks with hx-confirm and POSTs here directly."""
    gen = _visible(request, public_id)
    if not _may_manage(request, gen):
        raise Http404("No such generation")
    detail = reverse("generation-detail", args=[gen.public_id])
    if not gen.is_terminal:
        # A worker may be writing this row or its files right now: stop it first.
        messages.error(request, "This job is still running: cancel it first, then delete it.")
        return HttpResponseClientRedirect(detail) if request.htmx else redirect(detail)
    back = _list_url(request.POST.get("back") or request.GET.get("back"))
    if request.method == "GET":
        return render(
            request,
            "generations/generation_confirm_delete.html",
            {"generation": gen, "back": back},
        )
    _delete_clips([gen])
    messages.success(request, "Deleted.")
    back = back or reverse("my-generations")  # the list it was reached from, filters and all
    return HttpResponseClientRedirect(back) if request.htmx else redirect(back)


# ---------------------------------------------------------------------------------------
# A filtered selection as one zip, streamed


MANIFEST_FIELDS = [
    "file",
    "id",
    "prompt",
    "negative_prompt",
    "model_name",
    "mode",
    "duration",
    "aspect_ratio",
    "cfg_scale",
    "camera_control",
    "visibility",
    "member",
    "created_at",
    "submitted_at",
    "finished_at",
    "video_seconds",
    "units",
    "estimated_usd",
    "task_id",
    "external_task_id",
]


class _Sink:
    """A write-only stream zipfile writes into; the generator hands out what accumulated.
    zipfile sees no tell()/seek(), so it writes data descriptors instead of seeking back."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _iso(at: datetime | None) -> str:
    return timezone.localtime(at).isoformat() if at else ""


def _manifest_row(gen: Generation, name: str, prices: dict) -> dict:
    price = prices.get((gen.model_name, gen.mode, gen.duration))
    units = gen.units if gen.units is not None else (price.units if price else None)
    return {
        "file": name,
        "id": str(gen.public_id),
        "prompt": gen.prompt,
        "negative_prompt": gen.negative_prompt,
        "model_name": gen.model_name,
        "mode": gen.mode,
        "duration": gen.duration,
        "aspect_ratio": gen.aspect_ratio,
        "cfg_scale": gen.cfg_scale,
        "camera_control": gen.camera_control,
        "visibility": gen.visibility,
        "member": gen.owner.get_username(),
        "created_at": _iso(gen.created_at),
        "submitted_at": _iso(gen.submitted_at),
        "finished_at": _iso(gen.finished_at),
        "video_seconds": gen.video_duration,
        "units": str(units) if units is not None else None,
        "estimated_usd": str(price.usd) if price else None,
        "task_id": gen.task_id,
        "external_task_id": gen.external_task_id,
    }


def download_name(gen: Generation) -> str:
    """A clip's file name from its date and prompt: the zip's entries and single downloads."""
    return _zip_name(gen)


def _zip_name(gen: Generation) -> str:
    stamp = timezone.localtime(gen.created_at).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slugify(gen.prompt)[:40].strip('-') or 'clip'}-{gen.public_id.hex[:8]}.mp4"


@dataclass(frozen=True)
class _ZipEntry:
    """One clip of a zip, with everything the stream needs: no database access after this."""

    name: str  # in the archive
    stored: str  # in default_storage
    modified: tuple[int, int, int, int, int, int]
    manifest: dict


class ZipExtras(Protocol):
    """More for a zip's manifest (a board's review: boards.ReviewManifest): read from the
    database in `prepare`, before streaming starts, like everything else in a zip."""

    fields: list[str]  # more manifest columns

    def prepare(self, clips: list[Generation]) -> None: ...

    def row(self, gen: Generation) -> dict: ...  # values of `fields` for one clip

    def files(self) -> dict[str, str]: ...  # more files: name → text


def _zip_entries(qs: GenerationQuerySet, extras: ZipExtras | None = None) -> list[_ZipEntry]:
    """Read the rows (and prices) a zip needs, all of them, now. Streaming from a cursor
    instead would hold a database snapshot for as long as the client takes to read, which
    on SQLite stops the write-ahead log from being checkpointed (it grows without bound)."""
    prices: dict[tuple[str, str, str], Price] = {
        (p.model_name, p.mode, p.duration): p for p in Price.objects.all()
    }
    entries = []
    clips = list(qs.select_related("owner"))
    if extras is not None:
        extras.prepare(clips)
    for gen in clips:
        name = _zip_name(gen)
        entries.append(
            _ZipEntry(
                name=name,
                stored=gen.video.name,
                modified=timezone.localtime(gen.created_at).timetuple()[:6],
                manifest=_manifest_row(gen, name, prices) | (extras.row(gen) if extras else {}),
            )
        )
    return entries


# Our own ~30 lines over the standard library's zipfile rather than zipstream-ng: zipfile
# already streams (data descriptors, Zip64 when needed), and clips come from Django storage
# (local disk or S3), which zipstream-ng's path-based helpers don't read.
def _zip_stream(entries: list[_ZipEntry], extras: ZipExtras | None = None) -> Iterator[bytes]:
    """The zip's bytes, chunk by chunk; touches storage only, never the database."""
    sink = _Sink()
    fields = MANIFEST_FIELDS + (extras.fields if extras else [])
    rows: list[dict] = []
    with zipfile.ZipFile(sink, "w") as zf:
        for entry in entries:
            if not default_storage.exists(entry.stored):
                continue
            info = zipfile.ZipInfo(entry.name, entry.modified)
            info.compress_type = zipfile.ZIP_STORED  # mp4 is already compressed
            with default_storage.open(entry.stored, "rb") as src, zf.open(info, "w") as dest:
                while chunk := src.read(CHUNK):
                    dest.write(chunk)
                    yield sink.drain()
            rows.append(entry.manifest)
            yield sink.drain()
        text = io.StringIO()
        writer = csvsafe.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            camera = row["camera_control"]
            writer.writerow({**row, "camera_control": json.dumps(camera) if camera else ""})
        zf.writestr("manifest.csv", text.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(
            "manifest.json",
            json.dumps(rows, indent=2, ensure_ascii=False, default=_json_default),
            compress_type=zipfile.ZIP_DEFLATED,
        )
        for extra, content in (extras.files() if extras else {}).items():
            zf.writestr(extra, content, compress_type=zipfile.ZIP_DEFLATED)
    yield sink.drain()


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def zip_response(
    request: HttpRequest,
    qs: GenerationQuerySet,
    filename: str,
    extras: ZipExtras | None = None,
) -> HttpResponse:
    """The finished, stored clips of `qs` as one streamed zip named `filename`, within the
    member's limit of concurrent zips (429 beyond it). `qs` must hold only what the member
    may see; `extras` adds to its manifest."""
    token = zipslots.claim(request.user)
    if token is None:
        response = render(
            request, "generations/zip_busy.html", {"limit": zipslots.limit()}, status=429
        )
        response["Retry-After"] = "30"
        return response
    try:
        entries = _zip_entries(qs.filter(status=Status.SUCCEEDED).exclude(video=""), extras)
    except BaseException:
        zipslots.release(token)
        raise
    stream = zipslots.HeldStream(_zip_stream(entries, extras), token)
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _nothing_to_zip(request: HttpRequest, qs: GenerationQuerySet, back: str) -> HttpResponse | None:
    """A page that says so, instead of a zip holding only the manifests' headers."""
    if qs.filter(status=Status.SUCCEEDED).exclude(video="").exists():
        return None
    messages.info(request, "No finished clips in this selection, so there is nothing to download.")
    return redirect(back)


def _download(request: HttpRequest, scope: Scope) -> HttpResponse:
    _form, qs = _selection(request, scope)
    back = reverse(scope.url_name) + (f"?{query}" if (query := _query(request)) else "")
    if (empty := _nothing_to_zip(request, qs, back)) is not None:
        return empty
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return zip_response(request, qs, f"kling-{scope.name}-{stamp}.zip")


@require_GET
def my_generations_zip(request: HttpRequest) -> HttpResponse:
    return _download(request, MINE)


@require_GET
def gallery_zip(request: HttpRequest) -> HttpResponse:
    return _download(request, TEAM)


# ---------------------------------------------------------------------------------------
# Several clips at once: the galleries' tick boxes post here with what to do (gallery.js
# adds shift-click ranges, a bar with the count, and one confirmation for the lot; without
# JavaScript a confirmation page asks). All or nothing: a selection holding anything the
# member may not act on changes nothing and says why.

SELECTION_MAX = 200
BULK_VERBS = {
    "zip": "download",
    "delete": "delete",
    "private": "make private",
    "team": "share with the team",
}


def _clips(n: int) -> str:
    return f"{n} clip{'s' if n != 1 else ''}"


def _bulk_refusal(request: HttpRequest, action: str, raw: list[str]) -> str | list[Generation]:
    """The selected rows, or a sentence saying why nothing will be done."""
    if action not in BULK_VERBS:
        return (
            "Choose what to do with the selected clips: download, delete, or change who sees them."
        )
    if not raw:
        return "No clips were selected: tick the clips first."
    if len(raw) > SELECTION_MAX:
        return (
            f"That is {len(raw)} clips; at most {SELECTION_MAX} can be handled at once. "
            "Nothing was done."
        )
    ids = set()
    for value in raw:
        try:
            ids.add(uuid.UUID(value))
        except (ValueError, AttributeError, TypeError):
            return "The selection held something that is not a clip. Nothing was done."
    rows = list(
        Generation.objects.visible_to(request.user)
        .filter(public_id__in=ids)
        .select_related("owner")
    )
    if missing := len(ids) - len(rows):
        return (
            f"{_clips(missing)} of the selection no longer exist{'s' if missing == 1 else ''} "
            "or can't be seen by you. Nothing was done."
        )
    if action == "zip":
        return rows
    others = [gen for gen in rows if not _may_manage(request, gen)]
    if others:
        owners = ", ".join(sorted({gen.owner.get_username() for gen in others}))
        return (
            f"{_clips(len(others))} of the selection belong{'s' if len(others) == 1 else ''} "
            f"to other members ({owners}): you can {BULK_VERBS[action]} only your own. "
            "Nothing was changed."
        )
    running = [gen for gen in rows if action == "delete" and not gen.is_terminal]
    if running:
        return (
            f"{_clips(len(running))} of the selection {'is' if len(running) == 1 else 'are'} "
            "still running: cancel them first, then delete. Nothing was deleted."
        )
    return rows


def _bulk(request: HttpRequest, scope: Scope) -> HttpResponse:
    back = _list_url(request.POST.get("back")) or reverse(scope.url_name)
    action = request.POST.get("action", "")
    rows = _bulk_refusal(request, action, request.POST.getlist("ids"))
    if isinstance(rows, str):
        messages.error(request, rows)
        return redirect(back)
    if action == "zip":
        qs = Generation.objects.filter(pk__in=[gen.pk for gen in rows]).order_by("-created_at")
        if (empty := _nothing_to_zip(request, qs, back)) is not None:
            return empty
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        return zip_response(request, qs, f"kling-selection-{stamp}.zip")
    if request.POST.get("confirm") != "yes":
        rows.sort(key=lambda gen: gen.created_at, reverse=True)
        context = {"rows": rows, "action": action, "verb": BULK_VERBS[action], "back": back}
        return render(request, "generations/bulk_confirm.html", context)
    if action == "delete":
        _delete_clips(rows)
        messages.success(request, f"Deleted {_clips(len(rows))}.")
    else:
        Generation.objects.filter(pk__in=[gen.pk for gen in rows]).update(visibility=action)
        where = "private" if action == Visibility.PRIVATE else "shared with the team"
        messages.success(
            request, f"{_clips(len(rows))} {'is' if len(rows) == 1 else 'are'} now {where}."
        )
    return redirect(back)


@require_POST
def my_generations_bulk(request: HttpRequest) -> HttpResponse:
    return _bulk(request, MINE)


@require_POST
def gallery_bulk(request: HttpRequest) -> HttpResponse:
    return _bulk(request, TEAM)

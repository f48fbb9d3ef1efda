"""The studio page: the prompt form and its submit (a batch, variations, remix, retry), the
page's one poll about its live cards, one card's fragment, cancel and visibility, the price
list, and the callback CometAPI pushes."""

import logging
import re
import secrets
import uuid
from collections.abc import Iterable
from types import SimpleNamespace
from typing import NamedTuple

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import Exists
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, reswap, retarget, trigger_client_event

from .. import access, lifecycle
from ..galleries import clip
from ..governance import budgets, costs
from ..kling import CometAPIError, parse_callback
from ..kling import capabilities as caps
from ..models import CANCELLABLE, TERMINAL, ApiKey, Generation, Status, Visibility
from ..web import PAGE_SIZE, HtmxHttpRequest, next_url, redirect_next
from . import forms
from .forms import GenerationForm

log = logging.getLogger(__name__)
CARD = "generations/studio.html#generation-card"
DETAIL_BODY = "generations/generation_detail.html#detail-body"


def _queue_places() -> tuple[dict[int, int], str]:
    """Every queued job's place in line (1 = next), and why no key can send them, if none
    can: "missing" (the team has no key) or "unusable" (its keys are disabled or refused).
    One query: the key checks ride along in it rather than costing their own."""
    rows = lifecycle.fair_queue().annotate(
        key_ready=Exists(ApiKey.objects.usable()), any_key=Exists(ApiKey.objects.all())
    )
    positions, no_key = {}, ""
    for i, (pk, ready, any_key) in enumerate(
        rows.values_list("pk", "key_ready", "any_key"), start=1
    ):
        positions[pk] = i
        no_key = "" if ready else ("unusable" if any_key else "missing")
    return positions, no_key


def _with_queue_positions(generations: Iterable[Generation]) -> list[Generation]:
    """Cards of queued jobs show their place in line, or why no key can send them
    (`no_key`): one query for the whole page, and none when nothing on it waits."""
    cards = list(generations)
    if any(g.status == Status.QUEUED for g in cards):
        positions, no_key = _queue_places()
        for g in cards:
            g.queue_position = positions.get(g.pk)
            g.no_key = no_key if g.status == Status.QUEUED else ""
    return cards


def _budget_room(standing: budgets.Standing, prices: dict | None = None) -> dict:
    """What the studio's budget line and its estimate read (the page's budget-room JSON):
    the line as text, what is left, and the prices when given."""
    room = {
        "label": standing.label,
        "jobs_left": standing.jobs_left,
        "usd_left": None if standing.usd_left is None else str(standing.usd_left),
    }
    if prices is not None:
        room["prices"] = {key: str(est.usd) for key, est in prices.items()}
    return room


def _form_context(form: GenerationForm, prices: dict | None = None, *, user=None, **extra) -> dict:
    """The prompt form's context; with the member, where they stand against their budget
    (shown beside the estimate, which says when a job would not fit)."""
    prices = forms.price_table() if prices is None else prices
    estimate = form.estimate(prices)
    count = form.job_count()
    context = {
        "form": form,
        "estimate": estimate,
        "job_count": count,
        "prompt_max": caps.PROMPT_MAX,
        **extra,
    }
    if estimate is not None and count > 1:
        context["estimate_total"] = costs.usd(estimate.usd * count, exact=True)
    if user is not None:
        standing = budgets.standing(user)
        context["standing"] = standing
        context["budget_room"] = _budget_room(standing, prices)
        context["wont_fit"] = budgets.wont_fit(standing, estimate.usd * count if estimate else None)
    return context


def _studio_context(request: HttpRequest, form: GenerationForm, **extra) -> dict:
    prices = forms.price_table()
    mine = Generation.objects.for_cards(request.user).filter(owner=request.user)[:PAGE_SIZE]
    return {
        **_form_context(form, prices, user=request.user, **extra),
        "generations": _with_queue_positions(mine),
        "has_keys": ApiKey.objects.usable().exists(),
        "matrix": caps.matrix(),
        "price_labels": forms.price_labels(prices),
    }


def _next_form(gen: Generation, variations: int = 1) -> GenerationForm:
    """After a submit the form keeps its settings for the next variation, without the prompt."""
    initial = GenerationForm.initial_from(gen)
    initial["prompt"] = ""
    initial["variations"] = variations
    return GenerationForm(initial=initial)


@require_http_methods(["GET", "POST"])
def studio(request: HtmxHttpRequest) -> HttpResponse:
    """The prompt form and the member's latest cards. `?remix=<public_id>` fills the form
    with any visible generation's parameters (remix, or edit and retry of a failed one)."""
    template = "generations/studio.html"
    if request.method == "POST":
        form = GenerationForm(request.POST)
        gens: list[Generation] = []
        if form.is_valid():
            try:
                # Every job of the submit (a batch, variations) in one transaction, through
                # the one budget check: all are created, or none.
                gens = lifecycle.create_generations(request.user, form.jobs())
            except budgets.LimitExceeded as exc:
                form.add_error(None, str(exc))
        if gens:
            if request.htmx:
                # The new cards go on top of the list, newest first as after a reload; the
                # form comes back for the next one.
                for gen in gens:
                    gen.is_favourite = False
                _with_queue_positions(gens)
                next_form = _next_form(gens[0], variations=form.cleaned_data["variations"])
                return render(
                    request,
                    "generations/_created.html",
                    {
                        "generations": gens[::-1],
                        **_form_context(next_form, user=request.user),
                    },
                )
            n = len(gens)
            messages.success(
                request,
                "Queued. The card below shows its progress."
                if n == 1
                else f"Queued {n} jobs. The cards below show their progress.",
            )
            return redirect("studio")
        if request.htmx:
            # htmx swaps only 2xx answers: send 200 and point the swap at the form.
            response = render(
                request, template + "#prompt-form", _form_context(form, user=request.user)
            )
            return reswap(retarget(response, "#prompt-form"), "outerHTML")
        return render(request, template, _studio_context(request, form), status=422)
    remix = None
    if remix_id := request.GET.get("remix"):
        remix = access.get_clip_or_404(request.user, remix_id)
        form = GenerationForm(initial=GenerationForm.initial_from(remix))
    else:
        form = GenerationForm()
    if request.htmx and remix is not None:
        # studio.js fetches just the filled form when the studio is already on screen.
        return render(
            request,
            template + "#prompt-form",
            _form_context(form, user=request.user, remix=remix),
        )
    return render(request, template, _studio_context(request, form, remix=remix))


@require_GET
def price_list(request: HttpRequest) -> HttpResponse:
    """Every choice the studio offers and its price on file: the estimate without JavaScript."""
    prices = forms.price_table()
    rows = [
        (model, mode, duration, prices.get(caps.price_key(name, mode, duration)))
        for name, model in caps.MODELS.items()
        for mode in (model.modes or ("",))
        for duration in model.durations
    ]
    return render(request, "generations/price_list.html", {"rows": rows})


def _render_live(request: HttpRequest, gen: Generation) -> HttpResponse:
    """The piece of page that follows a job: its card, or, asked from its detail page
    (`detail=1`), the whole detail body, so state, timings, cost and actions change together."""
    if request.GET.get("detail") or request.POST.get("detail"):
        context = clip.detail_context(request, gen)
        return render(request, DETAIL_BODY, context)
    _with_queue_positions([gen])
    # A card in a gallery keeps its tick box (`pick`) as it moves on.
    context = {"generation": gen, "pick": request.GET.get("pick") == "1"}
    return render(request, CARD, context)


LIVE_MAX = 200  # live tokens read from one poll: more than any page holds
LIVE_KINDS = ("card", "pick", "detail")  # a card, a gallery card (with its tick box), a clip page


class LiveToken(NamedTuple):
    """What a live card sends with the page's poll: which clip, the version it shows, and
    how it is drawn."""

    hex: str  # the clip's public id, as 32 hex digits
    version: str
    kind: str


LIVE_TOKEN = re.compile(rf"([0-9a-f]{{32}}):(\S*):({'|'.join(LIVE_KINDS)})")


def _live_tokens(fields: list[str]) -> list[LiveToken]:
    """The poll's tokens (`<public id hex>:<live version>:<kind>`), sent one a field or
    space-separated in one (studio.js joins them); a malformed one is skipped."""
    tokens, seen = [], set()
    for value in " ".join(fields).split()[:LIVE_MAX]:
        match = LIVE_TOKEN.fullmatch(value)
        if match is None or match[1] in seen:
            continue
        seen.add(match[1])
        tokens.append(LiveToken._make(match.groups()))
    return tokens


LIVE_FIELDS = ("public_id", "id", "owner", "visibility", "status", "remote_status", "wait_reason")


def _live_states(viewer, tokens: list[LiveToken]) -> dict[str, tuple]:
    """(pk, status, remote_status, wait_reason) of each token's clip that `viewer` may see
    (access.can_see), by public id hex. Plain SQL on purpose: the ORM's handling of a
    hundred-value IN list, both ways, cost more than the rest of the poll together
    (docs/benchmarks.md, "One poll per page")."""
    field = Generation._meta.get_field("public_id")
    if connection.features.has_native_uuid_field:  # PostgreSQL: a uuid column
        wanted = {uuid.UUID(hex=t.hex): t.hex for t in tokens}
    else:  # 32 hex digits, as the tokens carry them (UUIDField.get_db_prep_value)
        wanted = {t.hex: t.hex for t in tokens}
    columns = ", ".join(Generation._meta.get_field(name).column for name in LIVE_FIELDS)
    marks = ", ".join(["%s"] * len(wanted))
    sql = f"SELECT {columns} FROM {Generation._meta.db_table} WHERE {field.column} IN ({marks})"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(wanted))
        rows = cursor.fetchall()
    # The viewer's two attributes the rule reads, once: request.user is a lazy proxy, and a
    # hundred trips through it cost more than the query.
    viewer = SimpleNamespace(pk=viewer.pk, is_staff=viewer.is_staff)
    states = {}
    for db_id, pk, owner_id, visibility, status, remote_status, wait_reason in rows:
        if access.can_see(viewer, SimpleNamespace(owner_id=owner_id, visibility=visibility)):
            states[wanted[db_id]] = (pk, status, remote_status, wait_reason)
    return states


def _finished_event(request: HttpRequest, gen: Generation) -> dict | None:
    """What the owner's page says when their clip ends (a notice; studio.js)."""
    if gen.owner_id != request.user.pk or gen.status not in (Status.SUCCEEDED, Status.FAILED):
        return None
    return {
        "id": str(gen.public_id),
        "status": gen.status,
        "prompt": Truncator(gen.prompt).chars(60),
        "url": reverse("generation-detail", args=[gen.public_id]),
        "remix_url": f"{reverse('studio')}?remix={gen.public_id}",
    }


@require_POST
def live_cards(request: HtmxHttpRequest) -> HttpResponse:
    """The page's one poll (templates/generations/_live_poll.html): every live card on an
    open page, asked about in one request per period, however many there are. One query
    reads them all (and one more their places in line when some are queued). Only the cards
    that changed come back, as out-of-band swaps; 204 when none did; 286 (stop polling) once
    none is live. A card that is gone or no longer visible loses its token, so the page
    stops asking about it. A POST only because a hundred tokens outgrow a request line
    (gunicorn takes 4 KB); it changes nothing."""
    tokens = _live_tokens(request.POST.getlist("live"))
    if not tokens:
        return HttpResponseStopPolling()
    # Most polls find nothing new: compare versions from the few columns they are made of,
    # and load whole rows (to render) only for the cards that changed.
    states = _live_states(request.user, tokens)
    queued = any(state[1] == Status.QUEUED for state in states.values())
    places, waiting_for_key = _queue_places() if queued else ({}, "")
    parts, changed, still_live = [], [], False
    for token in tokens:
        if (state := states.get(token.hex)) is None:  # gone, or no longer visible
            parts.append(f'<input id="live-{token.hex}" hx-swap-oob="delete">')
            continue
        pk, status, remote_status, wait_reason = state
        still_live = still_live or status not in TERMINAL
        no_key = waiting_for_key if status == Status.QUEUED else ""
        version = Generation.live_version_of(
            status, remote_status, wait_reason, places.get(pk), no_key
        )
        if version != token.version:
            changed.append(token)
    rows = {}
    if changed:
        cards = Generation.objects.visible_to(request.user).for_cards(request.user)
        rows = {g.public_id.hex: g for g in cards.filter(public_id__in=[t.hex for t in changed])}
    finished = []
    for token in changed:
        if (gen := rows.get(token.hex)) is None:
            continue  # deleted between the two reads: the next poll drops its token
        gen.queue_position = places.get(gen.pk)
        gen.no_key = waiting_for_key if gen.status == Status.QUEUED else ""
        if token.kind == "detail":
            back = request.POST.get("back")
            context = clip.detail_context(request, gen, back=back) | {"live_oob": True}
            parts.append(render_to_string(DETAIL_BODY, context, request))
        else:
            context = {"generation": gen, "pick": token.kind == "pick", "live_oob": True}
            parts.append(render_to_string(CARD, context, request))
        if gen.is_terminal and (event := _finished_event(request, gen)):
            finished.append(event)
    if not parts:
        return HttpResponse(status=204)  # nothing changed: htmx polls again
    body = "".join(parts)
    response = HttpResponse(body) if still_live else HttpResponseStopPolling(body)
    if finished:
        trigger_client_event(response, "generationsFinished", finished)
    return response


@require_GET
def generation_status(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """One card as it is now (`detail=1`: the clip page's body), for a script or a test.
    Nothing polls it: pages ask about all their live cards at once (`live_cards`), and a
    card's own actions answer with the card themselves (`_render_live`)."""
    return _render_live(request, access.get_clip_or_404(request.user, public_id))


@require_POST
def generation_visibility(request: HtmxHttpRequest, public_id) -> HttpResponse:
    gen = access.get_managed_clip_or_404(request.user, public_id)
    value = request.POST.get("visibility")
    if value not in Visibility.values:
        return HttpResponseBadRequest("visibility must be 'team' or 'private'")
    Generation.objects.filter(pk=gen.pk).update(visibility=value)
    gen.visibility = value
    if request.htmx:
        return _render_live(request, gen)
    return redirect_next(request, reverse("studio"))


TOO_LATE_TO_CANCEL = (
    "Too late to cancel: the job had just been sent to Kling, which charges for it. "
    "Its card can stop tracking it."
)
TOO_LATE_MADE = "Too late to cancel: Kling has already made this clip, and it is being saved."
TOO_LATE_ENDED = "This job had already ended."


def _too_late(gen: Generation) -> str:
    """Why a cancel changed nothing, from the state the job is in now."""
    if gen.status in (Status.STORING, Status.SUCCEEDED):
        return TOO_LATE_MADE
    if gen.status in TERMINAL:
        return TOO_LATE_ENDED
    return TOO_LATE_TO_CANCEL


@require_POST
def generation_cancel(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """Queued: cancelled, nothing charged. In flight: Kling charges anyway, so we only stop
    tracking, after a confirmation (hx-confirm with JavaScript, a small page without)."""
    gen = access.get_managed_clip_or_404(request.user, public_id)
    confirmed = request.POST.get("confirm") == "yes"
    # Past the queue a task may exist upstream and its charge stands: ask first.
    if gen.status in CANCELLABLE and gen.status != Status.QUEUED and not confirmed:
        if request.htmx:  # the card was out of date: show it as it is now, with the warning
            return _render_live(request, gen)
        return render(
            request,
            "generations/generation_confirm_cancel.html",
            {"generation": gen, "next": next_url(request, reverse("studio"))},
        )
    cancelled = lifecycle.cancel(gen)
    gen.refresh_from_db()
    if not cancelled and not request.htmx:
        messages.info(request, _too_late(gen))
    if request.htmx:
        response = _render_live(request, gen)
        if not cancelled:  # a free key slot took the job first: say so, not just a new card
            trigger_client_event(response, "notice", {"text": _too_late(gen)})
        # The line under Generate and the estimate's "won't fit" follow (studio.js).
        room = _budget_room(budgets.standing(request.user))
        trigger_client_event(response, "budgetChanged", room)
        return response
    return redirect_next(request, reverse("studio"))


@require_POST
def generation_retry(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """A failed or cancelled job of one's own, again with the same parameters: a new job
    (the old card stays, with its reason)."""
    gen = access.get_managed_clip_or_404(request.user, public_id)
    if gen.status not in (Status.FAILED, Status.CANCELLED):
        return HttpResponseBadRequest("Only a failed or cancelled job can be retried.")
    form = GenerationForm(GenerationForm.initial_from(gen))
    if not form.is_valid():  # the matrix changed since: edit it in the form instead
        return redirect(f"{reverse('studio')}?remix={gen.public_id}")
    try:
        lifecycle.create_generation(request.user, **form.generation_params())
    except budgets.LimitExceeded as exc:
        messages.error(request, str(exc))
        return redirect("studio")
    messages.success(request, "Queued again. The new card is at the top.")
    return redirect("studio")


CALLBACK_MAX_BYTES = 256 * 1024  # a task object is a few KB


@login_not_required
@csrf_exempt
@require_POST
def kling_callback(request: HttpRequest, public_id, token: str = "") -> HttpResponse:
    """Kling's push. Unsigned, so the URL carries a per-generation token (in the query;
    callbacks of older tasks carry it in the path); answered fast, and only ever makes us
    read the task ourselves (see lifecycle.push_received)."""
    token = token or request.GET.get("token", "")
    gen = Generation.objects.filter(public_id=public_id).first()
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str, and a forged URL
    # may carry anything.
    if (
        gen is None
        or not token
        or not secrets.compare_digest(gen.callback_token.encode(), token.encode())
    ):
        return JsonResponse({"error": "unknown callback"}, status=404)
    # The declared length is checked before the body is read: past Django's
    # DATA_UPLOAD_MAX_MEMORY_SIZE, reading it raises (an HTML 400), not this JSON 413.
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > CALLBACK_MAX_BYTES or len(request.body) > CALLBACK_MAX_BYTES:
        return JsonResponse({"error": "body too large"}, status=413)
    try:
        remote = parse_callback(request.body)
    except (CometAPIError, ValueError):
        return JsonResponse({"error": "not a task object"}, status=400)
    lifecycle.push_received(gen, remote)
    return JsonResponse({"ok": True})

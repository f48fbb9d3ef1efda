import logging
import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, reswap, retarget
from django_htmx.middleware import HtmxDetails

from . import lifecycle
from .cometapi import CometAPIError, parse_callback
from .forms import GenerationForm
from .models import TERMINAL, ApiKey, Generation, Visibility
from .ranged import ranged_file_response

log = logging.getLogger(__name__)
PAGE_SIZE = 24


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _get_generation(request: HttpRequest, public_id, *, owner_only: bool = False) -> Generation:
    """The generation if this user may see it (or change it, with owner_only); else 404,
    so private work isn't even confirmed to exist."""
    qs = Generation.objects.for_cards()
    if owner_only:
        qs = qs if request.user.is_staff else qs.filter(owner=request.user)
    else:
        qs = qs.visible_to(request.user)
    try:
        return qs.get(public_id=public_id)
    except Generation.DoesNotExist:
        raise Http404("No such generation") from None


def _studio_context(request: HttpRequest, form: GenerationForm) -> dict:
    mine = Generation.objects.for_cards().filter(owner=request.user)[:PAGE_SIZE]
    return {
        "form": form,
        "generations": mine,
        "has_keys": ApiKey.objects.filter(is_active=True, is_healthy=True).exists(),
    }


@require_http_methods(["GET", "POST"])
def studio(request: HtmxHttpRequest) -> HttpResponse:
    template = "generations/studio.html"
    if request.method == "POST":
        form = GenerationForm(request.POST)
        if form.is_valid():
            gen = lifecycle.create_generation(request.user, **form.generation_params())
            if request.htmx:
                # The new card goes on top of the list; the form comes back fresh.
                return render(
                    request,
                    "generations/_created.html",
                    {"generation": gen, "form": GenerationForm()},
                )
            messages.success(request, "Queued. The card below shows its progress.")
            return redirect("studio")
        if request.htmx:
            # htmx swaps only 2xx answers: send 200 and point the swap at the form.
            response = render(request, template + "#prompt-form", {"form": form})
            return reswap(retarget(response, "#prompt-form"), "outerHTML")
        return render(request, template, _studio_context(request, form), status=422)
    return render(request, template, _studio_context(request, GenerationForm()))


@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    generations = Generation.objects.team_gallery()[: PAGE_SIZE * 2]
    return render(request, "generations/gallery.html", {"generations": generations})


@require_GET
def generation_detail(request: HttpRequest, public_id) -> HttpResponse:
    gen = _get_generation(request, public_id)
    return render(request, "generations/generation_detail.html", {"generation": gen})


@require_GET
def generation_status(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """The card alone. htmx polls it every 2 s; 286 tells htmx to stop at a final state."""
    gen = _get_generation(request, public_id)
    response = TemplateResponse(
        request, "generations/studio.html#generation-card", {"generation": gen}
    )
    if gen.is_terminal:
        response.render()
        stop = HttpResponseStopPolling(response.content)
        return stop
    return response


@require_GET
def generation_video(request: HttpRequest, public_id) -> HttpResponse:
    gen = _get_generation(request, public_id)
    if not gen.video:
        raise Http404("This clip is not stored yet")
    response = ranged_file_response(request, gen.video.name, "video/mp4")
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="kling-{gen.public_id}.mp4"'
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
def generation_poster(request: HttpRequest, public_id) -> HttpResponse:
    gen = _get_generation(request, public_id)
    if not gen.poster:
        raise Http404("No poster")
    response = ranged_file_response(request, gen.poster.name, "image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_POST
def generation_visibility(request: HtmxHttpRequest, public_id) -> HttpResponse:
    gen = _get_generation(request, public_id, owner_only=True)
    value = request.POST.get("visibility")
    if value not in Visibility.values:
        return HttpResponseBadRequest("visibility must be 'team' or 'private'")
    Generation.objects.filter(pk=gen.pk).update(visibility=value)
    gen.visibility = value
    if request.htmx:
        return render(request, "generations/studio.html#generation-card", {"generation": gen})
    return redirect(_next_url(request))


@require_POST
def generation_cancel(request: HtmxHttpRequest, public_id) -> HttpResponse:
    gen = _get_generation(request, public_id, owner_only=True)
    if not lifecycle.cancel(gen):
        messages.info(request, "That job had already moved on; nothing was cancelled.")
    gen.refresh_from_db()
    if request.htmx:
        return render(request, "generations/studio.html#generation-card", {"generation": gen})
    return redirect(_next_url(request))


def _next_url(request: HttpRequest) -> str:
    """Where a no-JavaScript form goes back to: its page, if `next` is one of ours."""
    nxt = request.POST.get("next", "")
    if nxt and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        return nxt
    return reverse("studio")


@login_not_required
@csrf_exempt
@require_POST
def kling_callback(request: HttpRequest, public_id, token: str) -> HttpResponse:
    """Kling's push. Unsigned, so the URL carries a per-generation token; answered fast, and
    a terminal state is only trusted after our own confirming read (see apply_remote)."""
    gen = Generation.objects.filter(public_id=public_id).select_related("api_key").first()
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str, and a forged URL
    # may carry anything.
    if gen is None or not secrets.compare_digest(gen.callback_token.encode(), token.encode()):
        return JsonResponse({"error": "unknown callback"}, status=404)
    if len(request.body) > 256 * 1024:
        return JsonResponse({"error": "body too large"}, status=413)
    try:
        remote = parse_callback(request.body)
    except (CometAPIError, ValueError):
        return JsonResponse({"error": "not a task object"}, status=400)
    lifecycle.apply_remote(gen, remote, confirmed=False)
    return JsonResponse({"ok": True})


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and monitoring: the database answers, and how much work is open."""
    unfinished = dict(
        Generation.objects.exclude(status__in=TERMINAL)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    return JsonResponse({"ok": True, "unfinished": unfinished})

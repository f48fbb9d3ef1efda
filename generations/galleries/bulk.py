"""Several clips at once: the galleries' tick boxes post here with what to do."""

import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from .. import access
from ..models import (
    Generation,
    Visibility,
)
from .clip import delete_clips, gallery_back_url
from .filters import MINE, TEAM, Scope
from .zips import nothing_to_zip, zip_response

# ---------------------------------------------------------------------------------------
# Several clips at once: the galleries' tick boxes post here with what to do (gallery.js
# adds shift-click ranges, a bar with the count, and one confirmation before a change to the
# lot; without JavaScript a confirmation page asks; Compare and the zip change nothing, so
# neither asks). All or nothing: a selection holding anything the
# member may not act on changes nothing and says why.

SELECTION_MAX = 200
BULK_VERBS = {
    "compare": "compare",
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
    if action in ("zip", "compare"):  # anything the member sees
        return rows
    others = [gen for gen in rows if not access.can_manage(request.user, gen)]
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
    back = gallery_back_url(request.POST.get("back")) or reverse(scope.url_name)
    action = request.POST.get("action", "")
    rows = _bulk_refusal(request, action, request.POST.getlist("ids"))
    if isinstance(rows, str):
        messages.error(request, rows)
        return redirect(back)
    if action == "compare":  # Compare's own page says when there are too few or too many
        found = {str(gen.public_id) for gen in rows}
        picked = [str(uuid.UUID(v)) for v in request.POST.getlist("ids")]
        ids = [("g", v) for v in dict.fromkeys(picked) if v in found]
        query = urlencode([*ids, ("back", back)])
        return redirect(f"{reverse('compare')}?{query}")
    if action == "zip":
        qs = Generation.objects.filter(pk__in=[gen.pk for gen in rows]).order_by("-created_at")
        if (empty := nothing_to_zip(request, qs, back)) is not None:
            return empty
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        return zip_response(request, qs, f"kling-selection-{stamp}.zip")
    if request.POST.get("confirm") != "yes":
        rows.sort(key=lambda gen: gen.created_at, reverse=True)
        context = {"rows": rows, "action": action, "verb": BULK_VERBS[action], "back": back}
        return render(request, "generations/bulk_confirm.html", context)
    if action == "delete":
        delete_clips(rows)
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

"""A clip's stored files: the video (with HTTP Range, so seeking works) and its poster,
served after the access check, from local disk or S3 alike."""

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .. import access
from .ranged import ranged_file_response
from .zips import download_name


@require_GET
def generation_video(request: HttpRequest, public_id) -> HttpResponse:
    gen = access.get_clip_or_404(request.user, public_id)
    if not gen.video:
        raise Http404("This clip is not stored yet")
    response = _stored_file(request, gen.video.name, "video/mp4")
    if request.GET.get("download"):
        # Named from the prompt, as in the zip: a folder of downloads stays readable.
        response["Content-Disposition"] = f'attachment; filename="{download_name(gen)}"'
    # Every request (each seek) comes back here for the permission check: a clip made
    # private or deleted stops playing for others at once, not when a cached copy expires.
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def generation_poster(request: HttpRequest, public_id) -> HttpResponse:
    gen = access.get_clip_or_404(request.user, public_id)
    if not gen.poster:
        raise Http404("No poster")
    response = _stored_file(request, gen.poster.name, "image/jpeg")
    # A grid of posters is reloaded with every gallery page: a minute's caching spares
    # that, and bounds how long a poster made private stays in a teammate's browser.
    response["Cache-Control"] = "private, max-age=60"
    return response


def _stored_file(request: HttpRequest, name: str, content_type: str) -> HttpResponse:
    try:
        return ranged_file_response(request, name, content_type)
    except FileNotFoundError:  # the row outlived its file (removed from storage by hand)
        raise Http404("This file is no longer stored") from None

"""A filtered selection as one zip with its manifests, streamed."""

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from .. import csvsafe
from ..governance import costs
from ..models import (
    Generation,
    GenerationQuerySet,
    Status,
)
from . import zipslots
from .filters import MINE, TEAM, Scope, filtered_selection
from .paging import query_string

CHUNK = 64 * 1024


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


def iso_time(at: datetime | None) -> str:
    return timezone.localtime(at).isoformat() if at else ""


def _manifest_row(gen: Generation, name: str, prices: dict) -> dict:
    price = costs.price_in(prices, gen.model_name, gen.mode, gen.duration)
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
        "created_at": iso_time(gen.created_at),
        "submitted_at": iso_time(gen.submitted_at),
        "finished_at": iso_time(gen.finished_at),
        "video_seconds": gen.video_duration,
        "units": str(units) if units is not None else None,
        "estimated_usd": str(price.usd) if price else None,
        "task_id": gen.task_id,
        "external_task_id": gen.external_task_id,
    }


def download_name(gen: Generation) -> str:
    """A clip's file name from its date and prompt: the zip's entries and single downloads."""
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


def zip_entries(qs: GenerationQuerySet, extras: ZipExtras | None = None) -> list[_ZipEntry]:
    """Read the rows (and prices) a zip needs, all of them, now. Streaming from a cursor
    instead would hold a database snapshot for as long as the client takes to read, which
    on SQLite stops the write-ahead log from being checkpointed (it grows without bound)."""
    prices = costs.price_table()
    entries = []
    clips = list(qs.select_related("owner"))
    if extras is not None:
        extras.prepare(clips)
    for gen in clips:
        name = download_name(gen)
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
def zip_stream(entries: list[_ZipEntry], extras: ZipExtras | None = None) -> Iterator[bytes]:
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
        entries = zip_entries(qs.filter(status=Status.SUCCEEDED).exclude(video=""), extras)
    except BaseException:
        zipslots.release(token)
        raise
    stream = zipslots.HeldStream(zip_stream(entries, extras), token)
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def nothing_to_zip(request: HttpRequest, qs: GenerationQuerySet, back: str) -> HttpResponse | None:
    """A page that says so, instead of a zip holding only the manifests' headers."""
    if qs.filter(status=Status.SUCCEEDED).exclude(video="").exists():
        return None
    messages.info(request, "No finished clips in this selection, so there is nothing to download.")
    return redirect(back)


def _download(request: HttpRequest, scope: Scope) -> HttpResponse:
    _form, qs = filtered_selection(request, scope)
    back = reverse(scope.url_name) + (f"?{query}" if (query := query_string(request)) else "")
    if (empty := nothing_to_zip(request, qs, back)) is not None:
        return empty
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return zip_response(request, qs, f"kling-{scope.name}-{stamp}.zip")


@require_GET
def my_generations_zip(request: HttpRequest) -> HttpResponse:
    return _download(request, MINE)


@require_GET
def gallery_zip(request: HttpRequest) -> HttpResponse:
    return _download(request, TEAM)

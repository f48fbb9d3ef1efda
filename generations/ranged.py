"""HTTP Range responses for stored clips.

Django's FileResponse always sends the whole file; browsers need `206 Partial Content` to
seek in a <video> (Safari refuses to play without it).
"""

import re

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def _chunks(f, start: int, length: int):
    f.seek(start)
    while length > 0:
        data = f.read(min(CHUNK, length))
        if not data:
            break
        length -= len(data)
        yield data


def ranged_file_response(request: HttpRequest, name: str, content_type: str) -> HttpResponse:
    size = default_storage.size(name)
    header = request.headers.get("Range", "").strip()
    match = RANGE_RE.match(header) if header else None
    if not match or not (match[1] or match[2]):
        # No range, or a form we don't serve (multiple ranges): the whole file, which
        # RFC 9110 allows as the answer to any Range request.
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        response["Content-Length"] = str(size)
        return response
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(size - int(match[2]), 0), size - 1
    if start >= size or start > end:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    length = end - start + 1
    f = default_storage.open(name, "rb")
    response = StreamingHttpResponse(
        _chunks(f, start, length), status=206, content_type=content_type
    )
    response._resource_closers.append(f.close)  # closed by the server even on a disconnect
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    return response

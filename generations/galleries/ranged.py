"""HTTP Range responses for stored clips and posters, from any Django storage.

Django's FileResponse always sends the whole file; browsers need `206 Partial Content` to
seek in a <video> (Safari refuses to play without it). The caller has already checked that
the member may see the file: we stream it ourselves rather than redirect to the storage, so
a clip made private or deleted stops being served at the very next request (the views send
`Cache-Control: private` with no-store or a short max-age, for the same reason).

On S3-compatible storage (django-storages' S3Storage) the bytes come from a ranged GET on
the object, streamed as they arrive: opening such a file through Django would first copy
the whole object to a temporary file, for every seek.
"""

import re
from collections.abc import Callable, Iterator

from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def _chunks(f, start: int, length: int) -> Iterator[bytes]:
    f.seek(start)
    while length > 0:
        data = f.read(min(CHUNK, length))
        if not data:
            break
        length -= len(data)
        yield data


def _byte_stream(f, start: int, end: int) -> tuple[Iterator[bytes], Callable[[], None]]:
    """Bytes start..end (inclusive) of an opened storage file, and how to close it."""
    s3_object = getattr(f, "obj", None)  # storages' S3File: the boto3 Object, not yet read
    if s3_object is not None:
        body = s3_object.get(Range=f"bytes={start}-{end}")["Body"]
        return body.iter_chunks(CHUNK), body.close
    return _chunks(f, start, end - start + 1), f.close


def ranged_file_response(request: HttpRequest, name: str, content_type: str) -> HttpResponse:
    f = default_storage.open(name, "rb")  # S3: one HEAD request; FileNotFoundError if gone
    size = f.size
    header = request.headers.get("Range", "").strip()
    match = RANGE_RE.match(header) if header else None
    if not match or not (match[1] or match[2]):
        # No range, or a form we don't serve (multiple ranges): the whole file, which
        # RFC 9110 allows as the answer to any Range request.
        start, end, status = 0, size - 1, 200
    elif match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
        status = 206
    else:  # suffix range: the last N bytes
        start, end, status = max(size - int(match[2]), 0), size - 1, 206
    if status == 206 and (start >= size or start > end):
        f.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if size == 0:
        f.close()
        response = HttpResponse(b"", content_type=content_type)
    else:
        chunks, close = _byte_stream(f, start, end)
        response = StreamingHttpResponse(chunks, status=status, content_type=content_type)
        response._resource_closers.append(close)  # closed by the server even on a disconnect
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    return response

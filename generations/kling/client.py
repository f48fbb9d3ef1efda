"""The only module that speaks HTTP to CometAPI (Kling text-to-video).

A leaf: httpx and the standard library, no Django. Every failure surfaces as a
`CometAPIError` subclass whose class says what the caller should do (retry later, use
another key, show the message to the user, give up).
The client never retries by itself: the caller owns retries, because a create whose
outcome is unknown must first be looked up by `external_task_id`, never blindly resent.

The contract is docs/cometapi-kling.md; where it says "unverified", both answers are
accepted here.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import math
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, BinaryIO, Self
from urllib.parse import quote

import httpx

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cometapi.com"
# Generous read/write: CometAPI proxies to Kling, and a create can take seconds under load.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
# A result URL may redirect to a CDN edge; each hop is checked (see download()).
MAX_DOWNLOAD_REDIRECTS = 5
TERMINAL_STATUSES = frozenset({"succeed", "failed"})

TEXT2VIDEO_PATH = "/kling/v1/videos/text2video"
# An API answer is a few KB; a wrong base URL could stream anything, so stop reading early.
MAX_API_BODY_BYTES = 2 * 1024 * 1024
_MESSAGE_LIMIT = 500  # str(error) is one line for logs and flash messages

_BASE_URL_HINT = (
    "check COMETAPI_BASE_URL (it should be the API host, e.g. https://api.cometapi.com)"
)
# CometAPI keys look like "sk-…". An error body may echo a key (ours or another one);
# scrub anything key-shaped as well as the exact key the client holds.
_KEY_PATTERN = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_BEARER_PATTERN = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
# new-api (the gateway software CometAPI runs) answers a missing task with a string code.
_NOT_FOUND_CODES = frozenset({"task_not_exist", "task_not_found", "not_found"})
_SUCCESS_CODES = frozenset({"0", "success", "succeed", "ok"})


# --------------------------------------------------------------------------- errors


def _scrub(text: str, secret: str = "") -> str:
    if secret:
        text = text.replace(secret, "[redacted]")
    text = _KEY_PATTERN.sub("sk-[redacted]", text)
    return _BEARER_PATTERN.sub("Bearer [redacted]", text)


class CometAPIError(Exception):
    """Base of every failure the client raises.

    `retryable`: the same request may succeed later (back off first). A KeyRejected means
    the API key itself is unusable: mark it unhealthy and use another.
    """

    retryable: bool = False

    # Keyword-only with defaults so that pickle (BaseException.__reduce__ calls
    # cls(*args) then restores __dict__) round-trips through django-q2's result store.
    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: int | str | None = None,
        request_id: str = "",
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = _scrub(str(message))
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after  # seconds from a Retry-After header, when sent
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        text = " ".join(self.message.split())[:_MESSAGE_LIMIT] or type(self).__name__
        details = []
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        if self.code not in (None, ""):
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"request {self.request_id}")
        return f"{text} [{', '.join(details)}]" if details else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class KeyRejected(CometAPIError):
    """Authentication, billing, access or IP-whitelist refusal: this key cannot work now."""

    retryable = False


class RequestRejected(CometAPIError):
    """The request itself is wrong; resending it unchanged fails the same way."""

    retryable = False


class ContentRejected(RequestRejected):
    """Kling's platform or content policy refused the prompt: the prompt must change."""


class TaskNotFound(RequestRejected):
    """The task (or resource) does not exist for this key."""


class RateLimited(CometAPIError):
    """Too fast (1302) or too many concurrent tasks (1303): back off, then retry."""

    retryable = True


class UpstreamUnavailable(CometAPIError):
    """CometAPI or Kling is down, overloaded, timing out, or unreachable."""

    retryable = True


class UnexpectedResponse(CometAPIError):
    """An answer that is not the documented shape (HTML, a redirect, JSON without a task)."""

    def __init__(self, message: str, *, retryable: bool | None = None, **kwargs: Any) -> None:
        if retryable is None:
            # A 5xx or no response at all may be transient; a 2xx-4xx of the wrong shape
            # (usually a wrong base URL) will answer the same way next time.
            status = kwargs.get("http_status")
            retryable = status is None or status >= 500
        super().__init__(message, retryable=retryable, **kwargs)


class MalformedTask(UnexpectedResponse, ValueError):
    """A task object without a task_id (or not an object): from a response or a callback.

    Also a ValueError so a callback view can reject junk with a plain `except ValueError`.
    """


class ResultExpired(CometAPIError):
    """The result URL answers 403/404/410: Kling deletes results after 30 days."""

    retryable = False


# --------------------------------------------------------------------------- task


@dataclass(frozen=True)
class RemoteTask:
    """One Kling task as CometAPI reports it, normalised."""

    task_id: str
    status: str  # "submitted" | "processing" | "succeed" | "failed", as Kling sends it
    status_msg: str
    external_task_id: str
    video_url: str
    video_duration: float | None
    units: Decimal | None
    updated_at_ms: int | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _number(value: object) -> Decimal | None:
    # Kling sends numbers as strings ("5.1", "1"); accept real numbers too.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _millis(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 0 else None


def _first_video(task: Mapping[str, Any]) -> Mapping[str, Any]:
    result = task.get("task_result")
    videos = result.get("videos") if isinstance(result, Mapping) else None
    if isinstance(videos, list) and videos and isinstance(videos[0], Mapping):
        return videos[0]
    return {}


def _parse_task(data: object, *, http_status: int | None = None) -> RemoteTask:
    if not isinstance(data, Mapping):
        raise MalformedTask(
            f"expected a task object, got {type(data).__name__}",
            http_status=http_status,
            retryable=False,
        )
    task_id = _text(data.get("task_id"))
    if not task_id:
        raise MalformedTask(
            "the task object has no task_id", http_status=http_status, retryable=False
        )
    info = data.get("task_info")
    external_id = _text(info.get("external_task_id")) if isinstance(info, Mapping) else ""
    video = _first_video(data)
    duration = _number(video.get("duration"))
    return RemoteTask(
        task_id=task_id,
        # Lower-cased so a gateway that capitalises ("SUCCEED") still compares equal.
        status=_text(data.get("task_status")).lower(),
        status_msg=_text(data.get("task_status_msg")),
        external_task_id=external_id or _text(data.get("external_task_id")),
        video_url=_text(video.get("url")),
        video_duration=float(duration) if duration is not None and duration >= 0 else None,
        units=_number(data.get("final_unit_deduction")),
        updated_at_ms=_millis(data.get("updated_at")),
    )


def parse_callback(body: bytes | str | Mapping[str, Any]) -> RemoteTask:
    """Parse a Kling status push: the flat task object, or the same wrapped in the envelope.

    Raises MalformedTask (an UnexpectedResponse and a ValueError) on anything else.
    Callbacks are unsigned: treat the result as a hint and confirm with get_task().
    """
    payload: object = body
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            payload = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MalformedTask("the callback body is not UTF-8", retryable=False) from None
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError):
            raise MalformedTask("the callback body is not JSON", retryable=False) from None
    if isinstance(payload, Mapping) and "task_id" not in payload:
        inner = payload.get("data")
        if isinstance(inner, Mapping):
            if not _is_success_code(payload.get("code", 0)):
                raise MalformedTask(
                    "the callback envelope carries an error code",
                    code=_code_value(payload.get("code")),
                    retryable=False,
                )
            payload = inner
    return _parse_task(payload)


# --------------------------------------------------------------------------- error mapping

# Kling's documented codes → (class, meaning used when the body has no message).
_KLING_CODES: dict[int, tuple[type[CometAPIError], str]] = {
    1000: (KeyRejected, "authentication failed"),
    1001: (KeyRejected, "authorization is empty"),
    1002: (KeyRejected, "authorization is invalid"),
    1003: (KeyRejected, "authorization is not yet valid"),
    1004: (KeyRejected, "authorization has expired"),
    1100: (KeyRejected, "account exception"),
    1101: (KeyRejected, "account in arrears"),
    1102: (KeyRejected, "resource pack used up or expired"),
    1103: (KeyRejected, "no access to this resource or model"),
    1200: (RequestRejected, "invalid request"),
    1201: (RequestRejected, "invalid request parameter"),
    1202: (RequestRejected, "invalid request method"),
    1203: (TaskNotFound, "the requested resource does not exist"),
    1300: (ContentRejected, "refused by platform policy"),
    1301: (ContentRejected, "refused by content security policy"),
    1302: (RateLimited, "requests too fast"),
    1303: (RateLimited, "too many concurrent tasks for this account"),
    1304: (KeyRejected, "refused by IP whitelist policy"),
    5000: (UpstreamUnavailable, "Kling server error"),
    5001: (UpstreamUnavailable, "Kling temporarily unavailable"),
    5002: (UpstreamUnavailable, "Kling server timeout"),
}


def _code_value(value: object) -> int | str | None:
    """Kling codes are ints (sometimes sent as numeric strings); the gateway's are words."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?\d{1,9}", text):
        return int(text)
    return text or None


def _is_success_code(value: object) -> bool:
    return str(_code_value(value)).lower() in _SUCCESS_CODES


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None  # the HTTP-date form is rare on APIs; callers fall back to their backoff
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _classify(
    status: int,
    payload: Mapping[str, Any] | None,
    *,
    request_id: str,
    retry_after: float | None,
    secret: str = "",
) -> CometAPIError:
    """Map an error answer to its class: the Kling code first, then the HTTP status."""
    gateway = False
    code: int | str | None = None
    message = ""
    if payload is not None:
        error = payload.get("error")
        if isinstance(error, Mapping):  # CometAPI's own {"error": {...}} envelope
            gateway = True
            code = _code_value(error.get("code"))
            message = _text(error.get("message"))
        else:
            code = _code_value(payload.get("code"))
            message = _text(payload.get("message")) or _text(error)
    message = _scrub(message, secret)  # a gateway may echo the Authorization it got
    common: dict[str, Any] = {
        "http_status": status,
        "code": code,
        "request_id": request_id,
        "retry_after": retry_after,
    }

    if isinstance(code, int) and code in _KLING_CODES:
        cls, meaning = _KLING_CODES[code]
        return cls(message or meaning, **common)
    if isinstance(code, str) and code.lower() in _NOT_FOUND_CODES:
        return TaskNotFound(message or "the task does not exist", **common)
    if isinstance(code, str) and "quota" in code.lower():
        # OpenAI-style gateways answer an exhausted balance as 429 "insufficient_quota":
        # retrying cannot help, another key can.
        return KeyRejected(message or "the key's quota is used up", **common)

    if payload is None:
        # HTML or text: a proxy, a WAF or a wrong host answered, not CometAPI's API.
        # A 401/403 page is no proof the key is bad, so it must not disable the key.
        if status == 429:
            return RateLimited("CometAPI answered 429 (too many requests)", **common)
        if status >= 500:
            return UpstreamUnavailable(f"CometAPI answered HTTP {status}", **common)
        return UnexpectedResponse(
            f"CometAPI answered HTTP {status} without a JSON body; {_BASE_URL_HINT}", **common
        )

    described = message or f"CometAPI answered HTTP {status}"
    if status == 500 and gateway and code == "invalid_request":
        # The gateway reports some request errors as 500; resending cannot help.
        return RequestRejected(described, **common)
    if status in (401, 403):
        return KeyRejected(described, **common)
    if status == 429:
        return RateLimited(described, **common)
    if status == 408 or status >= 500:
        return UpstreamUnavailable(described, **common)
    if status == 404:
        return RequestRejected(f"{described} (HTTP 404; {_BASE_URL_HINT})", **common)
    if status >= 400:
        return RequestRejected(described, **common)
    # A 2xx whose envelope carries an unknown non-zero code.
    if isinstance(code, int) and code >= 5000:
        return UpstreamUnavailable(described, **common)
    return RequestRejected(message or f"CometAPI answered code {code}", **common)


# --------------------------------------------------------------------------- client


def _path_segment(value: str, name: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    # "." and ".." survive quote() and would be collapsed as dot-segments, turning a
    # task read into a read of another URL.
    if not text or text in {".", ".."}:
        raise ValueError(f"{name} must be a non-empty id")
    return quote(text, safe="")


def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _normalize_base_url(base_url: str) -> str:
    """The base URL without its trailing slash; ValueError unless it is an http(s) URL."""
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError, AttributeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        # The value is not echoed: a mistyped setting may hold the key itself.
        raise ValueError("COMETAPI_BASE_URL must be an http(s) URL such as " + DEFAULT_BASE_URL)
    return str(url).rstrip("/")


def _http_url(url: str) -> httpx.URL | None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    return parsed if parsed.scheme in ("http", "https") and parsed.host else None


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the DNS look-up of a download hop)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    """A globally routable unicast address: not private, loopback, link-local, reserved,
    shared (CGNAT), multicast or unspecified, nor one of those mapped into IPv6."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _key_error(key: str) -> str | None:
    if not key:
        return "no CometAPI key is configured"
    # httpx would raise on a non-ASCII header with the key inside the exception.
    if not key.isascii() or not key.isprintable() or " " in key:
        return "the CometAPI key contains spaces, line breaks or non-ASCII characters"
    return None


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client. Building one (loading the CA bundle) costs ~20 ms
    of CPU, more than a whole poll; workers make a client per job step, hundreds a minute.
    An SSLContext is safe to share between threads and connections."""
    return httpx.create_ssl_context()


class CometAPIClient:
    """A synchronous CometAPI client bound to one API key.

    Use as a context manager or call close(). The key is kept for the Authorization header
    and to scrub echoes of it; repr(), str(), logs and every exception leave it out.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        key = api_key.strip() if isinstance(api_key, str) else ""  # pasted keys end in "\n"
        # An unusable key is not refused here: a worker builds clients outside its error
        # handling, and download() needs no key. API calls raise KeyRejected instead, which
        # marks the key unhealthy like a 401 would, without sending anything.
        self._key_error = _key_error(key)
        self.base_url = _normalize_base_url(base_url)
        self._secret = key
        headers = {"Accept": "application/json", "User-Agent": "kling-studio"}
        if self._key_error is None:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=DEFAULT_TIMEOUT,
            verify=_tls_context(),
            # A redirect means a wrong base URL; following it would resend the key elsewhere.
            follow_redirects=False,
        )
        self._download_client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def __getstate__(self) -> None:
        # django-q2 pickles task arguments: a client (and its key) must never end up there.
        raise TypeError("CometAPIClient holds an API key and cannot be pickled; pass ids")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        if self._download_client is not None:
            self._download_client.close()

    # ----------------------------------------------------------------------- API calls

    def create_text2video(self, params: Mapping[str, Any]) -> RemoteTask:
        """POST a text-to-video task; `params` is the request body, built by the caller
        (Generation.api_params: the duration is already the string "5" or "10" Kling wants).

        A retryable error here leaves the outcome unknown (the task may exist): look it up
        with find_by_external_id() before sending again.
        """
        content = json.dumps(
            params, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        data, status = self._request(
            "POST", TEXT2VIDEO_PATH, content=content, headers={"Content-Type": "application/json"}
        )
        task = _parse_task(data, http_status=status)
        # A task that was just created is "submitted" even if the answer omits the status.
        return task if task.status else replace(task, status="submitted")

    def get_task(self, task_id: str) -> RemoteTask:
        """GET one task by Kling's task_id."""
        path = f"{TEXT2VIDEO_PATH}/{_path_segment(task_id, 'task_id')}"
        data, status = self._request("GET", path)
        return _parse_task(data, http_status=status)

    def find_by_external_id(self, external_task_id: str) -> RemoteTask | None:
        """Find the task created with this external_task_id, or None if there is none.

        The lookup form is unverified, so both are tried: the query form first, then the
        path form. None only when neither finds it; key, rate and outage errors propagate,
        because "unknown" must never be mistaken for "absent" (that would pay twice).
        """
        segment = _path_segment(external_task_id, "external_task_id")
        wanted = external_task_id.strip()
        try:
            data, _ = self._request("GET", TEXT2VIDEO_PATH, params={"external_task_id": wanted})
        except RequestRejected as exc:
            logger.debug("CometAPI query-form lookup refused (%s); trying the path form", exc)
        except UnexpectedResponse as exc:
            # HTML or a redirect for an unsupported form; the path form must still work,
            # and if it does not, its own error surfaces.
            if exc.retryable:
                raise
            logger.debug("CometAPI query-form lookup unsupported (%s); trying the path", exc)
        else:
            found = _pick_external(data, wanted)
            if found is not None:
                return found

        try:
            data, status = self._request("GET", f"{TEXT2VIDEO_PATH}/{segment}")
        except RequestRejected as exc:
            if isinstance(exc, TaskNotFound) or exc.http_status == 404 or exc.code == 1202:
                return None
            raise
        if not data:  # {"code": 0, "data": null}: some gateways say "absent" this way
            return None
        task = _parse_task(data, http_status=status)
        # The path form may resolve the id as a task_id: accept only our own task.
        if task.external_task_id and task.external_task_id != wanted:
            return None
        return task

    # ----------------------------------------------------------------------- download

    def download(self, url: str, dest: BinaryIO, *, max_bytes: int) -> int:
        """Stream a result video into `dest`; return the number of bytes written.

        The URL comes from a task (or a push we confirmed), so it is not trusted: redirects
        are followed by hand and every hop must be https to a public address (see
        _check_hop), and the answer must be a video within `max_bytes`. The request carries
        no API key. On error `dest` may hold a partial file: write to a temporary file and
        discard it.
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        target = _http_url(url)
        if target is None:
            raise UnexpectedResponse("the result URL is not an http(s) URL", retryable=False)
        for _hop in range(MAX_DOWNLOAD_REDIRECTS + 1):
            # Signed CDN URLs carry tokens in the query: errors name the host only.
            host = target.host
            self._check_hop(target)
            try:
                with self._downloader().stream("GET", target) as response:
                    if response.is_redirect:
                        target = _http_url(str(response.url.join(response.headers["location"])))
                        if target is None:
                            raise UnexpectedResponse(
                                f"the result host {host} redirected to a non-http(s) URL",
                                http_status=response.status_code,
                                retryable=False,
                            )
                        continue
                    self._check_download(response, host, max_bytes)
                    written = 0
                    for chunk in response.iter_bytes():
                        written += len(chunk)
                        if written > max_bytes:
                            raise UnexpectedResponse(
                                f"the result from {host} is too large (over {max_bytes} bytes)",
                                http_status=response.status_code,
                                retryable=False,
                            )
                        dest.write(chunk)
                    return written
            except httpx.TransportError as exc:
                raise UpstreamUnavailable(
                    f"could not download the result from {host}: {type(exc).__name__}"
                ) from exc
            except httpx.HTTPError as exc:  # e.g. an undecodable content-encoding
                raise UnexpectedResponse(
                    f"could not download the result from {host}: {type(exc).__name__}",
                    retryable=False,
                ) from exc
        raise UnexpectedResponse(
            f"the result URL redirected more than {MAX_DOWNLOAD_REDIRECTS} times",
            retryable=False,
        )

    def _check_hop(self, url: httpx.URL) -> None:
        """Refuse a hop to anywhere but the public internet over https, so a result URL
        (or a redirect) can't make us fetch from this machine or its network (SSRF).

        The one exception is COMETAPI_BASE_URL's own host, which the operator chose: the
        bundled simulator serves its clips over http on 127.0.0.1.
        """
        host = url.host
        if host == httpx.URL(self.base_url).host:
            return
        if url.scheme != "https":
            raise UnexpectedResponse(f"the result URL at {host} is not https", retryable=False)
        try:
            addresses = resolve_host(host, url.port or 443)
        except OSError as exc:
            raise UpstreamUnavailable(
                f"could not resolve the result host {host}: {type(exc).__name__}"
            ) from exc
        if not addresses or not all(_is_public(address) for address in addresses):
            raise UnexpectedResponse(
                f"the result host {host} is not a public address", retryable=False
            )

    @staticmethod
    def _check_download(response: httpx.Response, host: str, max_bytes: int) -> None:
        status = response.status_code
        if status in (403, 404, 410):
            raise ResultExpired(
                f"the result at {host} is gone (HTTP {status}); Kling keeps results 30 days",
                http_status=status,
            )
        if status >= 500 or status in (408, 429):
            raise UpstreamUnavailable(
                f"the result host {host} answered HTTP {status}", http_status=status
            )
        if not 200 <= status < 300:
            raise UnexpectedResponse(
                f"the result host {host} answered HTTP {status}", http_status=status
            )
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        # Kling's CDN labels its clips video/mp4; anything else (an HTML error page, a file
        # of another kind, no label) is not a clip.
        if not content_type.startswith("video/"):
            raise UnexpectedResponse(
                f"the result from {host} is {content_type or 'unlabelled'}, not a video",
                http_status=status,
                retryable=False,
            )
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > max_bytes:
            raise UnexpectedResponse(
                f"the result from {host} is too large ({declared} bytes, limit {max_bytes})",
                http_status=status,
                retryable=False,
            )

    def _downloader(self) -> httpx.Client:
        # A separate client without the Authorization header: the key must never reach the
        # CDN. Redirects (which CDNs use) are followed by download(), hop by hop.
        if self._download_client is None:
            self._download_client = httpx.Client(
                headers={"User-Agent": "kling-studio"},
                timeout=DEFAULT_TIMEOUT,
                verify=_tls_context(),
                follow_redirects=False,
            )
        return self._download_client

    # ----------------------------------------------------------------------- transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, int]:
        """Send one request; return (envelope data, HTTP status)."""
        if self._key_error is not None:
            raise KeyRejected(self._key_error)
        request = self._client.build_request(
            method, path, params=params, content=content, headers=headers
        )
        try:
            response = self._client.send(request, stream=True)
            try:
                body = _read_capped(response, MAX_API_BODY_BYTES)
            finally:
                response.close()
        except httpx.TransportError as exc:
            detail = _scrub(str(exc), self._secret)[:200]
            message = f"could not reach CometAPI: {type(exc).__name__}"
            raise UpstreamUnavailable(f"{message} ({detail})" if detail else message) from exc
        except httpx.HTTPError as exc:  # e.g. an undecodable content-encoding
            raise UnexpectedResponse(
                f"unreadable answer from CometAPI: {type(exc).__name__}"
            ) from exc

        status = response.status_code
        request_id = response.headers.get("x-request-id", "") or response.headers.get(
            "x-oneapi-request-id", ""
        )
        logger.debug("CometAPI %s %s -> %s", method, path, status)
        if body is None:
            raise UnexpectedResponse(
                f"CometAPI's answer exceeds {MAX_API_BODY_BYTES} bytes; {_BASE_URL_HINT}",
                http_status=status,
                request_id=request_id,
            )
        payload = _json_object(body)
        if payload is not None:
            request_id = _text(payload.get("request_id")) or request_id

        if 300 <= status < 400:
            location = _scrub(response.headers.get("location", ""), self._secret)[:200]
            raise UnexpectedResponse(
                f"CometAPI answered a redirect (HTTP {status} to {location or '?'}); "
                f"{_BASE_URL_HINT}",
                http_status=status,
                request_id=request_id,
            )
        ok = 200 <= status < 300
        if ok and payload is None:
            kind = "HTML" if body.lstrip()[:1] == b"<" else "a non-JSON body"
            raise UnexpectedResponse(
                f"CometAPI answered {kind} instead of JSON; {_BASE_URL_HINT}",
                http_status=status,
                request_id=request_id,
            )
        if ok and payload is not None and _is_success(payload):
            # Tolerate a flat task object without the envelope.
            return payload.get("data", payload), status
        raise _classify(
            status,
            payload,
            request_id=request_id,
            retry_after=_retry_after(response.headers),
            secret=self._secret,
        )


def _json_object(body: bytes) -> Mapping[str, Any] | None:
    try:
        value = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, Mapping) else None


def _is_success(payload: Mapping[str, Any]) -> bool:
    if payload.get("error"):
        return False
    if "code" in payload:
        return _is_success_code(payload["code"])
    return "data" in payload or "task_id" in payload


def _candidates(data: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(data, Mapping) and "task_id" not in data:
        # A list may come wrapped ({"tasks": [...]}) in unverified gateways.
        for key in ("tasks", "list", "items", "records", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    items = data if isinstance(data, list) else [data]
    yield from (item for item in items if isinstance(item, Mapping) and _text(item.get("task_id")))


def _pick_external(data: object, wanted: str) -> RemoteTask | None:
    """The task among `data` (one object or a list) whose external_task_id is `wanted`."""
    tasks = [_parse_task(item) for item in _candidates(data)]
    if isinstance(data, Mapping) and "task_id" in data and len(tasks) == 1:
        # A single object answered for our query: accept it unless it names another id.
        task = tasks[0]
        return task if task.external_task_id in ("", wanted) else None
    # A list may be every task of the account (the filter ignored): require the id.
    matches = [task for task in tasks if task.external_task_id == wanted]
    return max(matches, key=lambda t: t.updated_at_ms or 0) if matches else None

"""The only module that speaks HTTP to CometAPI (Kling text-to-video).

A leaf: httpx and the standard library, no Django. Every failure surfaces as a
`CometAPIError` subclass whose class says what the caller should do (retry later, use
another key, show the message to the user, give up).
The client never retries by itself: the caller owns retries, because a create whose
outcome is unknown must first be looked up by `external_task_id`, never blindly resent.

The contract is docs/cometapi-kling.md; where it says "unverified", both answers are
accepted here."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, BinaryIO, Self
from urllib.parse import quote

import httpcore
import httpx

from .errors import (
    BASE_URL_HINT,
    KeyRejected,
    RequestRejected,
    ResultExpired,
    TaskNotFound,
    UnexpectedResponse,
    UpstreamUnavailable,
    classify,
    retry_after_header,
    scrub_secrets,
    text_of,
)
from .wire import RemoteTask, is_success, json_object, parse_task, pick_external

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cometapi.com"
# Generous read/write: CometAPI proxies to Kling, and a create can take seconds under load.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
# A result URL may redirect to a CDN edge; each hop is checked (see download()).
MAX_DOWNLOAD_REDIRECTS = 5

TEXT2VIDEO_PATH = "/kling/v1/videos/text2video"
# An API answer is a few KB; a wrong base URL could stream anything, so stop reading early.
MAX_API_BODY_BYTES = 2 * 1024 * 1024


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


class PinnedBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting to the address each host was checked at.

    A download hop resolves its host and checks every address (`_check_hop`); resolving
    again to connect would let a DNS answer that changes in between (rebinding) send the
    request to this machine or its network. The URL keeps its host name, so TLS still
    verifies the certificate for it."""

    def __init__(self) -> None:
        self.pins: dict[str, str] = {}

    def connect_tcp(self, host: str, port: int, *args, **kwargs) -> httpcore.NetworkStream:
        return super().connect_tcp(self.pins.get(host, host), port, *args, **kwargs)


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


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


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
        self._pinned = PinnedBackend()

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
        task = parse_task(data, http_status=status)
        # A task that was just created is "submitted" even if the answer omits the status.
        return task if task.status else replace(task, status="submitted")

    def get_task(self, task_id: str) -> RemoteTask:
        """GET one task by Kling's task_id."""
        path = f"{TEXT2VIDEO_PATH}/{_path_segment(task_id, 'task_id')}"
        data, status = self._request("GET", path)
        return parse_task(data, http_status=status)

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
            found = pick_external(data, wanted)
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
        task = parse_task(data, http_status=status)
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

        The one exception is COMETAPI_BASE_URL's own origin (scheme, host and port), which
        the operator chose: the bundled simulator serves its clips over http on 127.0.0.1.
        The connection then goes to the address checked here (PinnedBackend).
        """
        host = url.host
        base = httpx.URL(self.base_url)
        if (url.scheme, host, _port(url)) == (base.scheme, base.host, _port(base)):
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
        self._pinned.pins[host] = addresses[0]

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
            transport = httpx.HTTPTransport(verify=_tls_context())
            # httpx takes no network backend; its pool does (the same pool, pinned).
            transport._pool = httpcore.ConnectionPool(
                ssl_context=_tls_context(),
                max_connections=100,  # httpx's own limits
                max_keepalive_connections=20,
                keepalive_expiry=5.0,
                network_backend=self._pinned,
            )
            self._download_client = httpx.Client(
                headers={"User-Agent": "kling-studio"},
                timeout=DEFAULT_TIMEOUT,
                transport=transport,
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
            detail = scrub_secrets(str(exc), self._secret)[:200]
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
                f"CometAPI's answer exceeds {MAX_API_BODY_BYTES} bytes; {BASE_URL_HINT}",
                http_status=status,
                request_id=request_id,
            )
        payload = json_object(body)
        if payload is not None:
            request_id = text_of(payload.get("request_id")) or request_id

        if 300 <= status < 400:
            location = scrub_secrets(response.headers.get("location", ""), self._secret)[:200]
            raise UnexpectedResponse(
                f"CometAPI answered a redirect (HTTP {status} to {location or '?'}); "
                f"{BASE_URL_HINT}",
                http_status=status,
                request_id=request_id,
            )
        ok = 200 <= status < 300
        if ok and payload is None:
            kind = "HTML" if body.lstrip()[:1] == b"<" else "a non-JSON body"
            raise UnexpectedResponse(
                f"CometAPI answered {kind} instead of JSON; {BASE_URL_HINT}",
                http_status=status,
                request_id=request_id,
            )
        if ok and payload is not None and is_success(payload):
            # Tolerate a flat task object without the envelope.
            return payload.get("data", payload), status
        raise classify(
            status,
            payload,
            request_id=request_id,
            retry_after=retry_after_header(response.headers),
            secret=self._secret,
        )

"""CometAPI's and Kling's errors as exceptions whose class says what the caller should do
(retry later, use another key, show the message to the member, give up): the contract's
error table, and the mapping of an HTTP answer onto it. No Django.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import httpx

_MESSAGE_LIMIT = 500  # str(error) is one line for logs and flash messages

BASE_URL_HINT = "check COMETAPI_BASE_URL (it should be the API host, e.g. https://api.cometapi.com)"
# CometAPI keys look like "sk-…". An error body may echo a key (ours or another one);
# scrub anything key-shaped as well as the exact key the client holds.
_KEY_PATTERN = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_BEARER_PATTERN = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
# new-api (the gateway software CometAPI runs) answers a missing task with a string code.
_NOT_FOUND_CODES = frozenset({"task_not_exist", "task_not_found", "not_found"})
_SUCCESS_CODES = frozenset({"0", "success", "succeed", "ok"})


# --------------------------------------------------------------------------- errors


def scrub_secrets(text: str, secret: str = "") -> str:
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
        message = scrub_secrets(str(message))
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


def text_of(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


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


def code_value(value: object) -> int | str | None:
    """Kling codes are ints (sometimes sent as numeric strings); the gateway's are words."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?\d{1,9}", text):
        return int(text)
    return text or None


def is_success_code(value: object) -> bool:
    return str(code_value(value)).lower() in _SUCCESS_CODES


def retry_after_header(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None  # the HTTP-date form is rare on APIs; callers fall back to their backoff
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def classify(
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
            code = code_value(error.get("code"))
            message = text_of(error.get("message"))
        else:
            code = code_value(payload.get("code"))
            message = text_of(payload.get("message")) or text_of(error)
    message = scrub_secrets(message, secret)  # a gateway may echo the Authorization it got
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
            f"CometAPI answered HTTP {status} without a JSON body; {BASE_URL_HINT}", **common
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
        return RequestRejected(f"{described} (HTTP 404; {BASE_URL_HINT})", **common)
    if status >= 400:
        return RequestRejected(described, **common)
    # A 2xx whose envelope carries an unknown non-zero code.
    if isinstance(code, int) and code >= 5000:
        return UpstreamUnavailable(described, **common)
    return RequestRejected(message or f"CometAPI answered code {code}", **common)

"""Kling's task object as it arrives (a read, a create's answer, a pushed callback), parsed
into a typed `RemoteTask`. No Django.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import MalformedTask, code_value, is_success_code, text_of

TERMINAL_STATUSES = frozenset({"succeed", "failed"})


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


def parse_task(data: object, *, http_status: int | None = None) -> RemoteTask:
    if not isinstance(data, Mapping):
        raise MalformedTask(
            f"expected a task object, got {type(data).__name__}",
            http_status=http_status,
            retryable=False,
        )
    task_id = text_of(data.get("task_id"))
    if not task_id:
        raise MalformedTask(
            "the task object has no task_id", http_status=http_status, retryable=False
        )
    info = data.get("task_info")
    external_id = text_of(info.get("external_task_id")) if isinstance(info, Mapping) else ""
    video = _first_video(data)
    duration = _number(video.get("duration"))
    return RemoteTask(
        task_id=task_id,
        # Lower-cased so a gateway that capitalises ("SUCCEED") still compares equal.
        status=text_of(data.get("task_status")).lower(),
        status_msg=text_of(data.get("task_status_msg")),
        external_task_id=external_id or text_of(data.get("external_task_id")),
        video_url=text_of(video.get("url")),
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
            if not is_success_code(payload.get("code", 0)):
                raise MalformedTask(
                    "the callback envelope carries an error code",
                    code=code_value(payload.get("code")),
                    retryable=False,
                )
            payload = inner
    return parse_task(payload)


def json_object(body: bytes) -> Mapping[str, Any] | None:
    try:
        value = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, Mapping) else None


def is_success(payload: Mapping[str, Any]) -> bool:
    if payload.get("error"):
        return False
    if "code" in payload:
        return is_success_code(payload["code"])
    return "data" in payload or "task_id" in payload


def _candidates(data: object) -> Iterator[Mapping[str, Any]]:
    if isinstance(data, Mapping) and "task_id" not in data:
        # A list may come wrapped ({"tasks": [...]}) in unverified gateways.
        for key in ("tasks", "list", "items", "records", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    items = data if isinstance(data, list) else [data]
    yield from (
        item for item in items if isinstance(item, Mapping) and text_of(item.get("task_id"))
    )


def pick_external(data: object, wanted: str) -> RemoteTask | None:
    """The task among `data` (one object or a list) whose external_task_id is `wanted`."""
    tasks = [parse_task(item) for item in _candidates(data)]
    if isinstance(data, Mapping) and "task_id" in data and len(tasks) == 1:
        # A single object answered for our query: accept it unless it names another id.
        task = tasks[0]
        return task if task.external_task_id in ("", wanted) else None
    # A list may be every task of the account (the filter ignored): require the id.
    matches = [task for task in tasks if task.external_task_id == wanted]
    return max(matches, key=lambda t: t.updated_at_ms or 0) if matches else None

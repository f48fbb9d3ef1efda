"""Unit tests for the Kling client (generations/kling/), with CometAPI mocked at URL level by respx.

Payloads come from docs/cometapi-kling.md (the contract); no Django and no database.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import pickle
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpcore
import httpx
import pytest
import respx

from generations.kling import (
    CometAPIClient,
    CometAPIError,
    ContentRejected,
    KeyRejected,
    MalformedTask,
    RateLimited,
    RemoteTask,
    RequestRejected,
    ResultExpired,
    TaskNotFound,
    UnexpectedResponse,
    UpstreamUnavailable,
    parse_callback,
)
from generations.kling import client as cometapi

BASE = "https://api.cometapi.com"
TASKS = f"{BASE}/kling/v1/videos/text2video"
KEY = "sk-TestKey0123456789abcdefSECRET"
CDN = "https://cdn.klingai.example/results/video.mp4?sig=abc"

SUBMITTED: dict[str, Any] = {
    "task_id": "878106242831892487",
    "task_status": "submitted",
    "task_info": {"external_task_id": "ext-1"},
    "created_at": 1722769557708,
    "updated_at": 1722769557708,
}
CREATE_OK: dict[str, Any] = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "req-create-1",
    "data": SUBMITTED,
}
SUCCEEDED: dict[str, Any] = {
    "task_id": "878106242831892487",
    "task_status": "succeed",
    "task_status_msg": "",
    "task_info": {"external_task_id": "ext-1"},
    "task_result": {
        "videos": [{"id": "v-1", "url": "https://cdn.example/video.mp4", "duration": "5.1"}]
    },
    "final_unit_deduction": "1",
    "created_at": 1722769557708,
    "updated_at": 1722769580012,
}
READ_OK: dict[str, Any] = {
    "code": 0,
    "message": "SUCCEED",
    "request_id": "req-read-1",
    "data": SUCCEEDED,
}


def kling_error(code: int, message: str = "refused") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": f"req-{code}"}


def gateway_error(code: str = "", message: str = "refused") -> dict[str, Any]:
    return {"error": {"message": message, "type": "comet_api_error", "param": "", "code": code}}


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


# DNS, as the download hops see it: literal addresses resolve to themselves, these names to
# what a test sets, any other name to a public address. The real look-up is one line
# (cometapi.resolve_host), and this suite runs offline.
DNS: dict[str, list[str]] = {}


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return DNS.get(host, ["93.184.215.14"])

    monkeypatch.setattr(cometapi, "resolve_host", resolve)
    DNS.clear()
    return DNS


@pytest.fixture
def client() -> Iterator[CometAPIClient]:
    with CometAPIClient(KEY) as comet:
        yield comet


def assert_key_hidden(*texts: str) -> None:
    for text in texts:
        assert KEY not in text
        assert KEY[3:] not in text


# --------------------------------------------------------------------------- create / read


def test_it_creates_a_task(api: respx.MockRouter, client: CometAPIClient) -> None:
    route = api.post(TASKS).respond(200, json=CREATE_OK)

    task = client.create_text2video({"prompt": "a red fox", "external_task_id": "ext-1"})

    assert task == RemoteTask(
        task_id="878106242831892487",
        status="submitted",
        status_msg="",
        external_task_id="ext-1",
        video_url="",
        video_duration=None,
        units=None,
        updated_at_ms=1722769557708,
    )
    assert not task.is_terminal
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"prompt": "a red fox", "external_task_id": "ext-1"}


def test_it_defaults_a_created_task_to_submitted(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    data = {key: value for key, value in SUBMITTED.items() if key != "task_status"}
    api.post(TASKS).respond(200, json={"code": 0, "message": "SUCCEED", "data": data})

    assert client.create_text2video({"prompt": "p"}).status == "submitted"


def test_it_reads_a_finished_task(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.get(f"{TASKS}/878106242831892487").respond(200, json=READ_OK)

    task = client.get_task("878106242831892487")

    assert task.status == "succeed"
    assert task.is_terminal
    assert task.video_url == "https://cdn.example/video.mp4"
    assert task.video_duration == 5.1
    assert task.units == Decimal("1")
    assert task.external_task_id == "ext-1"
    assert task.updated_at_ms == 1722769580012


def test_it_reads_a_running_task(api: respx.MockRouter, client: CometAPIClient) -> None:
    running = {
        "task_id": "t-2",
        "task_status": "processing",
        "task_status_msg": "",
        "task_info": {},
        "task_result": {},
        "created_at": 1,
        "updated_at": 2,
    }
    api.get(f"{TASKS}/t-2").respond(200, json={"code": 0, "message": "SUCCEED", "data": running})

    task = client.get_task("t-2")

    assert (task.status, task.video_url, task.video_duration, task.units) == (
        "processing",
        "",
        None,
        None,
    )
    assert task.external_task_id == ""
    assert not task.is_terminal


def test_it_reads_a_failed_task_with_its_reason(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    failed = {"task_id": "t-3", "task_status": "failed", "task_status_msg": "risk control"}
    api.get(f"{TASKS}/t-3").respond(200, json={"code": 0, "data": failed})

    task = client.get_task("t-3")

    assert (task.status, task.status_msg, task.is_terminal) == ("failed", "risk control", True)


def test_it_quotes_the_task_id_in_the_path(api: respx.MockRouter, client: CometAPIClient) -> None:
    route = api.get(url__startswith=TASKS).respond(200, json=READ_OK)

    client.get_task("a/b?c")

    assert route.calls.last.request.url.raw_path == b"/kling/v1/videos/text2video/a%2Fb%3Fc"
    for bad in ("", "  ", "..", "."):
        with pytest.raises(ValueError):
            client.get_task(bad)


def test_it_keeps_a_base_url_path_prefix(api: respx.MockRouter) -> None:
    route = api.get("http://127.0.0.1:8000/sim/kling/v1/videos/text2video/t-1").respond(
        200, json=READ_OK
    )

    with CometAPIClient(KEY, "http://127.0.0.1:8000/sim/") as comet:
        comet.get_task("t-1")

    assert route.called


def test_it_refuses_an_unusable_key_without_sending(api: respx.MockRouter) -> None:
    # No route is mocked: respx fails the test if anything is sent.
    for key in ("", "   ", "sk-has space", "sk-\u00fcn\u00efcode", "sk-a\nb"):
        with CometAPIClient(key) as comet, pytest.raises(KeyRejected) as caught:
            comet.get_task("t-1")
        assert caught.value.http_status is None
        assert "sk-" not in str(caught.value)
    assert not api.calls


def test_it_downloads_with_no_key(api: respx.MockRouter) -> None:
    api.get(CDN).respond(200, content=b"abc", headers={"Content-Type": "video/mp4"})

    with CometAPIClient("") as comet:
        assert comet.download(CDN, io.BytesIO(), max_bytes=10) == 3


def test_it_refuses_a_bad_base_url() -> None:
    with CometAPIClient(KEY, " https://api.cometapi.com/ ") as comet:
        assert comet.base_url == "https://api.cometapi.com"
    for url in ("api.cometapi.com", "ftp://api.cometapi.com", "", "https://"):
        with pytest.raises(ValueError, match="COMETAPI_BASE_URL"):
            CometAPIClient(KEY, url)


# --------------------------------------------------------------------------- errors

ERROR_CASES = [
    # (HTTP status, body, class, retryable)
    pytest.param(401, kling_error(1002), KeyRejected, False, id="401-1002"),
    pytest.param(429, kling_error(1100), KeyRejected, False, id="429-1100"),
    pytest.param(429, kling_error(1101), KeyRejected, False, id="429-1101"),
    pytest.param(429, kling_error(1102), KeyRejected, False, id="429-1102"),
    pytest.param(403, kling_error(1103), KeyRejected, False, id="403-1103"),
    pytest.param(429, kling_error(1304), KeyRejected, False, id="429-1304"),
    pytest.param(400, kling_error(1200), RequestRejected, False, id="400-1200"),
    pytest.param(400, kling_error(1201), RequestRejected, False, id="400-1201"),
    pytest.param(404, kling_error(1202), RequestRejected, False, id="404-1202"),
    pytest.param(400, kling_error(1300), ContentRejected, False, id="400-1300"),
    pytest.param(400, kling_error(1301), ContentRejected, False, id="400-1301"),
    pytest.param(404, kling_error(1203), TaskNotFound, False, id="404-1203"),
    pytest.param(429, kling_error(1302), RateLimited, True, id="429-1302"),
    pytest.param(429, kling_error(1303), RateLimited, True, id="429-1303"),
    pytest.param(500, kling_error(5000), UpstreamUnavailable, True, id="500-5000"),
    pytest.param(503, kling_error(5001), UpstreamUnavailable, True, id="503-5001"),
    pytest.param(504, kling_error(5002), UpstreamUnavailable, True, id="504-5002"),
    pytest.param(200, kling_error(1201), RequestRejected, False, id="200-code-1201"),
    pytest.param(200, kling_error(1303), RateLimited, True, id="200-code-1303"),
    pytest.param(400, {"code": "1301", "message": "x"}, ContentRejected, False, id="str-code"),
    pytest.param(400, gateway_error(), RequestRejected, False, id="gateway-400"),
    pytest.param(401, gateway_error(), KeyRejected, False, id="gateway-401"),
    pytest.param(403, gateway_error(), KeyRejected, False, id="gateway-403"),
    pytest.param(429, gateway_error(), RateLimited, True, id="gateway-429"),
    pytest.param(
        500, gateway_error("invalid_request"), RequestRejected, False, id="gateway-500-ir"
    ),
    pytest.param(500, gateway_error(), UpstreamUnavailable, True, id="gateway-500"),
    pytest.param(502, gateway_error(), UpstreamUnavailable, True, id="gateway-502"),
    pytest.param(503, gateway_error(), UpstreamUnavailable, True, id="gateway-503"),
    pytest.param(504, gateway_error(), UpstreamUnavailable, True, id="gateway-504"),
    pytest.param(524, gateway_error(), UpstreamUnavailable, True, id="gateway-524"),
    pytest.param(429, gateway_error("insufficient_quota"), KeyRejected, False, id="gateway-quota"),
    pytest.param(
        400,
        {"code": "task_not_exist", "message": "task_not_exist", "data": None},
        TaskNotFound,
        False,
        id="new-api-not-exist",
    ),
    pytest.param(418, {"code": 42, "message": "?"}, RequestRejected, False, id="other-4xx"),
    pytest.param(507, {"message": "?"}, UpstreamUnavailable, True, id="other-5xx"),
]


@pytest.mark.parametrize(("status", "body", "cls", "retryable"), ERROR_CASES)
def test_it_maps_errors(
    api: respx.MockRouter,
    client: CometAPIClient,
    status: int,
    body: dict[str, Any],
    cls: type[CometAPIError],
    retryable: bool,
) -> None:
    api.post(TASKS).respond(status, json=body)

    with pytest.raises(CometAPIError) as caught:
        client.create_text2video({"prompt": "p"})

    error = caught.value
    assert type(error) is cls
    assert error.retryable == retryable
    assert error.http_status == status
    assert "\n" not in str(error)


def test_it_keeps_kling_details(api: respx.MockRouter, client: CometAPIClient) -> None:
    message = "camera_control is only supported in std mode with 5s duration and kling-v1"
    api.post(TASKS).respond(400, json=kling_error(1201, message))

    with pytest.raises(RequestRejected) as caught:
        client.create_text2video({"prompt": "p"})

    error = caught.value
    assert (error.code, error.message, error.request_id) == (1201, message, "req-1201")
    assert str(error) == f"{message} [HTTP 400, code 1201, request req-1201]"


def test_it_keeps_retry_after_of_a_rate_limit(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    api.post(TASKS).mock(
        side_effect=[
            httpx.Response(429, json=kling_error(1303), headers={"Retry-After": "7"}),
            httpx.Response(429, json=kling_error(1302)),
        ]
    )

    with pytest.raises(RateLimited) as first:
        client.create_text2video({"prompt": "p"})
    with pytest.raises(RateLimited) as second:
        client.create_text2video({"prompt": "p"})

    assert (first.value.code, first.value.retry_after) == (1303, 7.0)
    assert (second.value.code, second.value.retry_after) == (1302, None)


def test_it_flags_html_as_a_wrong_base_url(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.post(TASKS).respond(200, html="<!doctype html><title>CometAPI</title>")

    with pytest.raises(UnexpectedResponse) as caught:
        client.create_text2video({"prompt": "p"})

    assert caught.value.retryable is False
    assert "COMETAPI_BASE_URL" in str(caught.value)


def test_it_does_not_follow_redirects(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.post(TASKS).respond(302, headers={"Location": "https://www.cometapi.com/"})
    elsewhere = api.route(host="www.cometapi.com").respond(200, json=CREATE_OK)

    with pytest.raises(UnexpectedResponse) as caught:
        client.create_text2video({"prompt": "p"})

    assert (caught.value.http_status, caught.value.retryable) == (302, False)
    assert "COMETAPI_BASE_URL" in str(caught.value)
    assert not elsewhere.called


def test_it_treats_an_html_error_page_by_status(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    api.post(TASKS).mock(
        side_effect=[
            httpx.Response(502, html="<html>Bad gateway</html>"),
            httpx.Response(403, html="<html>Blocked by WAF</html>"),
            httpx.Response(429, text="slow down"),
        ]
    )

    with pytest.raises(UpstreamUnavailable):
        client.create_text2video({"prompt": "p"})
    # A proxy's 403 page is no proof the key is bad: it must not disable the key.
    with pytest.raises(UnexpectedResponse) as blocked:
        client.create_text2video({"prompt": "p"})
    assert type(blocked.value) is UnexpectedResponse
    assert blocked.value.retryable is False
    with pytest.raises(RateLimited):
        client.create_text2video({"prompt": "p"})


def test_it_refuses_a_success_without_a_task_id(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    api.post(TASKS).respond(200, json={"code": 0, "message": "SUCCEED", "data": {}})

    with pytest.raises(UnexpectedResponse) as caught:
        client.create_text2video({"prompt": "p"})

    assert (caught.value.http_status, caught.value.retryable) == (200, False)


def test_it_truncates_a_long_message(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.post(TASKS).respond(400, json=kling_error(1201, "x" * 10_000))

    with pytest.raises(RequestRejected) as caught:
        client.create_text2video({"prompt": "p"})

    assert len(str(caught.value)) < 600


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.RemoteProtocolError("Server disconnected"),
        httpx.ReadError("reset"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_it_maps_network_errors(
    api: respx.MockRouter, client: CometAPIClient, exc: httpx.TransportError
) -> None:
    api.post(TASKS).mock(side_effect=exc)

    with pytest.raises(UpstreamUnavailable) as caught:
        client.create_text2video({"prompt": "p"})

    error = caught.value
    assert (error.http_status, error.retryable) == (None, True)
    assert str(error).startswith(f"could not reach CometAPI: {type(exc).__name__}")


def test_it_errors_pickle_round_trip() -> None:
    errors = [
        RateLimited("slow", http_status=429, code=1303, retry_after=7.0),
        UnexpectedResponse("html", http_status=200),
        MalformedTask("junk"),
        KeyRejected("bad key", http_status=401, code=1002, request_id="r"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert vars(copy) == vars(error)
        assert str(copy) == str(error)


# --------------------------------------------------------------------------- find_by_external_id


def test_it_finds_by_external_id_in_the_query_form(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    query = api.get(TASKS, params={"external_task_id": "ext-1"}).respond(200, json=READ_OK)
    path = api.get(f"{TASKS}/ext-1").respond(200, json=READ_OK)

    task = client.find_by_external_id("ext-1")

    assert task is not None
    assert task.task_id == "878106242831892487"
    assert query.called
    assert not path.called


def test_it_picks_the_match_from_a_list(api: respx.MockRouter, client: CometAPIClient) -> None:
    other = {**SUCCEEDED, "task_id": "t-other", "task_info": {"external_task_id": "ext-9"}}
    bare = {**SUCCEEDED, "task_id": "t-bare", "task_info": {}}
    api.get(TASKS, params={"external_task_id": "ext-1"}).respond(
        200, json={"code": 0, "message": "SUCCEED", "data": [other, bare, SUCCEEDED]}
    )

    task = client.find_by_external_id("ext-1")

    assert task is not None
    assert task.task_id == "878106242831892487"


def test_it_falls_back_to_the_path_form(api: respx.MockRouter, client: CometAPIClient) -> None:
    other = {**SUCCEEDED, "task_id": "t-other", "task_info": {"external_task_id": "ext-9"}}
    api.get(TASKS, params={"external_task_id": "ext-1"}).respond(
        200, json={"code": 0, "data": [other]}
    )
    path = api.get(f"{TASKS}/ext-1").respond(200, json=READ_OK)

    task = client.find_by_external_id("ext-1")

    assert task is not None
    assert task.task_id == "878106242831892487"
    assert path.called


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(404, kling_error(1203), id="404-1203"),
        pytest.param(404, kling_error(1202), id="404-1202"),
        pytest.param(400, kling_error(1201), id="400-1201"),
        pytest.param(200, "<html>spa</html>", id="html-200"),
    ],
)
def test_it_falls_back_when_the_query_form_is_refused(
    api: respx.MockRouter, client: CometAPIClient, status: int, body: Any
) -> None:
    query = api.get(TASKS, params={"external_task_id": "ext-1"})
    if isinstance(body, str):
        query.respond(status, html=body)
    else:
        query.respond(status, json=body)
    api.get(f"{TASKS}/ext-1").respond(200, json=READ_OK)

    task = client.find_by_external_id("ext-1")

    assert task is not None
    assert task.external_task_id == "ext-1"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(404, kling_error(1203), id="404-1203"),
        pytest.param(404, kling_error(1202), id="404-1202"),
        pytest.param(400, {"code": "task_not_exist", "message": "x", "data": None}, id="new-api"),
        pytest.param(200, {"code": 0, "message": "SUCCEED", "data": None}, id="null-data"),
    ],
)
def test_it_returns_none_when_both_forms_say_not_found(
    api: respx.MockRouter, client: CometAPIClient, status: int, body: dict[str, Any]
) -> None:
    api.get(TASKS, params={"external_task_id": "ext-1"}).respond(404, json=kling_error(1203))
    path = api.get(f"{TASKS}/ext-1").respond(status, json=body)

    assert client.find_by_external_id("ext-1") is None
    assert path.called


def test_it_rejects_a_path_form_task_with_another_external_id(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    api.get(TASKS, params={"external_task_id": "ext-1"}).respond(200, json={"code": 0, "data": []})
    other = {**SUCCEEDED, "task_info": {"external_task_id": "ext-9"}}
    api.get(f"{TASKS}/ext-1").respond(200, json={"code": 0, "data": other})

    assert client.find_by_external_id("ext-1") is None


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        pytest.param(429, kling_error(1302), RateLimited, id="rate"),
        pytest.param(401, kling_error(1004), KeyRejected, id="key"),
        pytest.param(503, kling_error(5001), UpstreamUnavailable, id="down"),
    ],
)
def test_it_propagates_errors_that_do_not_mean_absent(
    api: respx.MockRouter,
    client: CometAPIClient,
    status: int,
    body: dict[str, Any],
    cls: type[CometAPIError],
) -> None:
    api.get(TASKS, params={"external_task_id": "ext-1"}).respond(status, json=body)
    path = api.get(f"{TASKS}/ext-1").respond(200, json=READ_OK)

    with pytest.raises(cls):
        client.find_by_external_id("ext-1")
    assert not path.called


def test_it_propagates_a_path_form_outage(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.get(TASKS, params={"external_task_id": "ext-1"}).respond(404, json=kling_error(1203))
    api.get(f"{TASKS}/ext-1").mock(side_effect=httpx.ConnectTimeout("timed out"))

    with pytest.raises(UpstreamUnavailable):
        client.find_by_external_id("ext-1")


# --------------------------------------------------------------------------- callbacks


def test_it_parses_a_flat_callback() -> None:
    task = parse_callback(json.dumps(SUCCEEDED).encode())

    assert (task.task_id, task.status, task.video_url) == (
        "878106242831892487",
        "succeed",
        "https://cdn.example/video.mp4",
    )


def test_it_parses_an_enveloped_callback() -> None:
    assert parse_callback(json.dumps(READ_OK)).status == "succeed"
    assert parse_callback(READ_OK).updated_at_ms == 1722769580012
    assert parse_callback(READ_OK) == parse_callback(SUCCEEDED)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"task"',
        b'{"foo": 1}',
        b'{"code": 0, "data": {"task_status": "succeed"}}',
        b'{"code": 1201, "message": "x", "data": {"task_id": "t"}}',
        b"[" * 100_000,
    ],
    ids=[
        "empty",
        "text",
        "binary",
        "list",
        "string",
        "no-task",
        "no-task-id",
        "error-code",
        "deep",
    ],
)
def test_it_rejects_junk_callbacks(body: bytes) -> None:
    with pytest.raises(MalformedTask) as caught:
        parse_callback(body)

    assert isinstance(caught.value, UnexpectedResponse)
    assert isinstance(caught.value, ValueError)
    assert caught.value.retryable is False


def test_it_tolerates_odd_field_types() -> None:
    task = parse_callback(
        {
            "task_id": 42,
            "task_status": "SUCCEED",
            "task_result": {"videos": [{"url": "u", "duration": "nan"}]},
            "final_unit_deduction": "abc",
            "created_at": "1722769557708",
            "updated_at": True,
        }
    )

    assert (task.task_id, task.status, task.video_duration, task.units) == (
        "42",
        "succeed",
        None,
        None,
    )
    assert task.updated_at_ms is None


# --------------------------------------------------------------------------- download


def test_it_downloads_without_the_api_key(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.get(CDN).respond(302, headers={"Location": "https://edge.example/v.mp4"})
    edge = api.get("https://edge.example/v.mp4").respond(
        200, content=b"\x00" * 1000, headers={"Content-Type": "video/mp4; codecs=avc1"}
    )
    dest = io.BytesIO()

    written = client.download(CDN, dest, max_bytes=1000)

    assert written == 1000
    assert dest.getvalue() == b"\x00" * 1000
    for call in api.calls:
        assert "authorization" not in call.request.headers
    assert edge.called


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "binary/octet-stream", "image/png", ""]
)
def test_it_refuses_anything_but_a_video(
    api: respx.MockRouter, client: CometAPIClient, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    api.get(CDN).respond(200, content=b"abc", headers=headers)

    with pytest.raises(UnexpectedResponse, match="not a video") as caught:
        client.download(CDN, io.BytesIO(), max_bytes=10)

    assert caught.value.retryable is False


def test_it_refuses_a_download_too_large_by_header(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    api.get(CDN).respond(200, content=b"x" * 2000, headers={"Content-Type": "video/mp4"})
    dest = io.BytesIO()

    with pytest.raises(UnexpectedResponse, match="too large") as caught:
        client.download(CDN, dest, max_bytes=1000)

    assert caught.value.retryable is False
    assert dest.getvalue() == b""


def test_it_refuses_a_download_too_large_while_streaming(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    chunks = [b"x" * 400] * 5  # no Content-Length: only counting the stream can tell
    api.get(CDN).respond(200, content=iter(chunks), headers={"Content-Type": "video/mp4"})
    dest = io.BytesIO()

    with pytest.raises(UnexpectedResponse, match="too large") as caught:
        client.download(CDN, dest, max_bytes=1000)

    assert caught.value.retryable is False
    assert dest.getvalue() == b"x" * 800  # the chunks that fit, never more than max_bytes


def test_it_refuses_a_download_of_the_wrong_type(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    api.get(CDN).respond(200, html="<html>link expired</html>")

    with pytest.raises(UnexpectedResponse, match="text/html") as caught:
        client.download(CDN, io.BytesIO(), max_bytes=1000)

    assert caught.value.retryable is False


@pytest.mark.parametrize("status", [403, 404, 410])
def test_it_reports_an_expired_result(
    api: respx.MockRouter, client: CometAPIClient, status: int
) -> None:
    api.get(CDN).respond(status, text="gone")

    with pytest.raises(ResultExpired) as caught:
        client.download(CDN, io.BytesIO(), max_bytes=1000)

    assert caught.value.retryable is False
    assert "sig=abc" not in str(caught.value)


def test_it_retries_a_download_outage(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.get(CDN).mock(
        side_effect=[httpx.Response(503, text="busy"), httpx.ReadTimeout("timed out")]
    )

    with pytest.raises(UpstreamUnavailable) as first:
        client.download(CDN, io.BytesIO(), max_bytes=1000)
    with pytest.raises(UpstreamUnavailable) as second:
        client.download(CDN, io.BytesIO(), max_bytes=1000)

    assert (first.value.http_status, first.value.retryable) == (503, True)
    assert (second.value.http_status, second.value.retryable) == (None, True)


# Every hop of a download is checked (issue 8, finding 6): redirects are followed by hand.

INTERNAL = [
    "127.0.0.1",
    "10.0.0.7",
    "192.168.1.20",
    "172.16.0.1",
    "169.254.169.254",  # the cloud metadata service
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",
    "240.0.0.1",  # reserved
    "224.0.0.1",  # multicast
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
]


@pytest.mark.parametrize("address", INTERNAL)
def test_it_refuses_a_result_host_that_resolves_inside(
    api: respx.MockRouter, client: CometAPIClient, dns: dict[str, list[str]], address: str
) -> None:
    dns["cdn.klingai.example"] = ["93.184.215.14", address]  # one bad address is enough
    route = api.get(CDN).respond(200, content=b"abc", headers={"Content-Type": "video/mp4"})

    with pytest.raises(UnexpectedResponse, match="not a public address") as caught:
        client.download(CDN, io.BytesIO(), max_bytes=10)

    assert caught.value.retryable is False
    assert not route.called  # refused before connecting


@pytest.mark.parametrize(
    "location",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/v.mp4",
        "https://intranet.example/v.mp4",  # resolves inside (see below)
        "http://edge.example/v.mp4",  # http, to a host that isn't COMETAPI_BASE_URL's
        "file:///etc/passwd",
    ],
)
def test_it_refuses_a_redirect_inside_or_off_https(
    api: respx.MockRouter, client: CometAPIClient, dns: dict[str, list[str]], location: str
) -> None:
    dns["intranet.example"] = ["10.1.2.3"]
    api.get(CDN).respond(302, headers={"Location": location})
    inside = api.route(url__regex=r"^(?!https://cdn\.klingai\.example/).*").respond(
        200, content=b"abc", headers={"Content-Type": "video/mp4"}
    )

    with pytest.raises(UnexpectedResponse) as caught:
        client.download(CDN, io.BytesIO(), max_bytes=10)

    assert caught.value.retryable is False
    assert not inside.called


def test_it_refuses_http_to_any_host_but_cometapis_own(
    api: respx.MockRouter, client: CometAPIClient
) -> None:
    with pytest.raises(UnexpectedResponse, match="not https"):
        client.download("http://cdn.klingai.example/v.mp4", io.BytesIO(), max_bytes=10)
    assert not api.calls


def test_it_follows_redirects_to_a_limit(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.get(url__regex=r"https://edge\.example/\d+").mock(
        side_effect=lambda request: httpx.Response(
            302, headers={"Location": f"/{int(request.url.path[1:]) + 1}"}
        )
    )

    with pytest.raises(UnexpectedResponse, match="redirected more than") as caught:
        client.download("https://edge.example/0", io.BytesIO(), max_bytes=10)

    assert caught.value.retryable is False
    assert len(api.calls) == cometapi.MAX_DOWNLOAD_REDIRECTS + 1


def test_the_size_cap_holds_after_a_redirect(api: respx.MockRouter, client: CometAPIClient) -> None:
    api.get(CDN).respond(302, headers={"Location": "https://edge.example/v.mp4"})
    api.get("https://edge.example/v.mp4").respond(
        200, content=b"x" * 2000, headers={"Content-Type": "video/mp4"}
    )

    with pytest.raises(UnexpectedResponse, match="too large"):
        client.download(CDN, io.BytesIO(), max_bytes=1000)


def test_an_unresolvable_result_host_is_retried_later(
    client: CometAPIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(cometapi, "resolve_host", fail)
    with pytest.raises(UpstreamUnavailable) as caught:
        client.download(CDN, io.BytesIO(), max_bytes=10)
    assert caught.value.retryable is True


def test_cometapis_own_host_may_serve_over_http_on_loopback(api: respx.MockRouter) -> None:
    """The bundled simulator (`make demo`, the tests) serves clips from its own address."""
    sim = "http://127.0.0.1:8765"
    api.get(f"{sim}/media/1.mp4").respond(
        200, content=b"abc", headers={"Content-Type": "video/mp4"}
    )

    with CometAPIClient(KEY, sim) as comet:
        assert comet.download(f"{sim}/media/1.mp4", io.BytesIO(), max_bytes=10) == 3
        # ...but not another name for the same machine: only that exact host.
        with pytest.raises(UnexpectedResponse):
            comet.download("http://localhost:8765/media/1.mp4", io.BytesIO(), max_bytes=10)


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8765", "http://127.0.0.1:6379/media/1.mp4"),  # another port
        ("https://api.cometapi.com", "http://api.cometapi.com:6379/media/1.mp4"),
        ("https://api.cometapi.com", "http://api.cometapi.com/media/1.mp4"),  # another scheme
    ],
)
def test_only_cometapis_own_origin_is_exempt(api: respx.MockRouter, base: str, url: str) -> None:
    """Issue 19, finding 4: the exemption for the base URL's host ignored scheme and port,
    so `http://api.cometapi.com:6379/` would have been fetched."""
    route = api.get(url).respond(200, content=b"abc", headers={"Content-Type": "video/mp4"})
    with CometAPIClient(KEY, base) as comet, pytest.raises(UnexpectedResponse):
        comet.download(url, io.BytesIO(), max_bytes=10)
    assert not route.called


def test_a_download_connects_to_the_address_it_checked(
    dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19, finding 4 (DNS rebinding): the host is resolved once per hop, checked, and
    the connection goes to that address, whatever a second look-up would say."""
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    monkeypatch.setattr(cometapi, "resolve_host", lambda host, port: next(answers))
    dialled = []

    def create_connection(address, *args, **kwargs):
        dialled.append(address)
        raise OSError("no network in tests")

    monkeypatch.setattr(httpcore._backends.sync.socket, "create_connection", create_connection)
    with CometAPIClient(KEY) as comet, pytest.raises(UpstreamUnavailable):
        comet.download(CDN, io.BytesIO(), max_bytes=10)
    assert dialled == [("93.184.215.14", 443)]


def test_it_refuses_a_non_http_result_url(client: CometAPIClient) -> None:
    for url in ("file:///etc/passwd", "not a url", ""):
        with pytest.raises(UnexpectedResponse):
            client.download(url, io.BytesIO(), max_bytes=1000)


# --------------------------------------------------------------------------- the key stays secret


def test_it_never_shows_the_key(
    api: respx.MockRouter, client: CometAPIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = gateway_error("", f"invalid token {KEY} (Bearer {KEY})")
    api.post(TASKS).mock(
        side_effect=[
            httpx.Response(401, json=echo),
            httpx.ConnectError(f"proxy refused Authorization: Bearer {KEY}"),
            httpx.Response(302, headers={"Location": f"https://x.example/?key={KEY}"}),
        ]
    )

    errors: list[CometAPIError] = []
    for _ in range(3):
        with pytest.raises(CometAPIError) as caught:
            client.create_text2video({"prompt": "p"})
        errors.append(caught.value)

    assert isinstance(errors[0], KeyRejected)
    for error in errors:
        assert_key_hidden(str(error), repr(error), error.message, str(error.args))
    assert_key_hidden(repr(client), str(client), caplog.text)


def test_it_scrubs_a_key_of_any_shape(api: respx.MockRouter) -> None:
    key = "ck_live_5f3a9b2c7d1e"
    api.post(TASKS).respond(401, json={"code": 1002, "message": f"token {key} is invalid"})

    with CometAPIClient(key) as comet, pytest.raises(KeyRejected) as caught:
        comet.create_text2video({"prompt": "p"})

    for text in (str(caught.value), repr(caught.value), caught.value.message):
        assert key not in text


def test_it_cannot_be_pickled(client: CometAPIClient) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(client)

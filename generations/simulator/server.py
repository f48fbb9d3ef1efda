"""A local stand-in for CometAPI's Kling text-to-video API, written from the contract.

It is a real HTTP server (``http.server``) that speaks the contract in
``docs/cometapi-kling.md``: the create / read / list endpoints, Kling's error envelopes,
status progression over time, callbacks, downloadable mp4 results, and the faults a real
upstream shows (5xx, lost create answers, network outages, expired result URLs).

It deliberately shares no code with ``generations/kling/``: both are written from the
contract, so each one checks the other. It imports nothing from Django either, so tests and
scripts can run it without settings; ``manage.py cometapi_simulator`` is a thin wrapper.

Prompt markers steer a task's fate: ``[policy]`` (create refused, 1301), ``[fail]`` (task
fails moderation), ``[slow]`` (4x longer), ``[never]`` (stays processing), ``[expire]``
(succeeds, but the result URL answers 404). Magic API keys: a key containing ``expired``
(401/1004), ``arrears`` (429/1101) or ``noaccess`` (403/1103). ``download_delay`` makes the
CDN slow: a clip's bytes trickle out over that many seconds (on the simulator's clock).

Introspection for tests in other processes lives under ``/_sim/``:
``GET /_sim/state``, ``POST /_sim/faults`` (body: ``set_faults`` keywords) and
``POST /_sim/expire`` (body: ``{"task_id": ...}``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import heapq
import json
import queue
import random
import socket
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Simulator", "key_id"]

API_PATH = "/kling/v1/videos/text2video"

MODELS = (
    "kling-v1",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
)
MODES = ("std", "pro")
DURATIONS = ("5", "10")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
CAMERA_TYPES = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
CAMERA_FIELDS = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")
# The create body's fields, as the contract's table documents them.
TEXT2VIDEO_FIELDS = (
    "prompt",
    "negative_prompt",
    "model_name",
    "mode",
    "duration",
    "aspect_ratio",
    "cfg_scale",
    "camera_control",
    "callback_url",
    "external_task_id",
)
CAMERA_REFUSAL = "camera_control is only supported in std mode with 5s duration and kling-v1"
PROMPT_MAX = 500  # CometAPI's documented limit (Kling itself allows 2500)
NEGATIVE_PROMPT_MAX = 200
SLOW_FACTOR = 4.0  # a `[slow]` prompt takes this many times longer at every step
# Realistic timing (the contract's figures): a 5 s clip takes 1-2 minutes, a 10 s one about
# twice that, and a few run past ten minutes.
REALISTIC_TAIL = 0.05  # the share of tasks in the long tail


def realistic_timing(rng: random.Random, duration: str) -> tuple[float, float]:
    """Seconds until "processing" and until the end, for one task of `duration`."""
    processing = rng.uniform(5.0, 20.0)
    finish = rng.uniform(60.0, 120.0) * (2 if duration == "10" else 1)
    if rng.random() < REALISTIC_TAIL:
        finish += rng.uniform(600.0, 900.0)
    return processing, max(finish, processing + 1.0)


MAX_BODY = 1024 * 1024

# Kling's unit table: (model, mode) -> units for a 5 s and a 10 s clip.
UNIT_TABLE: dict[tuple[str, str], tuple[float, float]] = {
    ("kling-v1", "std"): (1, 2),
    ("kling-v1", "pro"): (3.5, 7),
    ("kling-v1-6", "std"): (2, 4),
    ("kling-v1-6", "pro"): (3.5, 7),
    ("kling-v2-5-turbo", "std"): (1.5, 3),
    ("kling-v2-5-turbo", "pro"): (2.5, 5),
}
MASTER_MODELS = ("kling-v2-master", "kling-v2-1-master")  # no std/pro split, 10/20 units
DEFAULT_UNITS = (1.0, 2.0)

FAIL_MESSAGE = "The content you submitted did not pass moderation (simulated)"

# Frame size of the sample clip per aspect ratio (small: it is served from memory).
CLIP_SIZES = {"16:9": "320x180", "9:16": "180x320", "1:1": "240x240"}

# What a flaky upstream answers: Kling envelopes, or CometAPI's gateway envelope (None code).
FAULTS: tuple[tuple[int, int | None, str], ...] = (
    (500, 5000, "server error (simulated)"),
    (503, 5001, "service temporarily unavailable (simulated)"),
    (504, 5002, "server timeout (simulated)"),
    (502, None, "upstream error (simulated)"),
)

_UNSET: Any = object()  # distinguishes "leave as is" from None ("no limit") in set_faults


def key_id(key: str) -> str:
    """A short, stable fingerprint of an API key.

    Introspection reports which key created a task by this fingerprint, so a raw key never
    shows up in ``/_sim/state`` even if someone points a real key at the simulator.
    """
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _format_units(units: float) -> str:
    return f"{units:g}"  # "1", "3.5", "20": Kling sends a plain decimal string


def unit_deduction(model: str, mode: str, duration: str) -> str:
    if model in MASTER_MODELS:
        five, ten = 10.0, 20.0
    else:
        five, ten = UNIT_TABLE.get((model, mode), DEFAULT_UNITS)
    return _format_units(ten if duration == "10" else five)


class ApiError(Exception):
    """An answer in Kling's error envelope."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Seconds over which the body trickles out (a slow CDN); 0 writes it at once.
    pace: float = 0.0
    # Called once the whole body has been written (not when the client hung up first).
    on_sent: Callable[[], None] | None = None


@dataclass
class _Task:
    task_id: str
    external_task_id: str | None
    key: str
    request: dict[str, Any]
    model_name: str
    mode: str
    duration: str
    aspect_ratio: str
    callback_url: str | None
    outcome: str  # "succeed", "failed" or "never"
    created_at: int
    status: str = "submitted"
    status_msg: str = ""
    updated_at: int = 0
    video_id: str = ""
    expired: bool = False
    # Epoch ms at which each download of the clip began, and how many were sent in full.
    downloads: list[int] = field(default_factory=list)
    downloads_completed: int = 0

    @property
    def active(self) -> bool:
        """Holds a concurrency slot: from submitted until it ends."""
        return self.status in ("submitted", "processing")

    def to_api(self, base_url: str) -> dict[str, Any]:
        """The flat task object, as read answers carry it in ``data`` and callbacks send it."""
        task: dict[str, Any] = {
            "task_id": self.task_id,
            "task_status": self.status,
            "task_status_msg": self.status_msg,
            "task_info": (
                {"external_task_id": self.external_task_id} if self.external_task_id else {}
            ),
            "task_result": {},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.status == "succeed":
            video = {
                "id": self.video_id,
                "url": f"{base_url}/media/{self.task_id}.mp4",
                "duration": f"{self.duration}.1",  # real clips run a little over
            }
            task["task_result"] = {"videos": [video]}
            # Failed tasks are not charged; running ones have no final figure yet, and the
            # contract says the field may be absent, so it is only sent on success.
            task["final_unit_deduction"] = unit_deduction(self.model_name, self.mode, self.duration)
        return task


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can close its live keep-alive connections on stop.

    Handler threads are daemons (Ctrl-C never hangs on them), but a stopped simulator must
    not leave threads blocked on idle keep-alive sockets behind: tests run with warnings as
    errors and start many simulators. So each connection is tracked and shut down on stop.
    """

    daemon_threads = True
    block_on_close = False  # we join our own threads, with a timeout

    def __init__(self, address: tuple[str, int], simulator: Simulator, family: int) -> None:
        self.address_family = family
        self.simulator = simulator
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can stall.
        TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            if self._closing:
                self.shutdown_request(request)
                return
            self._conns[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal here (fault tests do it); no traceback.
        self.simulator._log(f"connection error from {client_address}")

    def close_connections(self, timeout: float) -> None:
        with self._conns_lock:
            self._closing = True
            conns = list(self._conns.items())
        for sock, _thread in conns:
            # Wakes a handler blocked reading; OSError: its own thread closed it already.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _sock, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    """Thin I/O shell: reads the request, lets the Simulator answer, writes it."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real service; needs Content-Length
    server_version = "kling-simulator/1"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection gives its thread back
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK and every keep-alive request costs ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            # The body cannot be skipped reliably, so answer and close the connection.
            self.close_connection = True
            error = _error_body(1200, "invalid request: bad or too large Content-Length")
            self._write(_json_response(400, error), method)
            return
        body = self.rfile.read(length) if length > 0 else b""
        try:
            response = self.server.simulator._handle(method, self.path, self.headers, body)
        except Exception:
            # A bug in the simulator must be loud, not pass for a simulated fault.
            traceback.print_exc()
            error = _error_body(1200, "simulator internal error (a bug in the simulator)")
            response = _json_response(500, error)
        if response is None:
            # Simulated outage: the request is swallowed and the connection closed unanswered.
            self.close_connection = True
            return
        self._write(response, method)

    def _write(self, response: _Response, method: str) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if method == "HEAD":
            return
        if response.pace <= 0 or not response.body:
            self.wfile.write(response.body)
        else:
            # A slow CDN: the headers go at once, the bytes in slices spread over `pace`.
            slices = max(1, min(50, int(response.pace / 0.05)))
            step = -(-len(response.body) // slices)
            for start in range(0, len(response.body), step):
                time.sleep(response.pace / slices)
                self.wfile.write(response.body[start : start + step])
                self.wfile.flush()
        if response.on_sent is not None:
            response.on_sent()

    def log_message(self, format: str, *args: Any) -> None:
        self.server.simulator._log(f"{self.address_string()} {format % args}")


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": str(uuid.uuid4())}


def _json_response(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload).encode())


def _ok(data: Any) -> _Response:
    return _json_response(
        200, {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}
    )


def _api_error(error: ApiError) -> _Response:
    return _json_response(error.status, _error_body(error.code, error.message))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate_camera(camera: Any) -> None:
    invalid = ApiError(400, 1201, "camera_control is invalid")
    if not isinstance(camera, dict):
        raise invalid
    if unknown := sorted(set(camera) - {"type", "config"}):
        raise ApiError(400, 1201, f"camera_control has undocumented fields: {', '.join(unknown)}")
    camera_type = camera.get("type")
    if camera_type not in CAMERA_TYPES:
        raise ApiError(400, 1201, f"camera_control.type must be one of {', '.join(CAMERA_TYPES)}")
    config = camera.get("config")
    if camera_type != "simple":
        if config is not None:
            raise ApiError(400, 1201, f"camera_control type {camera_type} takes no config")
        return
    # Kling's documents always show all six fields; a config naming fewer is not a shape
    # they describe, so it is refused rather than read as zeros.
    if not isinstance(config, dict) or set(config) != set(CAMERA_FIELDS):
        raise ApiError(
            400, 1201, f"camera_control.config needs all six fields: {', '.join(CAMERA_FIELDS)}"
        )
    values = [config.get(name, 0) for name in CAMERA_FIELDS]
    if not all(_is_number(v) and -10 <= v <= 10 for v in values):
        raise ApiError(400, 1201, "camera_control.config values must be numbers in [-10, 10]")
    if sum(1 for v in values if v != 0) != 1:
        raise ApiError(400, 1201, "camera_control.config needs exactly one non-zero field")


def validate_create(body: Any) -> dict[str, Any]:
    """Check a create body like the real service does; return it with defaults filled in.
    A field the contract doesn't document (the legacy `model`, a misspelling) is refused:
    a stand-in that took it silently would let a client's mistake pass the tests and fail
    against the real service."""
    if not isinstance(body, dict):
        raise ApiError(400, 1200, "invalid request: the body must be a JSON object")
    if unknown := sorted(set(body) - set(TEXT2VIDEO_FIELDS)):
        raise ApiError(400, 1201, f"undocumented fields: {', '.join(unknown)}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, 1201, "prompt is required")
    if len(prompt) > PROMPT_MAX:
        raise ApiError(400, 1201, f"prompt must be at most {PROMPT_MAX} characters")
    negative = body.get("negative_prompt")
    if negative is not None and (
        not isinstance(negative, str) or len(negative) > NEGATIVE_PROMPT_MAX
    ):
        raise ApiError(
            400, 1201, f"negative_prompt must be a string of at most {NEGATIVE_PROMPT_MAX} chars"
        )
    model = body.get("model_name", "kling-v1")
    if model not in MODELS:
        raise ApiError(
            400, 1201, f"model_name {model!r} is not supported; use one of {', '.join(MODELS)}"
        )
    mode = body.get("mode", "std")
    if mode not in MODES:
        raise ApiError(400, 1201, "mode must be std or pro")
    duration = body.get("duration", "5")
    if not isinstance(duration, str):
        raise ApiError(400, 1201, 'duration must be a string: "5" or "10"')
    if duration not in DURATIONS:
        raise ApiError(400, 1201, 'duration must be "5" or "10"')
    aspect = body.get("aspect_ratio", "16:9")
    if aspect not in ASPECT_RATIOS:
        raise ApiError(400, 1201, f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
    cfg = body.get("cfg_scale")
    if cfg is not None and not (_is_number(cfg) and 0 <= cfg <= 1):
        raise ApiError(400, 1201, "cfg_scale must be a number between 0 and 1")
    camera = body.get("camera_control")
    if camera is not None:
        if (model, mode, duration) != ("kling-v1", "std", "5"):
            raise ApiError(400, 1201, CAMERA_REFUSAL)
        _validate_camera(camera)
    callback = body.get("callback_url")
    if callback is not None and not (
        isinstance(callback, str) and callback.startswith(("http://", "https://"))
    ):
        raise ApiError(400, 1201, "callback_url must be an http(s) URL")
    external = body.get("external_task_id")
    if external is not None and not isinstance(external, str):
        raise ApiError(400, 1201, "external_task_id must be a string")
    return {
        "prompt": prompt,
        "model_name": model,
        "mode": mode,
        "duration": duration,
        "aspect_ratio": aspect,
        "callback_url": callback or None,
        "external_task_id": external or None,
    }


class Simulator:
    """The fake CometAPI Kling service. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        keys: list[str] | None = None,
        fault_5xx: float = 0.0,
        lost_create: float = 0.0,
        concurrency: int | None = None,
        seed: int | None = None,
        processing_after: float = 3.0,
        finish_after: float = 12.0,
        finish_spread: float = 0.0,
        download_delay: float = 0.0,
        realistic: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.host = host
        self.port = port
        self.speed = speed
        self.keys = frozenset(keys) if keys else None
        self.processing_after = processing_after
        self.finish_after = finish_after
        # Real clips don't all take the same time: each task ends up to this many seconds
        # after finish_after (uniformly), so completions spread out as Kling's do.
        self.finish_spread = finish_spread
        self.realistic = realistic  # realistic_timing() instead of the three figures above
        self.log = log  # one line per request when set (the command's --verbose)
        self.base_url = ""

        # One lock guards all mutable state; the scheduler waits on a condition over it.
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._fault_5xx = 0.0
        self._lost_create = 0.0
        self._unreachable = False
        self._concurrency: int | None = None
        self._download_delay = 0.0
        self.set_faults(
            fault_5xx=fault_5xx,
            lost_create=lost_create,
            concurrency=concurrency,
            download_delay=download_delay,
        )
        # Separate generators: fault draws stay reproducible whatever ids are generated.
        self._fault_rng = random.Random(seed)
        self._id_rng = random.Random(None if seed is None else seed + 1)
        self._timing_rng = random.Random(None if seed is None else seed + 2)

        # Seconds the clock has been moved forward (advance()): added to the real clock, so
        # the timeline and every timestamp move together.
        self._skipped = 0.0
        self._tasks: dict[str, _Task] = {}
        self._by_external: dict[str, str] = {}
        self._requests = {"create": 0, "read": 0, "list": 0, "download": 0}
        # Per key_id(): creates refused with 1303, and the most tasks ever running at once.
        self._concurrency_refusals: dict[str, int] = {}
        self._peak_active: dict[str, int] = {}
        self._events: list[tuple[float, int, str, str]] = []  # (due, seq, task_id, status)
        self._event_seq = 0
        self._callbacks_sent: list[tuple[str, dict[str, Any]]] = []
        self._callback_queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()

        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._stopped = threading.Event()
        self.video_codec = ""  # the encoder of the sample clips, e.g. "libx264"

    # -- lifecycle

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        clip_bytes("5", "16:9")  # fail fast if ffmpeg cannot make a clip
        self.video_codec = _clip_codec
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = _Server((self.host, self.port), self, family)
        port = self._server.server_address[1]
        # A wildcard bind is not an address a client can use; advertise loopback instead.
        shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        shown = f"[{shown}]" if ":" in shown else shown
        self.base_url = f"http://{shown}:{port}"
        targets: list[tuple[str, Callable[[], None]]] = [
            # stop() waits up to one poll interval for the loop to notice; tests stop often,
            # and 50 idle wake-ups a second cost nothing measurable.
            ("kling-sim-http", functools.partial(self._server.serve_forever, 0.02)),
            ("kling-sim-scheduler", self._run_scheduler),
            # Two senders: one slow callback target must not hold up every other push.
            ("kling-sim-callbacks-1", self._run_callbacks),
            ("kling-sim-callbacks-2", self._run_callbacks),
        ]
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopping or self._server is None:
                return
            self._stopping = True
            self._wakeup.notify_all()
        self._server.shutdown()  # ends serve_forever's loop
        self._server.close_connections(timeout=2.0)
        self._server.server_close()
        # Pending callbacks are dropped: nobody is waiting for them any more.
        while True:
            try:
                self._callback_queue.get_nowait()
            except queue.Empty:
                break
        for _ in range(2):
            self._callback_queue.put(None)
        for thread in self._threads:
            thread.join(timeout=6.0)  # a callback in flight may take its 5 s timeout
        self._stopped.set()

    def serve_forever(self) -> None:
        """Block until Ctrl-C (KeyboardInterrupt) or stop(); used by the management command."""
        if self._server is None:
            self.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- introspection

    def create_count(self, external_task_id: str | None = None) -> int:
        """Tasks stored (paid for): in total, or for one external_task_id."""
        with self._lock:
            if external_task_id is None:
                return len(self._tasks)
            return sum(1 for t in self._tasks.values() if t.external_task_id == external_task_id)

    def advance(self, seconds: float) -> None:
        """Move this simulator's clock `seconds` forward (its own seconds, as
        processing_after and finish_after count them, so divided by `speed`) and make every
        transition due by then before returning: a test moves time instead of sleeping."""
        with self._wakeup:
            self._skipped += seconds / self.speed
            self._fire_due()
            self._wakeup.notify()

    def _mono(self) -> float:
        return time.monotonic() + self._skipped

    def _wall_ms(self) -> int:
        return int((time.time() + self._skipped) * 1000)

    def tasks(self) -> list[dict[str, Any]]:
        """Flat task objects, oldest first, each with a ``_sim`` key of simulator-only facts."""
        with self._lock:
            return [self._snapshot(task) for task in self._tasks.values()]

    def callbacks_sent(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._callbacks_sent)

    def set_faults(
        self,
        *,
        fault_5xx: float | None = None,
        lost_create: float | None = None,
        unreachable: bool | None = None,
        concurrency: int | None = _UNSET,
        download_delay: float | None = None,
    ) -> None:
        """Change fault injection live. ``concurrency=None`` removes the limit;
        ``download_delay`` is the seconds (simulator clock) a clip's download takes."""
        for name, value in (("fault_5xx", fault_5xx), ("lost_create", lost_create)):
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must be a probability between 0 and 1")
        if download_delay is not None and not (_is_number(download_delay) and download_delay >= 0):
            raise ValueError("download_delay must be a number of seconds, 0 or more")
        bad_limit = not isinstance(concurrency, int) or isinstance(concurrency, bool)
        if concurrency not in (_UNSET, None) and (bad_limit or concurrency < 1):
            raise ValueError("concurrency must be a positive integer or None")
        if unreachable is not None and not isinstance(unreachable, bool):
            raise ValueError("unreachable must be a boolean")
        with self._lock:
            if fault_5xx is not None:
                self._fault_5xx = float(fault_5xx)
            if lost_create is not None:
                self._lost_create = float(lost_create)
            if unreachable is not None:
                self._unreachable = unreachable
            if concurrency is not _UNSET:
                self._concurrency = concurrency
            if download_delay is not None:
                self._download_delay = float(download_delay)

    def expire_results(self, task_id: str) -> None:
        """From now on the task's video URL answers 404, like a clip past its 30 days."""
        with self._lock:
            task = self._find(task_id)
            if task is None:
                raise KeyError(task_id)
            task.expired = True

    def state(self) -> dict[str, Any]:
        """What ``GET /_sim/state`` answers."""
        with self._lock:
            creates: dict[str, int] = {}
            active: dict[str, int] = {}
            for task in self._tasks.values():
                if task.external_task_id:
                    creates[task.external_task_id] = creates.get(task.external_task_id, 0) + 1
                if task.active:
                    active[key_id(task.key)] = active.get(key_id(task.key), 0) + 1
            return {
                "creates": creates,
                "total_creates": len(self._tasks),
                "tasks": [self._snapshot(task) for task in self._tasks.values()],
                "callbacks_sent": len(self._callbacks_sent),
                "requests": dict(self._requests),
                "active": active,  # tasks holding a concurrency slot, per key_id()
                "peak_active": dict(self._peak_active),
                "concurrency_refusals": dict(self._concurrency_refusals),  # 1303s, per key_id()
                "faults": {
                    "fault_5xx": self._fault_5xx,
                    "lost_create": self._lost_create,
                    "unreachable": self._unreachable,
                    "concurrency": self._concurrency,
                    "download_delay": self._download_delay,
                },
            }

    # -- request handling (called from handler threads)

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def _handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> _Response | None:
        """Answer one request; None means "drop the connection unanswered"."""
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        if path.startswith("/_sim/"):
            return self._handle_sim(method, path, body)
        if path.startswith("/media/"):
            with self._lock:
                if self._unreachable:
                    return None
                self._requests["download"] += 1
            return self._handle_media(method, path, headers)
        if not path.startswith("/kling/"):
            return _api_error(ApiError(404, 1202, "invalid method: no such endpoint"))
        with self._lock:
            if self._unreachable:
                return None
        try:
            return self._handle_api(method, path, query, headers, body)
        except ApiError as error:
            return _api_error(error)

    def _handle_api(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        if path == API_PATH and method == "POST":
            kind = "create"
        elif path == API_PATH and method == "GET":
            kind = "read" if "external_task_id" in query else "list"
        elif path.startswith(API_PATH + "/") and method == "GET":
            kind = "read"
        else:
            raise ApiError(404, 1202, f"invalid method: {method} {path}")
        with self._lock:
            self._requests[kind] += 1
            fault = self._draw_fault(self._fault_5xx)
        if fault is not None:
            return fault  # a gateway or upstream failure comes before authentication
        key = self._authenticate(headers)
        if kind == "create":
            return self._create(key, body)
        if kind == "list":
            return self._list(query)
        if path == API_PATH:
            identifier = query["external_task_id"][0]
        else:
            identifier = unquote(path[len(API_PATH) + 1 :])
        with self._lock:
            task = self._find(identifier)
            # A task belongs to the key that created it: another key (even a rotated
            # successor) can't see it.
            if task is None or task.key != key:
                raise ApiError(404, 1203, "task not found")
            return _ok(self._api_task(task))

    def _draw_fault(self, probability: float) -> _Response | None:
        """With the given probability, a 5xx answer; call with the lock held."""
        if probability <= 0 or self._fault_rng.random() >= probability:
            return None
        status, code, message = self._fault_rng.choice(FAULTS)
        if code is None:
            gateway = {
                "error": {
                    "message": message,
                    "type": "comet_api_error",
                    "param": "",
                    "code": "upstream_error",
                }
            }
            return _json_response(status, gateway)
        return _json_response(status, _error_body(code, message))

    def _authenticate(self, headers: Mapping[str, str]) -> str:
        header = (headers.get("Authorization") or "").strip()
        if not header:
            raise ApiError(401, 1001, "Authorization is empty")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer":
            raise ApiError(401, 1000, "authentication failed: use Authorization: Bearer <key>")
        if not key:
            raise ApiError(401, 1001, "Authorization is empty")
        if "expired" in key:
            raise ApiError(401, 1004, "Authorization has expired")
        if "arrears" in key:
            raise ApiError(429, 1101, "Account is in arrears")
        if "noaccess" in key:
            raise ApiError(403, 1103, "No access to this resource or model")
        if self.keys is not None and key not in self.keys:
            raise ApiError(401, 1002, "Authorization is invalid")
        return key

    def _create(self, key: str, raw_body: bytes) -> _Response:
        try:
            body = json.loads(raw_body or b"null")
        except ValueError:
            raise ApiError(400, 1200, "invalid request: the body is not valid JSON") from None
        params = validate_create(body)
        prompt = params["prompt"].lower()
        if "[policy]" in prompt:
            raise ApiError(400, 1301, "content security policy: the prompt was refused (simulated)")
        external = params["external_task_id"]
        with self._lock:
            # Uniqueness is global rather than per key: stricter, so a client that would
            # re-create a task under another key is caught too.
            if external is not None and external in self._by_external:
                raise ApiError(
                    400, 1201, f"external_task_id {external!r} is a duplicate: it already exists"
                )
            running = sum(1 for t in self._tasks.values() if t.key == key and t.active)
            if self._concurrency is not None and running >= self._concurrency:
                fingerprint = key_id(key)
                self._concurrency_refusals[fingerprint] = (
                    self._concurrency_refusals.get(fingerprint, 0) + 1
                )
                raise ApiError(429, 1303, "too many concurrent tasks for this account")
            peak = self._peak_active.get(key_id(key), 0)
            self._peak_active[key_id(key)] = max(peak, running + 1)
            task = self._store(key, body, params, prompt)
            # Lost answer: the task exists and runs (and is paid for), the client sees a 5xx.
            lost = self._draw_fault(self._lost_create)
            if lost is not None:
                return lost
            created = self._api_task(task)
            data = {
                name: created[name]
                for name in ("task_id", "task_status", "task_info", "created_at", "updated_at")
            }
            return _ok(data)

    def _store(self, key: str, body: dict[str, Any], params: dict[str, Any], prompt: str) -> _Task:
        """Store a new task and schedule its transitions; call with the lock held."""
        if "[fail]" in prompt:
            outcome = "failed"
        elif "[never]" in prompt:
            outcome = "never"
        else:
            outcome = "succeed"
        task_id = str(self._id_rng.randrange(7 * 10**17, 9 * 10**17))
        while task_id in self._tasks:
            task_id = str(self._id_rng.randrange(7 * 10**17, 9 * 10**17))
        now = self._wall_ms()
        task = _Task(
            task_id=task_id,
            external_task_id=params["external_task_id"],
            key=key,
            request=body,
            model_name=params["model_name"],
            mode=params["mode"],
            duration=params["duration"],
            aspect_ratio=params["aspect_ratio"],
            callback_url=params["callback_url"],
            outcome=outcome,
            created_at=now,
            updated_at=now,
            video_id=str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4)),
            expired="[expire]" in prompt,
        )
        self._tasks[task_id] = task
        if task.external_task_id:
            self._by_external[task.external_task_id] = task_id
        factor = (SLOW_FACTOR if "[slow]" in prompt else 1.0) / self.speed
        start = self._mono()
        if self.realistic:
            processing, finish = realistic_timing(self._timing_rng, params["duration"])
        else:
            processing = self.processing_after
            finish = self.finish_after + self._timing_rng.uniform(0, self.finish_spread)
        self._schedule(start + processing * factor, task_id, "processing")
        if outcome != "never":
            self._schedule(start + finish * factor, task_id, outcome)
        self._push_callback(task)
        return task

    def _list(self, query: dict[str, list[str]]) -> _Response:
        try:
            page = int(query.get("pageNum", ["1"])[0])
            size = int(query.get("pageSize", ["30"])[0])
        except ValueError:
            raise ApiError(400, 1201, "pageNum and pageSize must be integers") from None
        if not (1 <= page <= 1000 and 1 <= size <= 500):
            raise ApiError(400, 1201, "pageNum must be in 1..1000 and pageSize in 1..500")
        with self._lock:
            newest_first = sorted(
                self._tasks.values(), key=lambda t: (t.created_at, t.task_id), reverse=True
            )
            chunk = newest_first[(page - 1) * size : page * size]
            return _ok([self._api_task(task) for task in chunk])

    def _handle_media(self, method: str, path: str, headers: Mapping[str, str]) -> _Response:
        not_found = _Response(
            404,
            b"<?xml version='1.0' encoding='UTF-8'?>"
            b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist."
            b"</Message></Error>",
            content_type="application/xml",
        )
        if method not in ("GET", "HEAD"):
            return _Response(405, b"", content_type="text/plain", headers=[("Allow", "GET, HEAD")])
        name = path[len("/media/") :]
        if not name.endswith(".mp4"):
            return not_found
        with self._lock:
            task = self._tasks.get(name[: -len(".mp4")])
            if task is None or task.status != "succeed" or task.expired:
                return not_found
            variant = (task.duration, task.aspect_ratio)
            delay = self._download_delay / self.speed
            if method == "GET":
                task.downloads.append(self._wall_ms())
        clip = clip_bytes(*variant)
        response = _ranged(clip, headers.get("Range"))
        if method == "GET" and response.body:
            # A range takes its share of the whole clip's time.
            response.pace = delay * len(response.body) / len(clip)
            response.on_sent = functools.partial(self._download_sent, task)
        return response

    def _download_sent(self, task: _Task) -> None:
        with self._lock:
            task.downloads_completed += 1

    def _handle_sim(self, method: str, path: str, body: bytes) -> _Response:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return _json_response(400, {"error": "body is not JSON"})
        if path == "/_sim/state" and method == "GET":
            return _json_response(200, self.state())
        if path == "/_sim/faults" and method == "POST":
            allowed = {"fault_5xx", "lost_create", "unreachable", "concurrency", "download_delay"}
            if not isinstance(payload, dict) or set(payload) - allowed:
                return _json_response(400, {"error": f"keywords allowed: {sorted(allowed)}"})
            try:
                self.set_faults(**payload)
            except ValueError as error:
                return _json_response(400, {"error": str(error)})
            return _json_response(200, self.state()["faults"])
        if path == "/_sim/expire" and method == "POST":
            task_id = payload.get("task_id") if isinstance(payload, dict) else None
            try:
                self.expire_results(str(task_id))
            except KeyError:
                return _json_response(404, {"error": "task not found"})
            return _json_response(200, {"expired": task_id})
        return _json_response(404, {"error": "unknown simulator endpoint"})

    # -- state helpers (lock held)

    def _find(self, identifier: str) -> _Task | None:
        """A task by task_id, else by external_task_id (both address the same resource)."""
        task = self._tasks.get(identifier)
        if task is None and identifier in self._by_external:
            task = self._tasks[self._by_external[identifier]]
        return task

    def _api_task(self, task: _Task) -> dict[str, Any]:
        return task.to_api(self.base_url)

    def _snapshot(self, task: _Task) -> dict[str, Any]:
        data = self._api_task(task)
        data["_sim"] = {
            "key_id": key_id(task.key),
            "request": copy.deepcopy(task.request),  # the create body as the client sent it
            "expired": task.expired,
            "downloads": list(task.downloads),  # epoch ms at which each download began
            "downloads_completed": task.downloads_completed,
        }
        return data

    def _schedule(self, due: float, task_id: str, status: str) -> None:
        self._event_seq += 1
        heapq.heappush(self._events, (due, self._event_seq, task_id, status))
        self._wakeup.notify()

    def _push_callback(self, task: _Task) -> None:
        if task.callback_url and not self._stopping:
            self._callback_queue.put((task.callback_url, self._api_task(task)))

    # -- background threads

    def _run_scheduler(self) -> None:
        """One thread moves every task along, from a heap of due transitions."""
        with self._wakeup:
            while not self._stopping:
                if not self._events:
                    self._wakeup.wait()
                    continue
                delay = self._events[0][0] - self._mono()
                if delay > 0:
                    self._wakeup.wait(delay)
                    continue
                self._fire_due()

    def _fire_due(self) -> None:
        """Apply every transition that is due (the lock held)."""
        mono, wall_ms = self._mono(), self._wall_ms()
        while self._events and self._events[0][0] <= mono:
            due, _, task_id, status = heapq.heappop(self._events)
            task = self._tasks[task_id]
            task.status = status
            if status == "failed":
                task.status_msg = FAIL_MESSAGE
            # Stamped when it was due (a moved clock fires several at once); updated_at must
            # move at each transition, even within one millisecond.
            task.updated_at = max(wall_ms - int((mono - due) * 1000), task.updated_at + 1)
            self._push_callback(task)

    def _run_callbacks(self) -> None:
        # Callback targets are local test servers or the dashboard; ignore *_proxy settings.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            item = self._callback_queue.get()
            if item is None:
                return
            url, body = item
            request = urllib.request.Request(
                url,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "User-Agent": "kling-simulator"},
                method="POST",
            )
            try:
                with opener.open(request, timeout=5) as response:
                    response.read()
            except urllib.error.HTTPError as error:
                error.close()  # a non-2xx answer still holds a socket
            except Exception:
                # Unreachable, refused, garbled or a bad URL: like the real service, push
                # and forget; the client's polling is what reconciles.
                pass
            with self._lock:
                self._callbacks_sent.append((url, body))


# Sample clips per (duration, aspect ratio), shared by every Simulator in the process:
# encoding takes ~0.1 s, and tests start many simulators. Only bytes are kept (20-40 kB each);
# the files ffmpeg writes live in a temporary directory removed at once.
_clips: dict[tuple[str, str], bytes] = {}
_clip_codec = ""
_clips_lock = threading.Lock()  # ffmpeg runs under this one, never under a simulator's lock


def clip_bytes(duration: str, aspect_ratio: str) -> bytes:
    """A real, playable mp4 of the requested length and shape, made once and cached."""
    global _clip_codec
    variant = (duration, aspect_ratio)
    with _clips_lock:
        if variant not in _clips:
            with tempfile.TemporaryDirectory(prefix="kling-sim-") as folder:
                target = Path(folder) / "clip.mp4"
                _clip_codec = _make_clip(
                    target, seconds=f"{duration}.1", size=CLIP_SIZES[aspect_ratio]
                )
                _clips[variant] = target.read_bytes()
        return _clips[variant]


def _make_clip(target: Path, *, seconds: str, size: str) -> str:
    """Encode a test-pattern clip with the ffmpeg bundled by imageio-ffmpeg.

    H.264 first, because browsers (Chromium included) only play H.264 in mp4 reliably;
    mpeg4 part 2 is a last resort that still downloads and probes fine. Returns the encoder.
    """
    import imageio_ffmpeg  # imported late: only media needs it, and it looks up a binary

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=24", "-t", seconds]
    encoders = (
        ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main"],
        ["-c:v", "libopenh264"],
        ["-c:v", "mpeg4", "-q:v", "5"],
    )
    errors = []
    for encoder in encoders:
        command = [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            *source,
            "-pix_fmt",
            "yuv420p",
            *encoder,
            "-movflags",
            "+faststart",
            str(target),
        ]
        result = subprocess.run(command, capture_output=True, timeout=60, check=False)
        if result.returncode == 0 and target.exists() and target.stat().st_size > 0:
            return encoder[1]
        errors.append(result.stderr.decode(errors="replace").strip())
    raise RuntimeError("ffmpeg could not make the sample clip: " + " | ".join(errors))


def _ranged(data: bytes, range_header: str | None) -> _Response:
    """Serve bytes, honouring one ``bytes=a-b`` range so a browser can seek the clip."""
    headers = [("Accept-Ranges", "bytes")]
    size = len(data)
    if not range_header or not range_header.startswith("bytes=") or "," in range_header:
        return _Response(200, data, content_type="video/mp4", headers=headers)
    first, _, last = range_header[len("bytes=") :].strip().partition("-")
    try:
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:  # "bytes=-N": the last N bytes
            start = max(0, size - int(last))
            end = size - 1
    except ValueError:
        return _Response(200, data, content_type="video/mp4", headers=headers)
    if start > end or start >= size:
        headers.append(("Content-Range", f"bytes */{size}"))
        return _Response(416, b"", content_type="video/mp4", headers=headers)
    headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    return _Response(206, data[start : end + 1], content_type="video/mp4", headers=headers)

"""The bundled CometAPI simulator, spoken to over raw HTTP (httpx), never through our http.

The simulator and the client (``generations/kling/``) are both written from the contract;
these tests pin the simulator to the contract so the two can check each other.
"""

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from generations.simulator.server import Simulator, key_id, realistic_timing

ROOT = Path(__file__).resolve().parents[1]
CREATE = "/kling/v1/videos/text2video"
# At 100x, a task is processing after 0.03 s and finished after 0.12 s.
SPEED = 100.0


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """For what the simulator's own threads do over the network (a callback sent, a dropped
    connection noticed). Its timeline is not waited for: tests move it (wait_status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def make_client(sim: Simulator, key: str | None = "sk-test") -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # trust_env=False: a proxy set in the environment must not sit between us and localhost.
    # verify=False: plain http, so skip loading the CA bundle (~50 ms per client).
    client = httpx.Client(
        base_url=sim.base_url, headers=headers, trust_env=False, verify=False, timeout=5
    )
    client.simulator = sim  # wait_status moves its clock
    return client


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(speed=SPEED, seed=7) as simulator:
        yield simulator


@pytest.fixture
def http(sim: Simulator) -> Iterator[httpx.Client]:
    with make_client(sim) as client:
        yield client


@pytest.fixture(scope="module")
def keyed_sim() -> Iterator[Simulator]:
    """A simulator that accepts only sk-good (and the magic keys); shared, it stores nothing."""
    with Simulator(speed=SPEED, keys=["sk-good"]) as simulator:
        yield simulator


def create(http: httpx.Client, **fields: Any) -> httpx.Response:
    return http.post(CREATE, json={"prompt": "a red fox in the snow", **fields})


def read(http: httpx.Client, identifier: str) -> dict[str, Any]:
    response = http.get(f"{CREATE}/{identifier}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_status(http: httpx.Client, identifier: str, status: str) -> dict[str, Any]:
    """Read the task until it reaches `status`, moving the simulator's clock a second (of its
    own time) between reads instead of waiting for it."""
    for _ in range(600):
        task = read(http, identifier)
        if task["task_status"] == status:
            return task
        http.simulator.advance(1.0)
    raise AssertionError(f"{identifier} never reached {status}: {task['task_status']}")


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    assert body["request_id"]
    return body


# -- the happy path


def test_it_runs_a_task_to_success_and_serves_a_real_mp4() -> None:
    # Slower than the other tests, so polling cannot miss the short processing window.
    with Simulator(speed=25.0, seed=7) as sim, make_client(sim) as http:
        response = create(http, external_task_id="gen-1", model_name="kling-v1", mode="pro")

        assert response.status_code == 200
        body = response.json()
        assert (body["code"], body["message"]) == (0, "SUCCEED")
        created = body["data"]
        assert created["task_status"] == "submitted"
        assert created["task_info"] == {"external_task_id": "gen-1"}
        assert created["created_at"] == created["updated_at"] > 1_600_000_000_000  # Unix ms
        assert read(http, created["task_id"])["task_result"] == {}

        processing = wait_status(http, created["task_id"], "processing")
        done = wait_status(http, created["task_id"], "succeed")

        assert created["updated_at"] < processing["updated_at"] < done["updated_at"]
        assert done["task_status_msg"] == ""
        assert done["final_unit_deduction"] == "3.5"  # kling-v1 pro, 5 s
        [video] = done["task_result"]["videos"]
        assert video["duration"] == "5.1"
        assert video["url"] == f"{sim.base_url}/media/{created['task_id']}.mp4"
        media = http.get(video["url"])
        assert media.status_code == 200
        assert media.headers["content-type"] == "video/mp4"
        assert int(media.headers["content-length"]) == len(media.content) > 1000
        assert media.content[4:8] == b"ftyp"  # an ISO media file, not a placeholder
        assert sim.create_count() == 1
        assert sim.create_count("gen-1") == 1


def test_it_reads_a_task_by_task_id_or_external_id_in_both_forms(http: httpx.Client) -> None:
    task_id = create(http, external_task_id="ext-42").json()["data"]["task_id"]

    assert read(http, task_id)["task_id"] == task_id
    assert read(http, "ext-42")["task_id"] == task_id
    by_query = http.get(CREATE, params={"external_task_id": "ext-42"})
    assert by_query.json()["data"]["task_id"] == task_id

    assert_error(http.get(f"{CREATE}/no-such-task"), 404, 1203)
    assert_error(http.get(CREATE, params={"external_task_id": "nope"}), 404, 1203)


def test_it_lists_tasks_newest_first_in_pages(http: httpx.Client) -> None:
    ids = [create(http, external_task_id=f"list-{n}").json()["data"]["task_id"] for n in range(3)]

    everything = http.get(CREATE, params={"pageNum": 1, "pageSize": 30}).json()["data"]
    second_page = http.get(CREATE, params={"pageNum": 2, "pageSize": 2}).json()["data"]

    assert [task["task_id"] for task in everything] == ids[::-1]
    assert [task["task_id"] for task in second_page] == ids[:1]
    assert_error(http.get(CREATE, params={"pageSize": 0}), 400, 1201)


@pytest.mark.parametrize(
    ("model", "mode", "duration", "units"),
    [
        ("kling-v1", "std", "10", "2"),
        ("kling-v1-6", "std", "5", "2"),
        ("kling-v2-5-turbo", "std", "10", "3"),
        ("kling-v2-master", "pro", "10", "20"),
        ("kling-v3", "pro", "5", "1"),
    ],
)
def test_it_charges_from_the_unit_table(
    http: httpx.Client, model: str, mode: str, duration: str, units: str
) -> None:
    task_id = create(http, model_name=model, mode=mode, duration=duration).json()["data"]["task_id"]

    done = wait_status(http, task_id, "succeed")

    assert done["final_unit_deduction"] == units
    assert done["task_result"]["videos"][0]["duration"] == f"{duration}.1"


def test_it_serves_byte_ranges_so_browsers_can_seek(http: httpx.Client) -> None:
    task_id = create(http, aspect_ratio="9:16").json()["data"]["task_id"]
    url = wait_status(http, task_id, "succeed")["task_result"]["videos"][0]["url"]
    size = int(http.head(url).headers["content-length"])

    partial = http.get(url, headers={"Range": "bytes=0-99"})

    assert partial.status_code == 206
    assert partial.headers["content-range"] == f"bytes 0-99/{size}"
    assert len(partial.content) == 100
    assert http.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416


# -- auth and validation


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (None, 401, 1001),
        ("sk-unknown", 401, 1002),
        ("sk-expired-1", 401, 1004),
        ("sk-arrears-1", 429, 1101),
        ("sk-noaccess-1", 403, 1103),
    ],
)
def test_it_refuses_bad_keys(keyed_sim: Simulator, key: str | None, status: int, code: int) -> None:
    before = keyed_sim.create_count()
    with make_client(keyed_sim, key) as http:
        assert_error(create(http), status, code)
        assert_error(http.get(f"{CREATE}/anything"), status, code)
    assert keyed_sim.create_count() == before


def test_it_accepts_a_listed_key(keyed_sim: Simulator) -> None:
    with make_client(keyed_sim, "sk-good") as http:
        task_id = create(http).json()["data"]["task_id"]
        assert read(http, task_id)["task_id"] == task_id


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x" * 501},
        {"prompt": 42},
        {"negative_prompt": "n" * 201},
        {"model_name": "kling-v1-5"},
        {"model_name": "gpt-video"},
        {"mode": "turbo"},
        {"duration": 5},
        {"duration": "7"},
        {"aspect_ratio": "4:5"},
        {"cfg_scale": 1.5},
        {"cfg_scale": "0.5"},
        {"callback_url": "ftp://example.com/hook"},
        {"camera_control": {"type": "simple", "config": {"zoom": 5, "pan": 2}}},
        {"camera_control": {"type": "simple", "config": {"zoom": 0}}},
        {"camera_control": {"type": "simple", "config": {"zoom": 11}}},
        {"camera_control": {"type": "simple", "config": {"spin": 1}}},
        {"camera_control": {"type": "down_back", "config": {"zoom": 1}}},
        {"camera_control": {"type": "orbit"}},
    ],
)
def test_it_refuses_invalid_create_bodies(
    sim: Simulator, http: httpx.Client, fields: dict[str, Any]
) -> None:
    assert_error(create(http, **fields), 400, 1201)
    assert sim.create_count() == 0


def test_it_refuses_a_body_that_is_not_a_json_object(http: httpx.Client) -> None:
    assert_error(http.post(CREATE, content=b"{not json"), 400, 1200)
    assert_error(http.post(CREATE, json=["prompt"]), 400, 1200)


def test_it_accepts_camera_control_only_on_kling_v1_std_5s(http: httpx.Client) -> None:
    axes = {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": 0, "roll": 0, "zoom": -3}
    simple = {"type": "simple", "config": axes}

    assert create(http, camera_control=simple).status_code == 200
    assert create(http, camera_control={"type": "forward_up"}).status_code == 200
    for fields in ({"mode": "pro"}, {"duration": "10"}, {"model_name": "kling-v1-6"}):
        refused = assert_error(create(http, camera_control=simple, **fields), 400, 1201)
        assert refused["message"] == (
            "camera_control is only supported in std mode with 5s duration and kling-v1"
        )


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"model": "kling-v1-6"}, "model"),  # the legacy field, never silently kling-v1
        ({"model_name": "kling-v1", "sound": "on"}, "sound"),  # not a text-to-video field
        ({"aspectRatio": "9:16"}, "aspectRatio"),
    ],
)
def test_it_refuses_undocumented_fields(http: httpx.Client, fields: dict, named: str) -> None:
    """Issue 19: a stand-in our tests rely on refuses what the contract doesn't document."""
    refused = assert_error(create(http, **fields), 400, 1201)
    assert named in refused["message"]


@pytest.mark.parametrize(
    "camera",
    [
        {"type": "simple", "config": {"zoom": -3}},  # one axis named, five left out
        {"type": "simple", "config": {"zoom": -3, "pan": 0, "tilt": 0, "roll": 0, "x": 0}},
        {"type": "forward_up", "speed": 2},
    ],
)
def test_it_refuses_a_camera_control_kling_does_not_document(http: httpx.Client, camera) -> None:
    assert_error(create(http, camera_control=camera), 400, 1201)


def test_realistic_timing_follows_the_contracts_figures() -> None:
    rng = random.Random(19)
    fives = [realistic_timing(rng, "5") for _ in range(2000)]
    tens = [realistic_timing(rng, "10") for _ in range(2000)]
    assert all(5 <= processing <= 20 for processing, _ in fives + tens)
    assert all(60 <= end <= 120 or 660 <= end <= 1020 for _, end in fives)
    assert all(120 <= end <= 240 or 720 <= end <= 1140 for _, end in tens)
    tail = sum(end > 600 for _, end in fives + tens) / 4000
    assert 0.03 < tail < 0.07  # a few run past ten minutes


def test_it_refuses_a_duplicate_external_task_id(sim: Simulator, http: httpx.Client) -> None:
    assert create(http, external_task_id="once").status_code == 200

    with make_client(sim, "sk-other-key") as other:
        refused = assert_error(create(other, external_task_id="once"), 400, 1201)

    assert "external_task_id" in refused["message"]
    assert "duplicate" in refused["message"]
    assert sim.create_count("once") == 1


def test_it_records_what_the_client_sent(sim: Simulator, http: httpx.Client) -> None:
    create(http, external_task_id="rec", duration="10", cfg_scale=0.3)

    [task] = sim.tasks()

    assert task["_sim"]["key_id"] == key_id("sk-test")
    assert task["_sim"]["request"]["duration"] == "10"
    assert task["_sim"]["request"]["cfg_scale"] == 0.3
    assert "sk-test" not in json.dumps(task)


def test_it_answers_unknown_routes_with_kling_404(http: httpx.Client) -> None:
    assert_error(http.get("/kling/v1/videos/lip-sync"), 404, 1202)
    assert_error(http.delete(f"{CREATE}/123"), 404, 1202)


# -- prompt markers


def test_policy_marker_refuses_the_create(sim: Simulator, http: httpx.Client) -> None:
    body = assert_error(create(http, prompt="a [policy] clip"), 400, 1301)
    assert "content security policy" in body["message"]
    assert sim.create_count() == 0


def test_fail_marker_fails_after_a_successful_create(http: httpx.Client) -> None:
    task_id = create(http, prompt="[fail] a clip").json()["data"]["task_id"]

    failed = wait_status(http, task_id, "failed")

    assert failed["task_status_msg"] == (
        "The content you submitted did not pass moderation (simulated)"
    )
    assert failed["task_result"] == {}
    assert "final_unit_deduction" not in failed


def test_never_and_slow_markers_stretch_the_run(http: httpx.Client) -> None:
    never = create(http, prompt="[never] a clip").json()["data"]["task_id"]
    slow = create(http, prompt="[slow] a clip").json()["data"]["task_id"]
    normal = create(http, prompt="a clip").json()["data"]["task_id"]

    wait_status(http, normal, "succeed")
    assert read(http, slow)["task_status"] in ("submitted", "processing")
    wait_status(http, slow, "succeed")
    assert read(http, never)["task_status"] == "processing"


def test_expired_results_answer_404(sim: Simulator, http: httpx.Client) -> None:
    marked = create(http, prompt="[expire] a clip").json()["data"]["task_id"]
    plain = create(http).json()["data"]["task_id"]
    marked_url = wait_status(http, marked, "succeed")["task_result"]["videos"][0]["url"]
    plain_url = wait_status(http, plain, "succeed")["task_result"]["videos"][0]["url"]
    assert http.get(plain_url).status_code == 200

    sim.expire_results(plain)

    assert http.get(marked_url).status_code == 404
    assert http.get(plain_url).status_code == 404
    assert read(http, plain)["task_status"] == "succeed"  # the task itself stays readable


def test_media_of_an_unfinished_task_is_not_found(http: httpx.Client, sim: Simulator) -> None:
    task_id = create(http, prompt="[never] a clip").json()["data"]["task_id"]
    assert http.get(f"{sim.base_url}/media/{task_id}.mp4").status_code == 404


# -- concurrency and faults


def test_it_limits_running_tasks_per_key(sim: Simulator, http: httpx.Client) -> None:
    sim.set_faults(concurrency=1)
    # [slow] keeps the slot taken for 0.48 s, plenty for the next requests even on a busy CI.
    first = create(http, prompt="[slow] a clip", external_task_id="c-1").json()["data"]["task_id"]

    assert_error(create(http, external_task_id="c-2"), 429, 1303)
    with make_client(sim, "sk-second-key") as other:
        assert create(other, external_task_id="c-3").status_code == 200

    wait_status(http, first, "succeed")  # a finished task frees its slot
    assert create(http, external_task_id="c-2").status_code == 200
    sim.set_faults(concurrency=None)
    assert create(http, external_task_id="c-4").status_code == 200
    assert sim.create_count() == 4
    # Refusals and peaks are reported per key fingerprint, for the fault tests.
    state = sim.state()
    assert state["concurrency_refusals"] == {key_id("sk-test"): 1}
    assert state["peak_active"][key_id("sk-test")] >= 1
    assert state["peak_active"][key_id("sk-second-key")] == 1


def test_fault_5xx_answers_kling_and_gateway_errors(sim: Simulator, http: httpx.Client) -> None:
    task_id = create(http).json()["data"]["task_id"]
    url = wait_status(http, task_id, "succeed")["task_result"]["videos"][0]["url"]
    sim.set_faults(fault_5xx=1.0)

    answers = [http.get(f"{CREATE}/{task_id}") for _ in range(30)]

    assert {answer.status_code for answer in answers} == {500, 502, 503, 504}
    for answer in answers:
        body = answer.json()
        if answer.status_code == 502:
            assert body["error"]["type"] == "comet_api_error"
        else:
            expected = {500: 5000, 503: 5001, 504: 5002}[answer.status_code]
            assert body["code"] == expected
    assert create(http).status_code >= 500
    assert sim.create_count() == 1
    assert http.get(url).status_code == 200  # media and /_sim/ are never faulted
    assert http.get("/_sim/state").status_code == 200


def test_fault_draws_are_reproducible_with_a_seed() -> None:
    def statuses() -> list[int]:
        with Simulator(speed=SPEED, seed=3, fault_5xx=0.5) as sim, make_client(sim) as http:
            return [http.get(f"{CREATE}/x").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert 404 in first and any(status >= 500 for status in first)


def test_lost_create_stores_the_task_but_answers_5xx(sim: Simulator, http: httpx.Client) -> None:
    sim.set_faults(lost_create=1.0)

    lost = create(http, external_task_id="lost-1")

    assert lost.status_code >= 500
    assert sim.create_count("lost-1") == 1
    sim.set_faults(lost_create=0.0)
    found = wait_status(http, "lost-1", "succeed")  # it ran all the same
    assert found["task_info"]["external_task_id"] == "lost-1"
    assert_error(create(http, external_task_id="lost-1"), 400, 1201)
    assert sim.create_count("lost-1") == 1


def test_unreachable_drops_api_and_media_connections(sim: Simulator, http: httpx.Client) -> None:
    task_id = create(http).json()["data"]["task_id"]
    url = wait_status(http, task_id, "succeed")["task_result"]["videos"][0]["url"]
    sim.set_faults(unreachable=True)

    with pytest.raises(httpx.TransportError):
        http.get(f"{CREATE}/{task_id}")
    with pytest.raises(httpx.TransportError):
        http.get(url)
    with pytest.raises(httpx.TransportError):
        create(http)
    assert http.get("/_sim/state").status_code == 200

    sim.set_faults(unreachable=False)
    assert read(http, task_id)["task_status"] == "succeed"
    assert sim.create_count() == 1


def test_set_faults_rejects_nonsense(sim: Simulator) -> None:
    with pytest.raises(ValueError):
        sim.set_faults(fault_5xx=2)
    with pytest.raises(ValueError):
        sim.set_faults(concurrency=0)


# -- callbacks


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    handler = type("Receiver", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?token=t0k3n", handler.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_it_pushes_the_flat_task_on_every_status_change(
    sim: Simulator,
    http: httpx.Client,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = receiver
    task_id = create(http, callback_url=url, external_task_id="cb").json()["data"]["task_id"]

    wait_for(lambda: len(sim.callbacks_sent()) == 3)

    # Two senders run in parallel, so order is not guaranteed (nor is it upstream).
    assert sorted(body["task_status"] for body in received) == [
        "processing",
        "submitted",
        "succeed",
    ]
    latest = max(received, key=lambda body: body["updated_at"])
    assert latest == read(http, task_id)
    assert "code" not in latest  # flat, no envelope
    assert {sent_url for sent_url, _ in sim.callbacks_sent()} == {url}


def test_a_dead_callback_target_does_not_break_the_task(sim: Simulator, http: httpx.Client) -> None:
    task_id = create(http, callback_url="http://127.0.0.1:9/hook").json()["data"]["task_id"]

    wait_status(http, task_id, "succeed")

    wait_for(lambda: len(sim.callbacks_sent()) == 3)


# -- introspection over HTTP and the command


def test_sim_endpoints_report_state_and_change_faults(sim: Simulator, http: httpx.Client) -> None:
    task_id = create(http, external_task_id="s-1").json()["data"]["task_id"]
    http.get(f"{CREATE}/{task_id}")
    http.get(CREATE, params={"pageNum": 1, "pageSize": 30})

    state = http.get("/_sim/state").json()

    assert state["creates"] == {"s-1": 1}
    assert state["total_creates"] == 1
    assert state["tasks"][0]["task_id"] == task_id
    assert state["requests"] == {"create": 1, "read": 1, "list": 1, "download": 0}
    assert state["callbacks_sent"] == 0
    assert state["active"] == {key_id("sk-test"): 1}

    faults = http.post("/_sim/faults", json={"fault_5xx": 1.0, "concurrency": 2})
    assert faults.json()["fault_5xx"] == 1.0
    assert http.get(f"{CREATE}/{task_id}").status_code >= 500
    assert http.post("/_sim/faults", json={"fault_5xx": 0}).status_code == 200
    assert http.post("/_sim/faults", json={"bogus": 1}).status_code == 400
    assert http.post("/_sim/faults", json={"lost_create": -1}).status_code == 400
    assert http.get("/_sim/state").json()["faults"]["concurrency"] == 2

    url = wait_status(http, task_id, "succeed")["task_result"]["videos"][0]["url"]
    assert http.post("/_sim/expire", json={"task_id": task_id}).status_code == 200
    assert http.get(url).status_code == 404
    assert http.post("/_sim/expire", json={"task_id": "nope"}).status_code == 404


def test_the_module_runs_without_django() -> None:
    code = (
        "import sys; import generations.simulator.server as s; "
        "assert not any(m.startswith('django') for m in sys.modules); "
        "sim = s.Simulator().start(); print(sim.base_url); sim.stop()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("http://127.0.0.1:")


def test_the_management_command_serves_until_interrupted() -> None:
    command = [sys.executable, "manage.py", "cometapi_simulator", "--port", "0", "--speed", "50"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            base_url = line.split("listening on ")[1].split()[0]
            with httpx.Client(base_url=base_url, trust_env=False, verify=False) as http:
                assert http.get("/_sim/state").json()["total_creates"] == 0
            # SIGTERM: a shell that runs the suite in the background (as CI may) makes its
            # children ignore SIGINT.
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert "stopped" in process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()


def test_finish_spread_varies_when_tasks_end() -> None:
    with (
        Simulator(
            speed=50.0, seed=4, processing_after=0.5, finish_after=1.0, finish_spread=4.0
        ) as sim,
        httpx.Client(base_url=sim.base_url) as http,
    ):
        for i in range(12):
            response = http.post(
                "/kling/v1/videos/text2video",
                headers={"Authorization": "Bearer sk-test"},
                json={"prompt": f"clip {i}"},
            )
            assert response.status_code == 200
        sim.advance(5.0)  # past 1 s plus the whole 4 s spread
        durations = {t["updated_at"] - t["created_at"] for t in sim.tasks()}
        assert all(t["task_status"] == "succeed" for t in sim.tasks())
        # 1 s plus up to 4 s, at 50x: 20-100 ms, and not all the same.
        assert len(durations) > 6 and max(durations) - min(durations) > 20


def test_download_delay_makes_the_cdn_slow_and_records_each_download() -> None:
    """A clip's bytes trickle out over `download_delay` seconds of the simulator's clock
    (here 20 s at 40x: half a second); the headers come at once, so a download is seen to
    be under way. Each download's start is recorded on the task."""
    with Simulator(speed=40.0, seed=2, download_delay=20.0) as sim, make_client(sim) as http:
        task_id = create(http, external_task_id="slow-cdn").json()["data"]["task_id"]
        url = wait_status(http, task_id, "succeed")["task_result"]["videos"][0]["url"]
        assert http.head(url).status_code == 200  # no body, no wait, not a download

        began = time.monotonic()
        with http.stream("GET", url) as response:
            first_headers = time.monotonic() - began
            body = response.read()
        took = time.monotonic() - began

        assert response.status_code == 200 and body[4:8] == b"ftyp"
        assert first_headers < 0.3 < 0.45 <= took < 3.0
        partial = http.get(url, headers={"Range": "bytes=0-99"})  # a sliver: no real wait
        assert partial.status_code == 206
        (task,) = sim.tasks()
        assert len(task["_sim"]["downloads"]) == 2
        assert task["updated_at"] <= task["_sim"]["downloads"][0] <= time.time() * 1000
        assert task["_sim"]["downloads_completed"] == 2
        assert sim.state()["requests"]["download"] == 3  # HEAD counts as a request

        # Live, over HTTP too; 0 serves at once again.
        assert http.post("/_sim/faults", json={"download_delay": 0}).status_code == 200
        assert sim.state()["faults"]["download_delay"] == 0
        began = time.monotonic()
        assert http.get(url).status_code == 200
        assert time.monotonic() - began < 0.3
        with pytest.raises(ValueError):
            sim.set_faults(download_delay=-1)


def test_a_download_cut_off_midway_is_not_counted_complete() -> None:
    with Simulator(speed=20.0, seed=3, download_delay=40.0) as sim, make_client(sim) as http:
        task_id = create(http).json()["data"]["task_id"]
        url = wait_status(http, task_id, "succeed")["task_result"]["videos"][0]["url"]
        with http.stream("GET", url) as response:
            next(response.iter_raw(512))  # a first slice, then hang up
        (task,) = sim.tasks()
        assert len(task["_sim"]["downloads"]) == 1
        time.sleep(0.3)
        assert sim.tasks()[0]["_sim"]["downloads_completed"] == 0


def test_a_moved_clock_runs_the_timeline_at_once_with_its_own_timestamps() -> None:
    """At real speed a task takes 12 s; moved forward, it is done at once, and its
    updated_at says when each step was due, as if the time had passed."""
    with Simulator(seed=2) as sim, make_client(sim) as http:
        task_id = create(http).json()["data"]["task_id"]
        sim.advance(3.0)
        assert read(http, task_id)["task_status"] == "processing"
        sim.advance(9.0)
        done = read(http, task_id)
        assert done["task_status"] == "succeed"
        assert 11_900 <= done["updated_at"] - done["created_at"] <= 12_500

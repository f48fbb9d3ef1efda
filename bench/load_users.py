"""Locust users for bench/bench_load.py (run by it; not a benchmark module of its own).

Members arrive logged in (the bench made their sessions), so the run measures the pages, not
password hashing. Every request's time is written to LOAD_RESULTS when locust quits; the
bench computes exact percentiles from those.
"""

import json
import os
import random
import re
import time
from urllib.parse import quote

import gevent
from locust import FastHttpUser, between, events, task

SESSIONS = json.loads(open(os.environ["LOAD_SESSIONS"]).read())  # noqa: SIM115, PTH123
_pollers = iter(SESSIONS["pollers"])
_submitters = iter(SESSIONS["submitters"])
_records: list[tuple[float, str, float, str]] = []
PERIOD = 2.0  # seconds between two polls of one page (hx-trigger="every 2s")
# KLING_BENCH_LOAD_HERD=1: the pollers in step, as the bench first ran (to compare).
HERD = os.environ.get("KLING_BENCH_LOAD_HERD") == "1"
# The version a live card shows, in the token its page sends back (`<id hex>:<version>:card`).
TOKEN_RE = re.compile(r'name="live" id="live-([0-9a-f]{32})" value="[0-9a-f]{32}:([^":]+):card"')


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception, **kwargs):
    _records.append((time.time(), name, response_time, repr(exception) if exception else ""))


@events.quitting.add_listener
def _dump(environment, **kwargs):
    with open(os.environ["LOAD_RESULTS"], "w") as out:  # noqa: PTH123
        json.dump(_records, out)


def _headers(member: dict, **extra: str) -> dict:
    return {
        "Cookie": f"sessionid={member['sessionid']}; csrftoken={member['csrftoken']}",
        **extra,
    }


class PollingMember(FastHttpUser):
    """A member with one card in flight on screen: the page's one poll (POST /live/, with
    the CSRF token htmx sends) asks every 2 s about it, sending the version it shows (204
    while unchanged).

    htmx's `every 2s` counts from when the member's page loaded, and members load their pages
    at independent moments, so each poller starts at its own point of the 2 s period. Without
    that, locust's spawning (20 users at once, each second) kept 100 pollers in step: every
    second, 100 polls left within the same few milliseconds, and the bench measured that herd
    queueing for 8 threads rather than 200 members (docs/benchmarks.md)."""

    fixed_count = len(SESSIONS["pollers"])

    def on_start(self) -> None:
        self.member = next(_pollers)
        self.version = self.member["version"]
        if not HERD:
            index = SESSIONS["pollers"].index(self.member)
            gevent.sleep(random.Random(index).uniform(0, PERIOD))
        self.due = time.time()  # this poll's moment; the next ones every PERIOD after it

    def wait_time(self) -> float:
        # As htmx's timer: every PERIOD from the first poll, however long a poll took.
        # (locust's constant_pacing counts from the user's creation, undoing the offset.)
        self.due += PERIOD
        return max(0.0, self.due - time.time())

    @task
    def poll(self) -> None:
        card = self.member["card"].replace("-", "")
        headers = _headers(
            self.member,
            **{
                "HX-Request": "true",
                "X-CSRFToken": self.member["csrftoken"],
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        with self.client.post(
            "/live/",
            data=f"live={card}%3A{quote(self.version, safe='')}%3Acard",
            headers=headers,
            name="page poll",
            catch_response=True,
        ) as response:
            if response.status_code == 200 and (found := TOKEN_RE.search(response.text)):
                self.version = found[2]  # the card changed: htmx swaps it, with its new version
            elif response.status_code not in (200, 204, 286):
                response.failure(f"status {response.status_code}")


class SubmittingMember(FastHttpUser):
    """A member making clips: opens the studio, submits a prompt (htmx), and again."""

    fixed_count = len(SESSIONS["submitters"])
    wait_time = between(8, 12)

    def on_start(self) -> None:
        self.member = next(_submitters)
        self.made = 0

    @task
    def submit(self) -> None:
        with self.client.get(
            "/", headers=_headers(self.member), name="studio page", catch_response=True
        ) as page:
            if page.status_code != 200 or "prompt" not in page.text:
                page.failure(f"status {page.status_code}")
                return
        self.made += 1
        form = {
            "prompt": f"a paper boat on a rainy street, take {self.made}",
            "negative_prompt": "",
            "model_name": "kling-v1",
            "mode": "std",
            "duration": "5",
            "aspect_ratio": "16:9",
            "cfg_scale": "0.5",
            "camera": "auto",
            "visibility": "team",
        }
        headers = _headers(
            self.member,
            **{
                "HX-Request": "true",
                "X-CSRFToken": self.member["csrftoken"],
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        body = "&".join(f"{k}={quote(v)}" for k, v in form.items())
        with self.client.post(
            "/", data=body, headers=headers, name="submit", catch_response=True
        ) as response:
            if response.status_code != 200 or 'name="live"' not in response.text:
                response.failure(f"status {response.status_code}: not a new card")

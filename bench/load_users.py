"""Locust users for bench/bench_load.py (run by it; not a benchmark module of its own).

Members arrive logged in (the bench made their sessions), so the run measures the pages, not
password hashing. Every request's time is written to LOAD_RESULTS when locust quits; the
bench computes exact percentiles from those.
"""

import json
import os
import re
import time
from urllib.parse import quote

from locust import FastHttpUser, between, constant_pacing, events, task

SESSIONS = json.loads(open(os.environ["LOAD_SESSIONS"]).read())  # noqa: SIM115, PTH123
_pollers = iter(SESSIONS["pollers"])
_submitters = iter(SESSIONS["submitters"])
_records: list[tuple[float, str, float, str]] = []
VERSION_RE = re.compile(r'/status/\?v=([^"&]+)"')


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
    """A member with one card in flight on screen: htmx asks for its status every 2 s,
    sending the version it shows (204 while unchanged)."""

    fixed_count = len(SESSIONS["pollers"])
    wait_time = constant_pacing(2)

    def on_start(self) -> None:
        self.member = next(_pollers)
        self.version = self.member["version"]

    @task
    def poll(self) -> None:
        url = f"/g/{self.member['card']}/status/?v={quote(self.version)}"
        with self.client.get(
            url,
            headers=_headers(self.member, **{"HX-Request": "true"}),
            name="status partial",
            catch_response=True,
        ) as response:
            if response.status_code == 200 and (found := VERSION_RE.search(response.text)):
                self.version = found[1]  # the card changed: htmx swaps it, with its new version
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
            if response.status_code != 200 or "/status/" not in response.text:
                response.failure(f"status {response.status_code}: not a new card")

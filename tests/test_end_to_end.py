"""End to end: the simulator, a real qcluster subprocess and a live server.

A member logs in and submits through the form over HTTP; the cluster submits to the
simulator, which pushes callbacks to the live server; the page's one poll sees the card
reach finished (286) and the clip is stored locally and served with Range support.
"""

import re

import httpx
import pytest

from generations.models import Generation, Status
from generations.simulator.server import Simulator

from .stack import running_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def login(http: httpx.Client, username: str, password: str) -> None:
    http.get("/accounts/login/")
    response = http.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
        },
    )
    assert response.status_code == 302, response.text


def test_a_prompt_becomes_a_stored_clip(live_server, alice, api_key):
    with (
        Simulator(speed=4.0, seed=1) as sim,
        running_cluster(cometapi_base_url=sim.base_url, site_url=live_server.url),
        httpx.Client(base_url=live_server.url, timeout=10) as http,
    ):
        login(http, "alice", "alice-pass")
        page = http.get("/")
        assert page.status_code == 200 and 'name="prompt"' in page.text
        response = http.post(
            "/",
            data={
                "prompt": "A paper boat drifts down a rainy street",
                "model_name": "kling-v1",
                "mode": "pro",
                "duration": "10",
                "aspect_ratio": "9:16",
                "cfg_scale": "0.7",
                "camera": "auto",
                "visibility": "team",
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
        )
        assert response.status_code == 302
        gen = Generation.objects.get()
        card = gen.public_id.hex
        shown = "none"  # the version the page shows: none yet, so the first poll draws it

        seen: list[str] = []

        def finished():
            # The page's one poll, as htmx sends it: each changed card comes back out of band.
            nonlocal shown
            r = http.post(
                "/live/",
                data={"live": f"{card}:{shown}:card"},
                headers={"HX-Request": "true", "X-CSRFToken": http.cookies["csrftoken"]},
            )
            if r.status_code == 204:  # nothing changed
                return None
            seen.append(re.search(r'class="badge badge-(\w+)"', r.text)[1])
            if token := re.search(rf'value="{card}:([^:"]+):card"', r.text):
                shown = token[1]
            return r if r.status_code == 286 else None

        final = wait_for(finished, timeout=60, interval=0.3, message="the card to finish")
        assert "Finished" in final.text and "<video" in final.text
        gen.refresh_from_db()
        assert gen.status == Status.SUCCEEDED, gen.error_message
        assert seen[-1] == "succeeded" and len(seen) >= 2

        # The simulator got one create with exactly our parameters, and pushed callbacks.
        assert sim.create_count(gen.external_task_id) == 1
        (task,) = sim.tasks()
        assert task["task_status"] == "succeed"
        assert sim.callbacks_sent(), "the simulator pushed progress to the callback URL"
        assert all(url.startswith(live_server.url) for url, _ in sim.callbacks_sent())

        # The clip is ours now, served with Range support.
        assert gen.video.storage.exists(gen.video.name)
        clip = http.get(f"/g/{gen.public_id}/video.mp4", headers={"Range": "bytes=0-99"})
        assert clip.status_code == 206 and len(clip.content) == 100
        assert clip.headers["content-type"] == "video/mp4"

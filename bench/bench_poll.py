"""One poll per page (issue 18): what an open studio page asks of the server.

1. Requests per second from one open page in Debian's Chromium with 1, 20 and 100 live
   cards (My generations, scrolled until all are in: the studio shows the latest 24),
   counted over WINDOW seconds. Target: the same for all three, one request per
   2 s period (before: one request per live card per period, 6 in 12 s with one live card
   and 72 with twelve).
2. The server time of that poll with 100 live cards (none changed, what most polls find)
   against an empty view answering 204 behind the same middleware (session, login, CSRF,
   CSP, htmx). Target: ≤ 2×.

The measuring runs in a child process with its own throwaway database and media, in
production mode (DEBUG=0, collected static files); the browser talks to a server thread on
127.0.0.1 in that child. No cluster runs, so the cards stay live.

    .venv/bin/python -m bench poll
"""

import json
import statistics
import sys
import threading
import time
from urllib.parse import urlencode

from django.http import HttpResponse
from django.urls import include, path

from bench.child import measure_in_child, production_env

LIVE_COUNTS = (1, 20, 100)
WINDOW = 12.0  # seconds each page is watched
PERIOD = 2.0  # the page's poll period (templates/generations/_live_poll.html)
REQUESTS, WARMUP, ROUNDS = 200, 20, 5
POLL_VS_EMPTY_TARGET = 2.0


def empty(request) -> HttpResponse:
    """The least a logged-in poll can cost: the middleware, then 204."""
    return HttpResponse(status=204)


def __getattr__(name: str):
    """The child's ROOT_URLCONF: the site plus the empty view (built on first use, once
    Django is set up)."""
    if name == "urlpatterns":
        return [path("bench/empty/", empty), path("", include("kling_site.urls"))]
    raise AttributeError(name)


def _member_with_live_cards(username: str, live: int):
    from django.contrib.auth import get_user_model

    from generations.models import Generation

    member = get_user_model().objects.create_user(username, password="unused-bench-pass")
    Generation.objects.bulk_create(
        Generation(
            owner=member,
            prompt=f"A heron lands on a misty pond, take {i}",
            model_name="kling-v1",
            mode="std",
            duration="5",
            aspect_ratio="16:9",
            status="processing",
            remote_status="processing",
        )
        for i in range(live)
    )
    return member


def _server_time(client, url: str, headers: dict, data: dict) -> float:
    """Median seconds of one POST of `data` (the poll's body), over ROUNDS × REQUESTS.
    Form-encoded, as htmx sends it (the test client would send multipart, several times
    dearer to parse)."""
    body = urlencode(data, doseq=True)
    form = "application/x-www-form-urlencoded"
    times = []
    for _ in range(ROUNDS):
        for _ in range(WARMUP):
            client.post(url, body, content_type=form, headers=headers)
        for _ in range(REQUESTS):
            start = time.perf_counter()
            response = client.post(url, body, content_type=form, headers=headers)
            times.append(time.perf_counter() - start)
        assert response.status_code == 204, (url, response.status_code)
    return statistics.median(times)


def _serve() -> tuple[str, object]:
    """The site on a free port of 127.0.0.1, in a thread of this process."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def _requests_per_second(base_url: str, sessions: dict[int, str]) -> dict[int, dict]:
    """Open the studio page as each member and count what it asks the server for."""
    from playwright.sync_api import sync_playwright

    from tests.stack import CHROMIUM, CHROMIUM_ARGS

    found = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for live, session in sessions.items():
            context = browser.new_context(base_url=base_url)
            context.add_cookies([{"name": "sessionid", "value": session, "url": base_url}])
            page = context.new_page()
            polls: list[float] = []
            page.on(
                "request",
                lambda r, polls=polls: (
                    polls.append(time.monotonic())
                    if "/live/" in r.url or "/status/" in r.url
                    else None
                ),
            )
            # My generations, scrolled until every card is in (24 a page, more as it scrolls).
            page.goto("/mine/")
            while page.locator("article.gen").count() < live:
                page.locator("#gallery-cards .more").scroll_into_view_if_needed()
                page.wait_for_timeout(300)
            assert page.locator("input[name=live]").count() == live
            start = time.monotonic()
            page.wait_for_timeout(WINDOW * 1000)
            seen = [t for t in polls if t >= start]
            found[live] = {"requests": len(seen), "per_second": len(seen) / WINDOW}
            context.close()
        browser.close()
    return found


def measure() -> dict:
    """In the child: set up, seed, measure. Returns the figures."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from generations.models import Generation

    settings.ROOT_URLCONF = "bench.bench_poll"
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)

    # Server time: the poll of a page with 100 live cards, none changed.
    member = _member_with_live_cards("bench100", 100)
    client = Client()
    client.force_login(member)
    # The tokens of My generations scrolled to its 100th card, as the browser sends them.
    values = [f"{g.public_id.hex}:{g.live_version}:pick" for g in Generation.objects.all()]
    assert len(values) == 100, len(values)
    htmx = {"HX-Request": "true"}
    body = {"live": " ".join(values)}  # one field, as studio.js sends them
    poll_s = _server_time(client, "/live/", htmx, body)
    empty_s = _server_time(client, "/bench/empty/", htmx, body)

    # Requests per second from an open page with 1, 20 and 100 live cards.
    sessions = {}
    for live in LIVE_COUNTS:
        someone = member if live == 100 else _member_with_live_cards(f"bench{live}", live)
        browser_client = Client()
        browser_client.force_login(someone)
        sessions[live] = browser_client.cookies["sessionid"].value
    base_url, server = _serve()
    try:
        rates = _requests_per_second(base_url, sessions)
    finally:
        server.shutdown()
    return {"poll_ms": poll_s * 1000, "empty_ms": empty_s * 1000, "rates": rates}


def run() -> bool:
    env = production_env(
        "kling-bench-poll-",
        DJANGO_ALLOWED_HOSTS="testserver,127.0.0.1",
        # Sync Playwright runs an event loop in the thread that seeded the database.
        DJANGO_ALLOW_ASYNC_UNSAFE="true",
    )
    measured = measure_in_child("bench.bench_poll", env)
    if measured is None:
        return False
    ok = True
    target = 1 / PERIOD
    print(f"| live cards on the page | requests in {WINDOW:.0f} s | per second | target |")
    print("| ---: | ---: | ---: | --- |")
    for live, rate in sorted(measured["rates"].items(), key=lambda kv: int(kv[0])):
        # One per period, give or take the one at the window's edge.
        passed = abs(rate["requests"] - WINDOW / PERIOD) <= 1
        ok &= passed
        print(
            f"| {live} | {rate['requests']} | {rate['per_second']:.2f} | "
            f"{target:.2f} {'✓' if passed else '✗ MISSED'} |"
        )
    poll_ms, empty_ms = measured["poll_ms"], measured["empty_ms"]
    ratio = poll_ms / empty_ms
    passed = ratio <= POLL_VS_EMPTY_TARGET
    ok &= passed
    print(
        f"\npoll of 100 live cards vs an empty 204 view: {poll_ms:.2f} / {empty_ms:.2f} ms = "
        f"{ratio:.2f}× (target ≤ {POLL_VS_EMPTY_TARGET}×) {'✓' if passed else '✗ MISSED'}"
    )
    return ok


if __name__ == "__main__" and sys.argv[1:] == ["--measure"]:
    print(json.dumps(measure()))
elif __name__ == "__main__":
    sys.exit(0 if run() else 1)

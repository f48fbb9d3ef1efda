"""Pages with 10,000 generations versus 100: the team gallery, My generations, the usage page
and the page's one poll, through Django's test client and the full middleware stack, with
the number of queries each makes.

The usage page sums the month, so it grows with the month's jobs: it has no ratio target here,
and is compared with its own time before a change (docs/benchmarks.md, issue 20).

Targets (issue 4): each page takes ≤ 1.3× the time with 10,000 generations as with 100 (with
comments, ratings and review states on a share of them, issue 11); the page's poll about an
unchanged card takes ≤ 1.5× a bare view behind the same middleware (session, login, CSRF,
CSP, htmx), so the poll itself adds little to what every request pays anyway.

The measuring runs in a child process with its own throwaway database and media
(KLING_VAR_DIR), in production mode (DEBUG=0, collected static files), so it never touches
a real database and other benchmarks' settings can't leak in.

    .venv/bin/python -m bench pages
"""

import json
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

from django.http import HttpResponse
from django.urls import include, path

from bench.child import measure_in_child, production_env

SMALL, LARGE = 100, 10_000
MINE_SHARE = 0.3  # the member's share: a full first page of their own even at 100
ROUNDS = 10  # the two databases take turns, so a busy moment on the machine hits both
REQUESTS = 40  # per URL, database and round: medians of 400 requests each
WARMUP = 5  # per URL, database and round
PAGE_RATIO_TARGET = 1.3
STATUS_VS_BARE_TARGET = 1.5


def bare(request) -> HttpResponse:
    """The least a logged-in request costs here: the middleware (LoginRequiredMiddleware
    guards this view too) and nothing else."""
    return HttpResponse("ok")


def __getattr__(name: str):
    """This module is the child's ROOT_URLCONF: the site plus the bare view. Built on first
    use, because including the site's URLs needs Django set up (bench/__main__ imports this
    module before that)."""
    if name == "urlpatterns":
        return [
            path("bench/bare/", bare),
            path("", include("kling_site.urls")),
        ]
    raise AttributeError(name)


def _timed(client, url: str, headers: dict | None, data=None) -> tuple[list[float], int]:
    """Seconds of REQUESTS GETs (POSTs of `data` when given), and how many cards the answer
    holds."""

    def request():
        if data is not None:
            return client.post(url, data, headers=headers or {})
        return client.get(url, headers=headers or {})

    for _ in range(WARMUP):
        response = request()
        assert response.status_code in (200, 204, 286), (url, response.status_code)
    cards = response.content.count(b'<article class="card gen')
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        request()
        times.append(time.perf_counter() - start)
    return times, cards


def _queries(client, url: str, headers: dict | None, data=None) -> int:
    """How many queries one request makes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        if data is not None:
            client.post(url, data, headers=headers or {})
        else:
            client.get(url, headers=headers or {})
    return len(captured.captured_queries)


def _seed(total: int, user: str) -> None:
    from django.core.management import call_command

    mine = int(total * MINE_SHARE)
    with open(os.devnull, "w") as quiet:
        call_command("seed_demo", generations=mine, user=user, seed=total, stdout=quiet)
        call_command("seed_demo", generations=total - mine, seed=total + 1, stdout=quiet)
    _seed_review(user)


def _seed_review(user: str) -> None:
    """Team review on the clips seeded so far and not yet reviewed: a comment on every third,
    a rating on every second, a review state on every fourth, with the tallies on the row
    as review/notes.py keeps them (issue 11: as fast with comments and ratings as without)."""
    from django.contrib.auth import get_user_model

    from generations.models import Comment, Generation, Rating, Review, ReviewState

    member = get_user_model().objects.get(username=user)
    todo = list(
        Generation.objects.filter(status="succeeded", rating_count=0, comment_count=0)
        .exclude(review_state=ReviewState.APPROVED)
        .exclude(review_state=ReviewState.CHANGES)
        .only("pk")
    )
    comments, ratings, reviews = [], [], []
    for i, gen in enumerate(todo):
        if i % 3 == 0:
            comments.append(Comment(generation=gen, author=member, body=f"Note {i}", at_seconds=1))
            gen.comment_count = 1
        if i % 2 == 0:
            ratings.append(Rating(generation=gen, member=member, stars=1 + i % 5))
            gen.rating_avg, gen.rating_count = float(1 + i % 5), 1
        if i % 4 == 0:
            state = ReviewState.APPROVED if i % 8 == 0 else ReviewState.CHANGES
            reviews.append(Review(generation=gen, reviewer=member, state=state))
            gen.review_state = state
    Comment.objects.bulk_create(comments, batch_size=500)
    Rating.objects.bulk_create(ratings, batch_size=500)
    Review.objects.bulk_create(reviews, batch_size=500)
    fields = ["comment_count", "rating_avg", "rating_count", "review_state"]
    Generation.objects.bulk_update(todo, fields, batch_size=500)


def measure() -> dict:
    """In the child: set up, seed, measure. Returns the figures."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from generations.models import Generation

    # No setup_test_environment(): it instruments every template render for the test
    # client (copying contexts), a cost production doesn't pay. "testserver" is let in
    # through DJANGO_ALLOWED_HOSTS instead.
    settings.ROOT_URLCONF = "bench.bench_pages"
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)

    from django.contrib.auth import get_user_model

    # Staff, so the usage page answers too (the other pages show the same cards to staff).
    member = get_user_model().objects.create_user(
        "bench", password="unused-bench-pass", is_staff=True
    )
    _seed(SMALL, "bench")
    # One job in flight: the card a studio page polls. No cluster runs here.
    polled = Generation.objects.create(
        owner=member,
        prompt="A heron lands on a misty pond",
        model_name="kling-v1",
        mode="std",
        duration="5",
        aspect_ratio="16:9",
        status="processing",
    )
    client = Client()
    client.force_login(member)
    pages = {
        "team gallery": "/gallery/",
        "my generations": "/mine/",
        "team gallery, one member": "/gallery/?member=ana",
        "my generations, failed only": "/mine/?state=failed",
        "team gallery, search 'fox'": "/gallery/?q=fox",
        "team gallery, approved only": "/gallery/?review=approved",
        "team gallery, rated 4+": "/gallery/?min_rating=4",
        "team gallery, has comments": "/gallery/?commented=on",
        "team gallery, highest rated": "/gallery/?order=rating",
        "usage page": "/usage/",
        # The page's one poll sends each live card's version: most find nothing new (204).
        "page poll": "/live/",
        "page poll, card changed": "/live/",
        "bare view": "/bench/bare/",
    }
    # The small database is a snapshot taken now; the large one grows on from it. Same
    # member, session and polled card in both.
    small_db = Path(settings.DATABASES["default"]["NAME"]).with_name("small.sqlite3")
    target = sqlite3.connect(small_db)
    connection.ensure_connection()
    connection.connection.backup(target)
    target.close()
    _seed(LARGE - SMALL, "bench")
    databases = {str(SMALL): small_db, str(LARGE): Path(settings.DATABASES["default"]["NAME"])}

    htmx = {"HX-Request": "true"}
    times: dict[str, dict[str, list[float]]] = {n: {s: [] for s in databases} for n in pages}
    cards: dict[str, dict[str, int]] = {name: {} for name in pages}
    queries: dict[str, dict[str, int]] = {name: {} for name in pages}
    token = f"{polled.public_id.hex}:{{}}:card"
    posts = {
        "page poll": {"live": token.format(polled.live_version)},
        "page poll, card changed": {"live": token.format("old")},
    }
    for _round in range(ROUNDS):
        for size, db in databases.items():
            connection.close()
            connection.settings_dict["NAME"] = str(db)
            assert Generation.objects.count() == int(size) + 1
            for name, url in pages.items():
                headers = htmx if name.startswith("page poll") else None
                sample, cards[name][size] = _timed(client, url, headers, posts.get(name))
                times[name][size] += sample
                if _round == 0:
                    queries[name][size] = _queries(client, url, headers, posts.get(name))
    figures = {
        name: {size: statistics.median(sample) * 1000 for size, sample in by_size.items()}
        for name, by_size in times.items()
    }
    return {"ms": figures, "cards": cards, "queries": queries}


def run() -> bool:
    measured = measure_in_child("bench.bench_pages", production_env("kling-bench-pages-"))
    if measured is None:
        return False
    figures, cards, queries = measured["ms"], measured["cards"], measured["queries"]
    ok = True
    print(
        f"| request | {SMALL:,} generations | {LARGE:,} generations | ratio | queries "
        f"({SMALL:,} / {LARGE:,}) | target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, by_size in figures.items():
        small, large = by_size[str(SMALL)], by_size[str(LARGE)]
        n_small, n_large = cards[name][str(SMALL)], cards[name][str(LARGE)]
        label = name
        if n_small != n_large:
            # A filter matching 3 of 100 renders 3 cards, then 24 of 10,000: the ratio
            # then measures page size, not table size. Shown for information.
            label = f"{name} ({n_small} vs {n_large} cards)"
        ratio = large / small
        target = ""
        if name in (
            "team gallery",
            "my generations",
            "page poll",
            "team gallery, highest rated",
        ):
            target = f"≤ {PAGE_RATIO_TARGET}×"
            passed = ratio <= PAGE_RATIO_TARGET
            ok &= passed
            target += " ✓" if passed else " ✗ MISSED"
        counted = f"{queries[name][str(SMALL)]} / {queries[name][str(LARGE)]}"
        print(
            f"| {label} | {small:.2f} ms | {large:.2f} ms | {ratio:.2f}× | {counted} | {target} |"
        )
    status = figures["page poll"][str(LARGE)]
    bare_ms = figures["bare view"][str(LARGE)]
    vs_bare = status / bare_ms
    passed = vs_bare <= STATUS_VS_BARE_TARGET
    ok &= passed
    print(
        f"\npage poll (an unchanged card) vs bare view (10,000): {status:.2f} / {bare_ms:.2f} ms "
        "= "
        f"{vs_bare:.2f}× (target ≤ {STATUS_VS_BARE_TARGET}×) {'✓' if passed else '✗ MISSED'}"
    )
    return ok


if __name__ == "__main__" and sys.argv[1:] == ["--measure"]:
    print(json.dumps(measure()))
elif __name__ == "__main__":
    sys.exit(0 if run() else 1)

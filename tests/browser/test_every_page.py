"""Every member and admin page, light and dark, desktop and phone: nothing wider than the
window, no console errors, text that stands out from what is behind it, and no axe-core
violation (axe comes from the npm registry, `npm ci` at the repo root; the tests inject it,
the product never serves it).

Set KLING_SHOTS=/some/dir to keep a screenshot of each (the first screen), to look at."""

import os
import re
import tempfile
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import expect

from generations.lifecycle.archive import extract_poster
from generations.models import Board, Price, Status
from generations.review import boards
from generations.review import notes as review
from generations.simulator.server import clip_bytes
from tests.browser.test_gallery_journeys import log_in
from tests.conftest import IN_CI
from tests.factories import make_generation
from tests.stack import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

# Every visible element with its own text: its colour against the first background behind
# it that is mostly opaque, as a WCAG contrast ratio. Returns those under `minimum`.
LOW_CONTRAST_JS = """
(minimum) => {
  // Computed colours come as rgb()/rgba() (0-255) or, from color-mix(), color(srgb …) (0-1).
  const rgba = (s) => {
    const m = s.match(/(rgba?|color)\\((?:srgb )?([^)]+)\\)/);
    if (!m) return null;
    const p = m[2].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    const k = m[1] === "color" ? 255 : 1;
    return { r: p[0] * k, g: p[1] * k, b: p[2] * k, a: p.length > 3 ? p[3] : 1 };
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const lum = ({ r, g, b }) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const behind = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const bg = rgba(getComputedStyle(node).backgroundColor);
      if (bg && bg.a >= 0.5) return bg;
      if (node.matches("video, img, .tile-open, .gen-media")) return { r: 0, g: 0, b: 0, a: 1 };
    }
    const page = rgba(getComputedStyle(document.documentElement).backgroundColor);
    return page && page.a >= 0.5 ? page : { r: 255, g: 255, b: 255, a: 1 };
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const seen = { opacityProperty: true, visibilityProperty: true };
    if (!own || !el.checkVisibility(seen)) continue;
    if (el.closest(".sr-only, .visually-hidden, option, script, style")) continue;
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) continue;
    const fg = rgba(getComputedStyle(el).color);
    const bg = behind(el);
    const [a, b] = [lum(fg) + 0.05, lum(bg) + 0.05];
    const ratio = Math.max(a, b) / Math.min(a, b);
    const text = el.textContent.trim().slice(0, 40);
    const name = `${el.tagName.toLowerCase()}.${el.className}`;
    if (ratio < minimum) bad.push(`${name} "${text}" ${ratio.toFixed(2)}`);
  }
  return bad;
}
"""


WIDEST_JS = """
(limit) => [...document.querySelectorAll("body *")]
  .filter((el) => el.getBoundingClientRect().right > limit + 1 && el.checkVisibility())
  .filter((el) => ![...el.children].some((c) => c.getBoundingClientRect().right > limit + 1))
  .slice(0, 5)
  .map((el) => `${el.tagName.toLowerCase()}.${el.className}: ${el.getBoundingClientRect().right}`)
"""

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

# WCAG 2.x A and AA, and axe's best practices. No rule is turned off.
AXE_JS = """
async () => {
  const result = await axe.run(document, {
    runOnly: {
      type: "tag",
      values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    resultTypes: ["violations"],
  });
  const where = (n) => n.target.join(" ") +
    (n.failureSummary ? ` [${n.failureSummary.replace(/\\s+/g, " ").slice(0, 160)}]` : "");
  return result.violations.map((v) =>
    `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map(where).join("; ")}`);
}
"""


@cache
def _axe_source() -> str:
    return AXE.read_text()


def axe_violations(page) -> list[str]:
    """axe-core's violations on the page as it is now (injected from node_modules)."""
    if not AXE.exists():
        if IN_CI:
            raise AssertionError(f"{AXE} is missing: `npm ci` at the repo root installs it")
        pytest.skip("axe-core is not installed (npm ci at the repo root)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated rather than add_script_tag: the page's CSP (script-src 'self') refuses an
        # inline script, and bypassing it would hide the product's own CSP errors.
        page.evaluate(_axe_source())
    return page.evaluate(AXE_JS)


_posters: dict[str, bytes] = {}


def _poster(shape: str) -> bytes:
    """A real poster frame of the simulator's clip of this shape (made once per run)."""
    if shape not in _posters:
        with tempfile.TemporaryDirectory() as folder:
            video, poster = Path(folder) / "clip.mp4", Path(folder) / "poster.jpg"
            video.write_bytes(clip_bytes("5", shape))
            extract_poster(video, poster)
            _posters[shape] = poster.read_bytes()
    return _posters[shape]


def _seed(root, bob) -> dict[str, str]:
    Price.objects.update_or_create(
        model_name="kling-v1", mode="std", duration="5", defaults={"usd": "0.14", "units": "1"}
    )
    clips = {}
    for shape, prompt in [
        ("16:9", "A red fox trots through fresh snow at dawn, soft golden light, cinematic"),
        ("9:16", "A paper boat drifts down a rainy neon street at night, reflections everywhere"),
        ("1:1", "A bowl of ramen, steam rising, macro"),
    ]:
        gen = make_generation(
            root,
            prompt=prompt,
            aspect_ratio=shape,
            status=Status.SUCCEEDED,
            task_id=f"t-{shape}",
            submitted_at=timezone.now() - timedelta(minutes=3),
            finished_at=timezone.now(),
            price_usd="0.14",
            video_duration=5.1,
        )
        gen.video.save("clip.mp4", ContentFile(clip_bytes("5", shape)), save=False)
        gen.poster.save("poster.jpg", ContentFile(_poster(shape)), save=False)
        gen.save()
        clips[shape] = gen
    make_generation(
        root,
        prompt="A crowded stadium cheering, confetti everywhere",
        status=Status.FAILED,
        error_message="The prompt was refused by the content policy.",
        error_code="1301",
    )
    make_generation(
        root,
        prompt="Clouds over a ridge",
        status=Status.PROCESSING,
        task_id="t-p",
        submitted_at=timezone.now(),
    )
    make_generation(root, prompt="A heron waits", status=Status.QUEUED)
    fox = clips["16:9"]
    review.add_comment(fox, bob, "Lovely light at @root the start", 1.5)
    own = review.add_comment(fox, root, "Keep the second half", 2.0)
    review.set_rating(fox, bob, 4)
    review.set_review(fox, bob, "approved", "Ship it")
    board = Board.objects.create(owner=root, name="Picks for the launch")
    boards.add_to_board(board, fox, root)
    boards.add_to_board(board, clips["9:16"], root)
    return {
        "studio": "/",
        "mine": "/mine/",
        "gallery": "/gallery/",
        "gallery-filtered": "/gallery/?q=fox&min_rating=3",
        "viewer-mine": f"/mine/view/{clips['9:16'].public_id}/",
        "viewer-gallery": f"/gallery/view/{fox.public_id}/",
        "detail": f"/g/{fox.public_id}/",
        "detail-square": f"/g/{clips['1:1'].public_id}/",
        "comment-edit": f"/g/{fox.public_id}/comments/{own.pk}/edit/",
        "delete-confirm": f"/g/{fox.public_id}/delete/",
        "boards": "/boards/",
        "board": f"/boards/{board.public_id}/",
        "clip-boards": f"/g/{fox.public_id}/boards/",
        "compare": f"/compare/?g={fox.public_id}&g={clips['9:16'].public_id}",
        "inbox": "/inbox/",
        "prices": "/prices/",
        "usage": "/usage/",
        "admin": "/admin/",
        "admin-generations": "/admin/generations/generation/",
        "admin-generation": f"/admin/generations/generation/{fox.pk}/change/",
        "admin-keys": "/admin/generations/apikey/",
        "admin-prices": "/admin/generations/price/",
        "admin-price": f"/admin/generations/price/{Price.objects.first().pk}/change/",
        "admin-audit": "/admin/generations/auditevent/",
        "admin-ledger": "/admin/generations/ledgerentry/",
        "admin-users": "/admin/auth/user/",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_page_fits_and_reads(new_page, live_server, django_user_model, bob, scheme, size):
    root = django_user_model.objects.create_superuser("root", password="root-pass")
    pages = _seed(root, bob)
    shots = Path(os.environ["KLING_SHOTS"]) if os.environ.get("KLING_SHOTS") else None
    page = new_page(
        viewport=SIZES[size],
        color_scheme=scheme,
        is_mobile=size == "phone",
        has_touch=size == "phone",
    )
    errors: list[str] = []
    page.on(
        "console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    problems: list[str] = []

    def check(name: str) -> None:
        page.wait_for_load_state("load")
        width = page.evaluate("document.scrollingElement.scrollWidth")
        inner = page.evaluate("innerWidth")
        # A phone widens its layout viewport (zooming out) to fit content wider than the
        # screen, so innerWidth alone would hide that overflow.
        if width > inner or inner > SIZES[size]["width"]:
            wide = page.evaluate(WIDEST_JS, SIZES[size]["width"])
            problems.append(f"{name}: {width} px wide in a {inner} px window: {wide}")
        for line in page.evaluate(LOW_CONTRAST_JS, 3):
            problems.append(f"{name}: low contrast {line}")
        for line in axe_violations(page):
            problems.append(f"{name}: axe {line}")
        body = page.evaluate("[document.body, getComputedStyle(document.body)][1].color")
        assert body and page.evaluate("getComputedStyle(document.body).backgroundColor") != body
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shots / f"{size}-{scheme}-{name}.png")

    page.goto(f"{live_server.url}/accounts/login/")
    check("login")
    log_in(page, live_server.url, "root")
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("body")).to_be_visible()
        check(name)
    # The selection bar, as it shows with clips ticked.
    page.goto(f"{live_server.url}/mine/")
    page.locator("input.pick").nth(0).check()
    page.locator("input.pick").nth(2).click(modifiers=["Shift"])
    expect(page.locator("#bulk-form")).to_contain_text("3 selected")
    check("mine-selected")
    # A tile's words and actions, as keyboard focus (or hover) shows them over its picture,
    # and "Add to board" in the gallery's dialog.
    page.goto(f"{live_server.url}/gallery/")
    page.locator("#gallery-cards .tile-prompt a").first.focus()
    expect(page.locator("#gallery-cards .tile-info").first).to_have_css("opacity", "1")
    check("gallery-tile-focused")
    page.locator("#gallery-cards [data-board-dialog]").first.click()
    expect(page.locator("#board-dialog")).to_be_visible()
    check("gallery-add-to-board")
    assert problems == [], "\n".join(problems)
    assert [e for e in errors if not re.search(r"favicon", e)] == []

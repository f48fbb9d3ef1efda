"""Regenerate the README screenshots from a running `make demo` (http://127.0.0.1:8000).

.venv/bin/python docs/screenshots.py [--base http://127.0.0.1:8000]

For full galleries, seed the demo's database first (the demo's clips are real, made by the
simulator; seeded ones are ffmpeg patterns):

KLING_VAR_DIR=var/demo .venv/bin/python manage.py seed_demo --generations 40 --user demo
KLING_VAR_DIR=var/demo .venv/bin/python manage.py seed_demo --generations 30
"""

import argparse
import sys
import time
from contextlib import suppress
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

# Run as a script from anywhere: the repository's root holds tests/stack.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.stack import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OUT = Path(__file__).parent / "img"
PROMPTS = [
    "A red fox trots through fresh snow at dawn, soft golden light, cinematic",
    "A paper boat drifts down a rainy neon street at night, reflections",
    "[fail] A crowded stadium cheering, confetti everywhere",
    "[slow] Time-lapse of clouds rolling over a mountain ridge",
]


def settle(page) -> None:
    """Posters load lazily: wait until those on screen are in."""
    with suppress(PlaywrightTimeout):  # pages that poll or stream may never be idle
        page.wait_for_load_state("networkidle", timeout=5000)
    page.wait_for_timeout(300)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--scheme", choices=["light", "dark"], default="light")
    parser.add_argument("--only-pages", action="store_true", help="Skip making new clips.")
    args = parser.parse_args()
    base = args.base
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860}, color_scheme=args.scheme)
        page.goto(f"{base}/accounts/login/")
        settle(page)
        page.screenshot(path=OUT / "login.png")
        page.get_by_label("Username").fill("demo")
        page.get_by_label("Password").fill("kling-demo")
        page.get_by_role("button", name="Log in").click()
        if not args.only_pages:
            already = page.locator(".badge-succeeded").count()
            for prompt in PROMPTS:
                page.get_by_label("Prompt", exact=True).fill(prompt)
                page.get_by_role("button", name="Generate").click()
                page.wait_for_timeout(400)
            page.wait_for_timeout(2500)  # every card has polled once since it was made
            settle(page)
            page.screenshot(path=OUT / "studio-progress.png")
            deadline = time.monotonic() + 90
            while (
                time.monotonic() < deadline
                and page.locator(".badge-succeeded").count() < already + 2
            ):
                page.wait_for_timeout(1000)
            page.wait_for_timeout(1500)
        page.goto(f"{base}/")  # fresh page: no toasts, scrolled to the top
        page.wait_for_timeout(800)
        settle(page)
        page.screenshot(path=OUT / "studio.png")
        page.goto(f"{base}/gallery/")
        page.locator(".gallery-tools").evaluate("el => window.scrollTo(0, el.offsetTop - 16)")
        page.wait_for_timeout(600)
        settle(page)
        page.locator("#gallery-cards article.tile").nth(1).hover()  # its words and actions
        page.wait_for_timeout(400)
        page.screenshot(path=OUT / "gallery.png")
        # The viewer, opened from the first tile.
        page.locator("#gallery-cards .tile-open").first.click()
        page.wait_for_selector("#viewer")
        page.wait_for_timeout(1200)
        settle(page)
        page.screenshot(path=OUT / "viewer.png")
        page.goto(f"{base}/gallery/")
        page.locator("article.gen .tile-prompt a").first.click()
        settle(page)
        page.screenshot(path=OUT / "detail.png")
        # Several clips ticked in My generations (a shift-click range), with the bar.
        page.goto(f"{base}/mine/?state=succeeded")
        page.evaluate("window.scrollTo(0, document.getElementById('gallery-cards').offsetTop - 16)")
        boxes = page.locator("input.pick")
        boxes.nth(1).check()
        boxes.nth(3).click(modifiers=["Shift"])
        page.locator("#bulk-form").wait_for(state="visible")
        page.mouse.move(0, 0)
        page.wait_for_timeout(400)
        settle(page)
        page.screenshot(path=OUT / "gallery-select.png")
        dark = browser.new_page(viewport={"width": 1280, "height": 860}, color_scheme="dark")
        dark.context.add_cookies(page.context.cookies())
        dark.goto(f"{base}/gallery/")
        settle(dark)
        dark.screenshot(path=OUT / "gallery-dark.png")
        phone = browser.new_page(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        phone.context.add_cookies(page.context.cookies())
        phone.goto(f"{base}/")
        settle(phone)
        phone.screenshot(path=OUT / "studio-phone.png")
        phone.goto(f"{base}/gallery/")
        settle(phone)
        phone.screenshot(path=OUT / "gallery-phone.png")
        browser.close()


if __name__ == "__main__":
    main()

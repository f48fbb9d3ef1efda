"""Regenerate the README screenshots from a running `make demo` (http://127.0.0.1:8000).

.venv/bin/python docs/screenshots.py [--base http://127.0.0.1:8000]
"""

import argparse
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).parent / "img"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PROMPTS = [
    "A red fox trots through fresh snow at dawn, soft golden light, cinematic",
    "A paper boat drifts down a rainy neon street at night, reflections",
    "[fail] A crowded stadium cheering, confetti everywhere",
    "[slow] Time-lapse of clouds rolling over a mountain ridge",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--scheme", choices=["light", "dark"], default="light")
    base = parser.parse_args().base
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(
            viewport={"width": 1280, "height": 860}, color_scheme=parser.parse_args().scheme
        )
        page.goto(f"{base}/accounts/login/")
        page.screenshot(path=OUT / "login.png")
        page.get_by_label("Username").fill("demo")
        page.get_by_label("Password").fill("kling-demo")
        page.get_by_role("button", name="Log in").click()
        already = page.locator(".badge-succeeded").count()
        for prompt in PROMPTS:
            page.get_by_label("Prompt", exact=True).fill(prompt)
            page.get_by_role("button", name="Generate").click()
            page.wait_for_timeout(400)
        page.screenshot(path=OUT / "studio-progress.png")
        deadline = time.monotonic() + 90
        while (
            time.monotonic() < deadline and page.locator(".badge-succeeded").count() < already + 2
        ):
            page.wait_for_timeout(1000)
        page.wait_for_timeout(1500)
        page.goto(f"{base}/")  # fresh page: no toasts, scrolled to the top
        page.wait_for_timeout(800)
        page.screenshot(path=OUT / "studio.png")
        page.goto(f"{base}/gallery/")
        page.screenshot(path=OUT / "gallery.png")
        page.locator("article.gen .prompt a").first.click()
        page.screenshot(path=OUT / "detail.png")
        dark = browser.new_page(viewport={"width": 1280, "height": 860}, color_scheme="dark")
        dark.context.add_cookies(page.context.cookies())
        dark.goto(f"{base}/gallery/")
        dark.screenshot(path=OUT / "gallery-dark.png")
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.context.add_cookies(page.context.cookies())
        phone.goto(f"{base}/")
        phone.screenshot(path=OUT / "studio-phone.png")
        browser.close()


if __name__ == "__main__":
    main()

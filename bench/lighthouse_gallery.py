"""Lighthouse's mobile preset on the team gallery (issue 19): performance and CLS, the median
of a few runs. A measuring tool run by hand against a running demo, not a test (`make bench`
doesn't run it: its name has no bench_ prefix).

    make demo PORT=8021   # in another terminal, then seed it as docs/screenshots.py says
    .venv/bin/python bench/lighthouse_gallery.py --base http://127.0.0.1:8021

It installs Lighthouse (from the npm registry, pinned) into ~/.cache/kling-studio/lighthouse
the first time, logs in as the demo member through the login form, and hands Lighthouse the
session cookie as an extra header. Chromium is Debian's, with the suite's headless flags.
Target: CLS under 0.1 and performance at least 95.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

LIGHTHOUSE = "lighthouse@13.5.0"
HOME = Path.home() / ".cache" / "kling-studio" / "lighthouse"
CHROME_FLAGS = "--headless --no-sandbox --disable-gpu"


def lighthouse_bin() -> Path:
    binary = HOME / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(HOME), "--no-audit", "--no-fund", LIGHTHOUSE],
            check=True,
        )
    return binary


def session_cookie(base: str, username: str, password: str) -> str:
    """The demo member's session, through the login form (CSRF token and all)."""
    with httpx.Client(base_url=base) as client:
        client.get("/accounts/login/").raise_for_status()
        response = client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
        )
        if response.status_code != 302 or "sessionid" not in client.cookies:
            sys.exit(f"Could not log in as {username} at {base}")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


METRICS = {
    "first-contentful-paint": "FCP",
    "largest-contentful-paint": "LCP",
    "total-blocking-time": "TBT",
    "speed-index": "SI",
}


def one_run(binary: Path, url: str, cookie: str) -> tuple[float, float, str]:
    """(performance score 0-100, CLS, the other metrics as text) of one run of the mobile
    preset (Lighthouse's default: a mid-range phone, simulated slow 4G and CPU)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run(
            [
                str(binary),
                url,
                "--only-categories=performance",
                "--output=json",
                f"--output-path={report}",
                f"--chrome-flags={CHROME_FLAGS}",
                f"--extra-headers={json.dumps({'Cookie': cookie})}",
                "--quiet",
            ],
            check=True,
            env={**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")},
        )
        data = json.loads(report.read_text())
    if data["finalDisplayedUrl"] != url:
        sys.exit(f"Lighthouse ended at {data['finalDisplayedUrl']}, not {url} (logged out?)")
    score = data["categories"]["performance"]["score"] * 100
    audits = data["audits"]
    others = ", ".join(f"{name} {audits[key]['displayValue']}" for key, name in METRICS.items())
    return score, audits["cumulative-layout-shift"]["numericValue"], others


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--path", default="/gallery/")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="kling-demo")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binary = lighthouse_bin()
    cookie = session_cookie(args.base, args.user, args.password)
    url = args.base + args.path
    runs = []
    for n in range(1, args.runs + 1):
        score, cls, others = one_run(binary, url, cookie)
        runs.append((score, cls))
        print(f"run {n}: performance {score:.0f}, CLS {cls:.3f} ({others})", flush=True)
    score = statistics.median(s for s, _ in runs)
    cls = statistics.median(c for _, c in runs)
    print(f"median of {len(runs)}: performance {score:.0f}, CLS {cls:.3f}")
    return 0 if score >= 95 and cls < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())

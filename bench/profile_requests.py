"""CPU per request, in one process and independent of the machine's load: the load bench's
database and members, each kind of request sent N times straight into the WSGI application
(the whole middleware stack, no HTTP server), timed with time.process_time().

    .venv/bin/python -m bench.profile_requests [N] [--profile KIND]

Not a benchmark module of its own (`python -m bench` doesn't run it): a tool for finding
where a request's CPU goes. `--profile KIND` prints cProfile's top functions for KIND (CPU
time) and keeps its statistics for pstats.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_load import ROOT, bench_database, environment, prepare

CHILD = r"""
import cProfile, io, json, pstats, sys, time
from urllib.parse import quote
import django
django.setup()
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections

members = json.load(open(sys.argv[1]))
n, profile = int(sys.argv[2]), sys.argv[3]
app = WSGIHandler()

def environ(member, path, query="", method="GET", body=b"", **headers):
    env = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
        "HTTP_COOKIE": f"sessionid={member['sessionid']}; csrftoken={member['csrftoken']}",
        "REMOTE_ADDR": "127.0.0.1",
    }
    env.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    return env

def call(env):
    status = []
    body = b"".join(app(env, lambda s, h, *a: status.append(s)))
    return int(status[0].split()[0]), body

pollers, submitters = members["pollers"], members["submitters"]
def poll(member, version):
    # The page's one poll about the member's live card, as htmx posts it.
    token = f"{member['card'].replace('-', '')}:{version}:card"
    env = environ(member, "/live/", method="POST", body=("live=" + quote(token)).encode(),
        **{"HX-Request": "true", "X-CSRFToken": member["csrftoken"]})
    env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"  # WSGI's own key, no HTTP_
    return env

kinds = {
    "page poll, unchanged": lambda i: poll(pollers[i % len(pollers)],
        pollers[i % len(pollers)]["version"]),
    "page poll, changed": lambda i: poll(pollers[i % len(pollers)], "old"),
    "studio page": lambda i: environ(submitters[i % len(submitters)], "/"),
}
out = {}
for name, make in kinds.items():
    for i in range(len(pollers)):  # warm: connections, templates, url caches, each session
        code, _ = call(make(i))
    times = []
    prof = cProfile.Profile(time.process_time) if profile == name else None
    start = time.process_time()
    for i in range(n):
        env = make(i)
        if prof: prof.enable()
        code, body = call(env)
        if prof: prof.disable()
    cpu = (time.process_time() - start) / n * 1000
    out[name] = {"status": code, "cpu_ms": round(cpu, 3), "bytes": len(body)}
    if prof:
        prof.dump_stats(sys.argv[4])
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(45)
        s2 = io.StringIO()
        pstats.Stats(prof, stream=s2).sort_stats("tottime").print_stats(30)
        print(s.getvalue(), s2.getvalue(), file=sys.stderr)
print(json.dumps(out))
"""


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv and argv[0].isdigit() else 300
    profile = argv[argv.index("--profile") + 1] if "--profile" in argv else ""
    var = Path(tempfile.mkdtemp(prefix="kling-profile-"))
    env = environment(var)
    try:
        sessions = prepare(env, var)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(sessions),
                str(n),
                profile,
                str(var / "profile.pstats"),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
    finally:
        bench_database(create=False)
        if not profile:
            shutil.rmtree(var, ignore_errors=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if profile:
        print(f"cProfile's statistics (CPU time): {var / 'profile.pstats'}")
    print(f"CPU per request, {n} of each, in-process (time.process_time):")
    for name, f in figures.items():
        print(f"  {name:28} {f['cpu_ms']:7.2f} ms  ({f['status']}, {f['bytes']} bytes)")
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

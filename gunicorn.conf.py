"""gunicorn's configuration for Kling Studio in production (DJANGO_DEBUG=0).

`make run` starts gunicorn with this file (manage.py run_studio); a systemd unit runs
`gunicorn -c gunicorn.conf.py` directly (docs/deploy.md). Everything that differs between
machines comes from the environment.
"""

import logging
import os

wsgi_app = "kling_site.wsgi:application"
# Behind the TLS proxy on the same machine; bind 0.0.0.0:PORT only if the proxy is elsewhere.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers with threads: a page is a few short queries, and a member's open card polls
# every 2 s, so threads keep a slow client (or a clip being streamed) from holding a whole
# process. WEB_CONCURRENCY is the name gunicorn and most platforms use for the process count.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A clip streamed to a slow phone can take minutes; a request that hangs past this is a bug.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# On SIGTERM, finish what is in progress for this long, then stop (run_studio and systemd
# wait 30 s before they kill).
graceful_timeout = 20
keepalive = 5
# Replace a worker now and then, so a slow leak can't grow for ever; jitter keeps them from
# all restarting at once. Not too often: 200 open cards make 100 polls a second, so 5000
# replaced each worker every two minutes, and each new worker spends a second or two of CPU
# importing the application and warming its caches, on the cores serving the requests.
max_requests = 50000
max_requests_jitter = 5000
# The proxy sets X-Forwarded-Proto (Django's SECURE_PROXY_SSL_HEADER reads it); gunicorn
# itself trusts forwarded headers only from these addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Errors to stderr, one access line per request to stdout (journald under systemd). The
# callback URL carries a per-generation token: every access line passes through the filter
# that redacts it (kling_site/logs.py) before any handler sees it.
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = "-"


def post_worker_init(worker) -> None:
    """Requests are logged in the workers: attach the redacting filter to their access logger."""
    from kling_site.logs import RedactCallbackTokens

    logging.getLogger("gunicorn.access").addFilter(RedactCallbackTokens())

"""Settings for a `qcluster` that stands for one machine of a fleet (tests/test_fleet.py and
the lifecycle bench's fleet scenario): the real settings, plus one log line per HTTP request
(httpx's own INFO lines, `HTTP Request: GET <url> "HTTP/1.1 200 OK"`), so each cluster's log
tells how many creates, reads and downloads that machine made.

Selected with DJANGO_SETTINGS_MODULE=tests.cluster_settings in the cluster's environment; the
test process itself keeps tests.settings.
"""

from kling_site.settings import *  # noqa: F403
from kling_site.settings import LOGGING

LOGGING["loggers"]["httpx"] = {"handlers": ["console"], "level": "INFO", "propagate": False}

"""Logging pieces the settings (and gunicorn.conf.py) plug in: a filter that redacts
callback tokens and the JSON formatter of LOG_FORMAT=json.

`RedactCallbackTokens` keeps Kling's callback tokens out of every log line it is attached
to. The token must be in the URL Kling calls (Kling signs nothing), so access logs would
otherwise print it: runserver's `django.server`, gunicorn's `gunicorn.access` (its `%(r)s`,
`%(U)s` and `%(q)s` atoms), and `django.request` for callbacks in the old path form.
"""

import json
import logging
import re
from datetime import UTC, datetime

# The query form (…/hooks/kling/<uuid>/?token=…) and the path form of callback URLs made
# before the token moved to the query (…/hooks/kling/<uuid>/<token>/), still in flight.
_TOKEN_IN_QUERY = re.compile(r"(?i)((?:^|[?&\s\"'])token=)[^&\s\"']+")
_TOKEN_IN_PATH = re.compile(r"(/hooks/kling/[0-9a-fA-F-]{32,36}/)(?!\?)[^/?\s\"']+")


def redact(text: str) -> str:
    text = _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)
    return _TOKEN_IN_PATH.sub(r"\1[redacted]", text)


class RedactCallbackTokens(logging.Filter):
    """Rewrites a record's message with callback tokens replaced by "[redacted]".

    Attach it to a logger (it then runs before every handler, pytest's included) or to a
    handler. In gunicorn.conf.py, for example::

        logconfig_dict = {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"redact": {"()": "kling_site.logs.RedactCallbackTokens"}},
            "loggers": {"gunicorn.access": {"filters": ["redact"]}, ...},
        }
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            # gunicorn's access record: a format of atoms (%(r)s, %(U)s, %(q)s) and a dict.
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to the formatter
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` (the
# lifecycle's generation, task_id, event…) and becomes a key of its JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# django.server's extras: the socket object is noise, the rest stays.
_DROPPED = {"request"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json): time, level, logger, message, and the
    record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in _DROPPED and not name.startswith("_"):
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)

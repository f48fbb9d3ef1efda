"""Logging pieces the settings (and gunicorn.conf.py) plug in.

`RedactCallbackTokens` keeps Kling's callback tokens out of every log line it is attached
to. The token must be in the URL Kling calls (Kling signs nothing), so access logs would
otherwise print it: runserver's `django.server`, gunicorn's `gunicorn.access` (its `%(r)s`,
`%(U)s` and `%(q)s` atoms), and `django.request` for callbacks in the old path form.
"""

import logging
import re

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

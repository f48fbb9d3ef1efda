"""The Kling client: the only code that speaks HTTP to CometAPI (Kling's video models).

No Django: httpx and the standard library. `errors` turns the contract's error table into
exceptions, `wire` parses Kling's task objects, `client` makes the calls (and downloads
clips safely), `capabilities` knows the models, modes, durations and what each accepts.
The contract is ../shared/docs/cometapi-kling.md.
"""

from .client import (
    DEFAULT_BASE_URL,
    MAX_DOWNLOAD_REDIRECTS,
    TEXT2VIDEO_PATH,
    CometAPIClient,
    resolve_host,
)
from .errors import (
    CometAPIError,
    ContentRejected,
    KeyRejected,
    MalformedTask,
    RateLimited,
    RequestRejected,
    ResultExpired,
    TaskNotFound,
    UnexpectedResponse,
    UpstreamUnavailable,
)
from .wire import TERMINAL_STATUSES, RemoteTask, parse_callback

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_DOWNLOAD_REDIRECTS",
    "TERMINAL_STATUSES",
    "TEXT2VIDEO_PATH",
    "CometAPIClient",
    "CometAPIError",
    "ContentRejected",
    "KeyRejected",
    "MalformedTask",
    "RateLimited",
    "RemoteTask",
    "RequestRejected",
    "ResultExpired",
    "TaskNotFound",
    "UnexpectedResponse",
    "UpstreamUnavailable",
    "parse_callback",
    "resolve_host",
]

"""Kling Studio settings: one file, driven by environment variables.

Every variable has a default that needs nothing, so a fresh clone runs on SQLite with media on
local disk. Production mode (DJANGO_DEBUG=0) refuses to start without real secrets.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """A variable, or the contents of the file named by NAME_FILE (for Docker/K8s secrets)."""
    if path := os.environ.get(f"{name}_FILE"):
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 0/1/true/false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def local_secret(name: str, make) -> str:
    """A development secret kept in VAR_DIR so it survives restarts (never used when DEBUG=0)."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG", True)
# Database, media and development secrets live here unless told otherwise.
VAR_DIR = Path(env_str("KLING_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY")
if not DEBUG:
    missing = [
        *(["DJANGO_SECRET_KEY (50+ random characters)"] if len(SECRET_KEY) < 32 else []),
        *(["FIELD_ENCRYPTION_KEY (a Fernet key)"] if not FIELD_ENCRYPTION_KEY else []),
    ]
    if missing:
        raise ImproperlyConfigured(
            f"DJANGO_DEBUG=0 needs {' and '.join(missing)}, the same at every start; the "
            "README's Production section says how to make them"
        )
SECRET_KEY = SECRET_KEY or local_secret("secret_key", lambda: secrets.token_urlsafe(50))
# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEY = FIELD_ENCRYPTION_KEY or local_secret(
    "field_encryption_key", lambda: Fernet.generate_key().decode()
)
# A malformed key fails here, at start-up, rather than at the first job that needs a secret.
try:
    if not [Fernet(k.strip()) for k in FIELD_ENCRYPTION_KEY.split(",") if k.strip()]:
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys (urlsafe base64 "
        "of 32 bytes); make one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'"
    ) from None

ALLOWED_HOSTS = [
    h.strip()
    for h in env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if h.strip()
]
# Public base URL of this site (https://studio.example.com). When set, creates carry a
# callback_url so Kling pushes progress; polling stays on as reconciliation either way.
SITE_URL = env_str("SITE_URL").rstrip("/")
if SITE_URL:
    CSRF_TRUSTED_ORIGINS = [SITE_URL]
COMETAPI_BASE_URL = env_str("COMETAPI_BASE_URL", "https://api.cometapi.com").rstrip("/")
# Largest clip we accept from a result URL; Kling's 10 s 1080p clips are ~20-40 MB.
KLING_MAX_VIDEO_BYTES = env_int("KLING_MAX_VIDEO_BYTES", 200 * 1024 * 1024)
# Zip downloads one member may run at once (each holds a web worker while it streams).
KLING_ZIPS_PER_MEMBER = env_int("KLING_ZIPS_PER_MEMBER", 2)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_htmx",
    "django_q",
    "generations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns the answer to a locked-out login into our page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "kling_site.urls"
WSGI_APPLICATION = "kling_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the cluster write to one file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no deadlock on lock upgrade), and the
    # timeout makes a busy writer wait instead of failing with "database is locked".
    # Connections are kept between requests (CONN_MAX_AGE above), as on PostgreSQL: opening
    # one and running those pragmas for every request cost a poll 1.4 of its 2.4 ms of CPU
    # (docs/benchmarks.md). Kept open outside a transaction, a connection holds no lock and
    # no snapshot, so it doesn't stop the write-ahead log from being checkpointed.
    # Tests keep their database in a file too, so a real qcluster subprocess can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Every request reads its session. With Redis (one cache shared by every web process) it is
# read from the cache, the database only on a miss (cached_db: writes go to both, so nothing
# is lost when Redis restarts); a poll then costs one database query less. Without Redis the
# cache is each process's own memory, where a logout in one process would leave the session
# alive in the others' copies: sessions are then read from the database alone.
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if REDIS_URL
    else "django.contrib.sessions.backends.db"
)

# django-q2 carries the engine (every worker process runs one, generations/lifecycle/engine.py)
# and the scheduled key probe. The database row, not the queue, is the source of truth: the
# engine finds its work in the rows, so a task run twice (ORM broker) or lost (Redis broker)
# loses no job.
Q_BROKER = env_str("Q_BROKER", "orm")
if Q_BROKER not in {"orm", "redis"}:
    raise ImproperlyConfigured("Q_BROKER must be 'orm' or 'redis'")
if Q_BROKER == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("Q_BROKER=redis needs REDIS_URL")
Q_CLUSTER = {
    "name": "kling",
    "workers": env_int("Q_WORKERS", 2),
    # Tasks are scheduled upkeep (the key probe); the lifecycle runs in the engine beside
    # each worker's task loop (generations/lifecycle/engine.py). A stuck task is killed.
    "timeout": 600,
    # The ORM broker re-delivers a task whose lease ran out: the lease must outlast the
    # timeout plus time spent queued in a worker's memory (at most queue_limit tasks, each
    # short), or healthy tasks run twice. A second run is harmless (the rows are claimed)
    # but wasted.
    "retry": 720,
    # Prefetch little: a task waiting in a worker's memory is invisible to other workers and
    # ages toward `retry`.
    "queue_limit": 4,
    # Failures are handled by our own backoff on the row; django-q only re-runs a task whose
    # worker died. Two more tries, then the next scheduled run does it (the default 0
    # retries forever).
    "max_attempts": 3,
    # A worker is replaced after this many tasks (django-q2's default), so a slow leak
    # can't grow for ever; its engine finishes its pass and its downloads first
    # (generations/signals.py).
    "recycle": 500,
    "catch_up": False,  # missed key probes need one probe, not a backlog of them
    "save_limit": 500,
    "ack_failures": True,
    "poll": 0.2,  # how often an idle ORM-broker worker looks for tasks: the latency floor
    "label": "Task queue",
    "sync": env_bool("Q_SYNC", False),
}
if Q_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
else:
    Q_CLUSTER["redis"] = REDIS_URL
# Clips each worker process downloads at once (generations/lifecycle/engine.py); 0: the
# default (lifecycle.base.STORE_THREADS_DEFAULT).
KLING_STORE_THREADS = env_int("KLING_STORE_THREADS", 0)
# Divides the lifecycle's claims, backoffs and poll delays (generations/lifecycle/base.py). 1 in
# production; the fault tests run a 20x simulator and raise it alike, so a killed worker's
# claims run out in seconds rather than minutes.
KLING_LIFECYCLE_SPEED = float(env_str("KLING_LIFECYCLE_SPEED", "1") or 1)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one address, that pair is locked out for LOGIN_LOCKOUT_MINUTES (the admin
# login included). Failures live in the database, so every web process sees them; an admin
# unlocks early under "Axes" in admin or with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A try while locked out does not restart the clock, so the time we show stays true.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "generations.throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "generations.throttle.client_ip"
# Behind a reverse proxy every request comes from the proxy's address: name the header in
# which the proxy puts the client's (X-Forwarded-For, X-Real-IP). Only when a proxy that
# sets it is the only way in, or anyone could claim any address.
CLIENT_IP_HEADER = env_str("CLIENT_IP_HEADER")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "studio"
LOGOUT_REDIRECT_URL = "login"

# Email: password reset and inbox notifications (generations/review/inbox.py). With EMAIL_HOST the
# studio sends through that SMTP server. In debug mode mail is printed on the console;
# password reset is offered only with EMAIL_HOST or EMAIL_CONSOLE=1 (debug only: reset links
# are secrets), and otherwise its pages answer 404 and the login page says to ask an admin.
# Without EMAIL_HOST in production there is no MAILERS at all: this server sends no mail
# (and check --deploy stays clean).
# (Django 6.1 takes mail settings from MAILERS only: no EMAIL_* setting names here.)
_email_host = env_str("EMAIL_HOST")
_email_console = env_bool("EMAIL_CONSOLE", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Kling Studio <kling-studio@localhost>")
if _email_console and not DEBUG:
    raise ImproperlyConfigured("EMAIL_CONSOLE=1 is for debug only: it logs reset links")
if _email_host:
    _email_port = env_int("EMAIL_PORT", 587)
    _email_ssl = env_bool("EMAIL_USE_SSL", _email_port == 465)
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": _email_host,
                "port": _email_port,
                "username": env_str("EMAIL_HOST_USER"),
                "password": env_str("EMAIL_HOST_PASSWORD"),
                "use_ssl": _email_ssl,
                "use_tls": env_bool("EMAIL_USE_TLS", not _email_ssl and _email_port != 25),
                "timeout": 10,  # a slow mail server must not hold a web worker for long
            },
        }
    }
elif DEBUG:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
PASSWORD_RESET_ENABLED = bool(_email_host) or _email_console

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on a missing root
MEDIA_URL = "media/"  # never served directly: clips go through a view that checks access
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Clips and posters on S3-compatible storage (AWS S3, MinIO, Ceph, R2, …) when a bucket is
# named; local disk otherwise. The bucket stays private: members get clips only through our
# views, after the permission check (generations/galleries/ranged.py streams them, Range included),
# never as a bucket URL. Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or their
# _FILE forms), else boto3's own chain (instance role, ~/.aws).
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE") or None,  # "path": MinIO
            "location": env_str("AWS_LOCATION").strip("/"),  # a key prefix in a shared bucket
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "default_acl": None,  # the bucket's own (private); never public-read
            "querystring_auth": True,  # any URL the storage makes is signed…
            "querystring_expire": 60,  # …and short-lived (we stream; nothing should use one)
            "file_overwrite": False,  # a name in use gets a suffix, as on local disk
        },
    }

# No inline scripts or styles anywhere, so the policy can stay strict.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "media-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True

# HTTPS. Production sits behind a TLS proxy (docs/deploy.md) that sets X-Forwarded-Proto, so
# all of this is on by default with DJANGO_DEBUG=0; each can be turned off for a plain-HTTP
# trial on loopback. Trusting the header is safe only when the proxy overwrites it and
# gunicorn is reachable through the proxy alone.
if proxy_header := env_str("DJANGO_SECURE_PROXY_SSL_HEADER", "" if DEBUG else "X-Forwarded-Proto"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + proxy_header.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # monitors on the machine itself ask over plain HTTP
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Joining the browsers' preload list is a commitment made by the domain's owner, not by a
# default: off unless asked for, and its deploy-check warning (W021) silenced accordingly.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool(
    "DJANGO_SECURE_COOKIES", not DEBUG or SITE_URL.startswith("https://")
)

# Callback tokens are redacted from every line (kling_site/logs.py): runserver's access log
# (`django.server`, redefined here as Django has it, plus the filter) and `django.request`.
# gunicorn.conf.py attaches the same filter to `gunicorn.access`.
# LOG_FORMAT=json prints one JSON object per line (for a log shipper); lifecycle events
# (the `generations.events` logger) carry the generation's id and Kling's task id as keys.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_callback_tokens": {"()": "kling_site.logs.RedactCallbackTokens"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
        "json": {"()": "kling_site.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        },
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "django.server",
        },
        # Server errors (and their tracebacks) without DEBUG; with it Django's console has them.
        "errors": {
            "class": "logging.StreamHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        },
    },
    "loggers": {
        "generations": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
        "django.server": {
            "handlers": ["django.server"],
            "level": "INFO",
            "propagate": False,
            "filters": ["redact_callback_tokens"],
        },
        # Every server error reaches the log with its traceback: Django's own handlers print
        # it only with DEBUG (or mail ADMINS), so in production a 500 left nothing. The
        # filter keeps callback tokens out of the path.
        "django.request": {"handlers": ["errors"], "filters": ["redact_callback_tokens"]},
    },
}

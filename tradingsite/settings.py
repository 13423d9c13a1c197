"""Django settings for tradingsite, read from the environment (django-environ).

Unset, the service runs on the *embedded default*: SQLite and Django's in-process cache.
``DATABASE_URL`` switches to PostgreSQL (psycopg 3), ``REDIS_URL`` to django-redis.
With ``DJANGO_DEBUG`` off (the default) the service refuses to start without
``DJANGO_SECRET_KEY`` and ``DJANGO_ALLOWED_HOSTS``. Every variable is listed in ``.env.example``
and in the README's table.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from tradingsite import __version__

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience only: real environment variables win, and DJANGO_DOTENV=off ignores it.
if (BASE_DIR / ".env").exists() and env.str("DJANGO_DOTENV", default="on").lower() not in {"off", "0", "false"}:
    environ.Env.read_env(BASE_DIR / ".env")

# ---------------------------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _required(name: str, value):
    """Return ``value``, or refuse to start when it is empty and DEBUG is off."""
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_DEBUG is off.")
    return value


SECRET_KEY = _required(
    "DJANGO_SECRET_KEY",
    env.str(
        "DJANGO_SECRET_KEY", default="dev-only-insecure-secret-key-never-use-in-production-0123456789" if DEBUG else ""
    ),
)
ALLOWED_HOSTS = _required(
    "DJANGO_ALLOWED_HOSTS",
    env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else []),
)
# A key of its own for JWTs, never SECRET_KEY, so tokens rotate independently.
JWT_SIGNING_KEY = _required(
    "JWT_SIGNING_KEY",
    env.str("JWT_SIGNING_KEY", default="dev-only-jwt-signing-key-never-use-in-production-9876543210" if DEBUG else ""),
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Release identifier: part of every cache key prefix so a deploy never reads another release's pickles.
RELEASE = env.str("RELEASE", default=__version__)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # third party
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally, no CDN
    # local
    "tradingsite",
    "accounts",
    "positions",
    "reconciliation",
    "guards",
    "notifications",
    "history",
    "dashboard",
    "demo",
]

MIDDLEWARE = [
    "tradingsite.observability.RequestContextMiddleware",
    "tradingsite.middleware.LengthRequiredMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Response-only (adds X-Frame-Options), so its place does not matter to the rest; placed before the
    # page-hit fast path so hits served there carry the header too.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A page-cache hit of a hot read with a valid bearer token is answered here (tradingsite.page_hit).
    "tradingsite.page_hit.PageHitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ASGI_STREAM_SERVER = env.bool("ASGI_STREAM_SERVER", default=False)
if ASGI_STREAM_SERVER:
    # The event stream's ASGI server (tradingsite/asgi.py) serves no hot read: no page-hit fast path,
    # whose sync-only middleware would put every stream's set-up through a thread.
    MIDDLEWARE.remove("tradingsite.page_hit.PageHitMiddleware")
if not DEBUG and not ASGI_STREAM_SERVER:
    # Serves admin and browsable-API static files in production (compressed, far-future cached);
    # in development runserver / live_server serve them through django.contrib.staticfiles.
    # Not in the event stream's ASGI server (tradingsite/asgi.py): it serves no static file, and a
    # sync-only middleware there would cost a thread per open stream.
    MIDDLEWARE.insert(3, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "tradingsite.urls"
WSGI_APPLICATION = "tradingsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project templates (admin overrides, the login-throttled page) win over the apps' own.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------------------------
# Database: SQLite unless DATABASE_URL is set (postgres://user@host:5432/name → psycopg 3).
# ---------------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    # Fail fast instead of hanging a worker: connection attempts and statements are bounded.
    _pg_options.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT_S", default=3))
    # A lock wait beyond DB_LOCK_TIMEOUT_MS fails with SQLSTATE 55P03, answered 429 + Retry-After
    # (tradingsite.api.exception_handler), so one user's blocked writes cannot hold every worker thread.
    _pg_options.setdefault(
        "options",
        f"-c statement_timeout={env.int('DB_STATEMENT_TIMEOUT_MS', default=10000)}"
        f" -c lock_timeout={env.int('DB_LOCK_TIMEOUT_MS', default=3000)}",
    )
    if env.bool("DB_POOL", default=False):
        # psycopg 3 pool (Django 5.1+): per process, sized to the gthread thread count; requires CONN_MAX_AGE=0.
        _pg_options["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=8),
            "timeout": env.float("DB_POOL_TIMEOUT_S", default=3.0),
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    # SQLite: wait for the write lock rather than fail at once when two requests write together.
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The audit trail's writer for guard events raised outside a sync (the admin's peak reset): the app
# above guards that keeps the log, named here so guards never imports it (the layer contract).
GUARD_EVENT_RECORDER = "reconciliation.services.guard_event_record"
# Called with every batch of reconciliation log rows inside the transaction that writes them (the apps
# above reconciliation: webhook outbox rows, event-stream wake-ups), named here for the same reason.
RECONCILIATION_LOG_SUBSCRIBERS = ["notifications.services.outbox_enqueue"]

# ---------------------------------------------------------------------------------------------
# Caches: in-process unless REDIS_URL is set. CACHES is written out by hand.
#   default  — cache_page responses (pickle, 5 s) and selector data (plain dicts, 60 s from computation)
#   throttle — DRF throttle histories; see tradingsite.throttling for the failure policy
# ---------------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
API_CACHE_TTL_S = env.int("API_CACHE_TTL_S", default=5)
# Serve page-cache hits of the hot reads before sessions, CSRF and DRF (tradingsite.page_hit).
API_PAGE_FAST_PATH = env.bool("API_PAGE_FAST_PATH", default=True)
# TTL of the selector data layer, from computation (generations keep it fresh; see tradingsite.caching).
API_DATA_TTL_S = env.int("API_DATA_TTL_S", default=5)
# Warm the hot reads after a write in a per-process background pool (tradingsite.caching.Warmer), off the
# writing request; off, the warming runs in the request's on_commit (the test settings: deterministic).
CACHE_WARM_IN_BACKGROUND = env.bool("CACHE_WARM_IN_BACKGROUND", default=True)
CACHE_WARM_THREADS = env.int("CACHE_WARM_THREADS", default=2)
REDIS_SOCKET_TIMEOUT_S = env.float("REDIS_SOCKET_TIMEOUT_S", default=0.1)
REDIS_BREAKER_COOLDOWN_S = env.float("REDIS_BREAKER_COOLDOWN_S", default=5.0)
CACHE_KEY_PREFIX = f"ts:{RELEASE}"

if REDIS_URL:

    def _redis_cache(db_suffix: str = "") -> dict:
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX + db_suffix,
            "TIMEOUT": 300,
            "OPTIONS": {
                # Per-process circuit breaker around django-redis's default client (tradingsite.cache_backend).
                "CLIENT_CLASS": "tradingsite.cache_backend.CircuitBreakerClient",
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT_S,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT_S,
                "IGNORE_EXCEPTIONS": True,
                # hiredis is installed, so redis-py picks its C parser by itself: no PARSER_CLASS.
                "CONNECTION_POOL_KWARGS": {"max_connections": env.int("REDIS_MAX_CONNECTIONS", default=64)},
            },
        }

    CACHES: dict[str, dict[str, Any]] = {"default": _redis_cache(), "throttle": _redis_cache(":throttle")}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tradingsite-default",
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "TIMEOUT": 300,
            "OPTIONS": {"MAX_ENTRIES": 20000},
        },
        "throttle": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tradingsite-throttle",
            "KEY_PREFIX": CACHE_KEY_PREFIX + ":throttle",
        },
    }
# Log ignored Redis errors through a rate-limited logger (one line per interval, not per request).
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "tradingsite.cache.ignored"

# Syncs of one user processed at once (tradingsite.throttling.sync_slot); the rest are a 429 with Retry-After.
SYNC_MAX_IN_FLIGHT = env.int("SYNC_MAX_IN_FLIGHT", default=2)
SYNC_IN_FLIGHT_TTL_S = env.int("SYNC_IN_FLIGHT_TTL_S", default=60)  # a leaked slot frees itself after this
SYNC_IN_FLIGHT_RETRY_AFTER_S = env.int("SYNC_IN_FLIGHT_RETRY_AFTER_S", default=1)
# Retry-After of a request refused because a database lock wait passed DB_LOCK_TIMEOUT_MS.
LOCK_TIMEOUT_RETRY_AFTER_S = env.int("LOCK_TIMEOUT_RETRY_AFTER_S", default=1)

# Admin and browsable-API sessions live in the database, never only in Redis.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# ---------------------------------------------------------------------------------------------
# Passwords, i18n, static files
# ---------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# DRF's /api-auth/login/ (and Django's LoginView) land on the API root, not /accounts/profile/.
LOGIN_REDIRECT_URL = "api-root"
LANGUAGE_CODE = "en-us"
# One date format on every Django-rendered page (admin): tradingsite/formats/en/formats.py.
FORMAT_MODULE_PATH = ["tradingsite.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# A missing collectstatic degrades instead of a 500 (tradingsite.storage): pages link unhashed names and
# whitenoise serves them from the apps' static/ directories (finders). The Dockerfile runs collectstatic.
WHITENOISE_MANIFEST_STRICT = False
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").exists()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "tradingsite.storage.ForgivingManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# ---------------------------------------------------------------------------------------------
# Security. DJANGO_SECURE_SSL_REDIRECT defaults to on when DEBUG is off; the service sits behind a
# TLS-terminating proxy, so X-Forwarded-Proto decides whether a request was HTTPS.
# ---------------------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Load-balancer probes and the Prometheus scraper talk plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Body limit for every request; the sync endpoint answers 413 past it (1 MiB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# ---------------------------------------------------------------------------------------------
# Django REST framework, SimpleJWT, drf-spectacular
# ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "VIEW_DESCRIPTION_FUNCTION": "tradingsite.schema.view_description",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Checks the user row (a deactivated user is refused). Only the three hot reads use the
        # stateless class, by name (tradingsite.authentication.HOT_READ_AUTHENTICATION).
        "tradingsite.authentication.DatabaseJWTAuthentication",
        # For the browsable API (DRF's login view); cached views also vary on Cookie.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # drf-spectacular plus the 4xx every operation can answer (tradingsite.schema).
    "DEFAULT_SCHEMA_CLASS": "tradingsite.schema.ErrorResponsesAutoSchema",
    "EXCEPTION_HANDLER": "tradingsite.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth_ip": env.str("THROTTLE_AUTH_IP", default="30/min"),
        "auth_username": env.str("THROTTLE_AUTH_USERNAME", default="10/min"),
        "sync": env.str("THROTTLE_SYNC", default="120/min"),
    },
    "NUM_PROXIES": env.int("NUM_PROXIES", default=1),
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_ACCESS_LIFETIME_S", default=300)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_REFRESH_LIFETIME_S", default=86400)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    # A key of its own, so tokens can be rotated independently of SECRET_KEY.
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "LEEWAY": 5,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "tradingsite API",
    "DESCRIPTION": "Reconciliation, positions and risk guards for automated MetaTrader 5 accounts.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Descriptions come from docstrings written for maintainers: shown to API users as plain text.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tradingsite.schema.plain_descriptions",
    ],
    # Choice sets used by more than one app keep one name (webhook filters reuse the log's).
    "ENUM_NAME_OVERRIDES": {
        "EventTypeEnum": "reconciliation.models.ReconciliationLog.EventType",
        "ReconciliationLogStatusEnum": "reconciliation.models.ReconciliationLog.Status",
    },
}

# ---------------------------------------------------------------------------------------------
# Notifications: webhooks (outbox + worker) and the SSE event stream (notifications/)
# ---------------------------------------------------------------------------------------------
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
WEBHOOK_BACKOFF_BASE_S = env.float("WEBHOOK_BACKOFF_BASE_S", default=5.0)
WEBHOOK_BACKOFF_CAP_S = env.float("WEBHOOK_BACKOFF_CAP_S", default=3600.0)
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT_S", default=5.0)
WEBHOOK_MAX_ENDPOINTS = env.int("WEBHOOK_MAX_ENDPOINTS", default=10)
# Loopback/private IP literals and localhost are refused as webhook URLs unless this is on.
WEBHOOK_ALLOW_PRIVATE_URLS = env.bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=DEBUG)
SSE_HEARTBEAT_S = env.float("SSE_HEARTBEAT_S", default=15.0)
SSE_POLL_S = env.float("SSE_POLL_S", default=1.0)
SSE_RESYNC_S = env.float("SSE_RESYNC_S", default=60.0)
SSE_MAX_S = env.float("SSE_MAX_S", default=3600.0)
SSE_RETRY_MS = env.int("SSE_RETRY_MS", default=2000)

# ---------------------------------------------------------------------------------------------
# Logging: JSON lines on stdout, each carrying the request id (tradingsite.observability).
# ---------------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "tradingsite.observability.RequestContextFilter"},
        "once_per_interval": {"()": "tradingsite.observability.RateLimitFilter", "interval_s": 10.0},
    },
    "formatters": {"json": {"()": "tradingsite.observability.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # The access line is written by RequestContextMiddleware; Django's own 4xx/5xx lines would repeat it.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "tradingsite.cache.ignored": {
            "handlers": ["console"],
            "level": "WARNING",
            "filters": ["once_per_interval"],
            "propagate": False,
        },
    },
}

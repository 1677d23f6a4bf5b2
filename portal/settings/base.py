"""Settings shared by every environment; each value that differs per machine comes from the environment.

Device ingest and telemetry settings are in ingest.py, the Celery beat schedule in schedule.py;
this module imports both, so dev, test and production (which import this one) get them too.

Environment variables:
    DATABASE_URL   a PostgreSQL URL; default: the project-local server `make run` starts
                   (its Unix socket in var/postgres)
    REDIS_URL      default: redis://127.0.0.1:6379/0 (the Redis that `make run` starts); with
                   Sentinel, only its database number and password are used
    REDIS_SENTINELS  "host:port,host:port": Redis Sentinel; the broker, the channel layer and
                   our clients ask them for the primary and follow a failover (portal/redis_conn.py,
                   docs/deploy.md "Redis failover"); unset: REDIS_URL as it is
    REDIS_SENTINEL_MASTER  the name the sentinels monitor; default "fleetport"
    SECRET_KEY     required in production; dev and test use a throwaway key
    ALLOWED_HOSTS  comma-separated
    TRUSTED_PROXIES  the reverse proxies whose X-Forwarded-For is believed; default none
    DEBUG          "1"/"true" to enable
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import dj_database_url
import django_stubs_ext
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from portal import dbpool
from portal.redis_conn import celery_broker, channel_layer_host, parse_sentinels

# Settings kept in their own modules (one topic each; this module holds the rest):
from .env import env_bool, env_list
from .ingest import *  # noqa: F403  device ingest and telemetry: docs/ingest.md
from .schedule import *  # noqa: F403  the beat schedule and health sweeps: docs/architecture.md

# Lets `admin.ModelAdmin[Customer]` and friends be subscripted at run time (typing only).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("FLEETPORT_VAR_DIR", BASE_DIR / "var"))


def database_from_env(local_socket_dir: Path) -> dict[str, object]:
    """Parse DATABASE_URL (PostgreSQL only); unset, the project-local server that `make run`
    starts (bin/run), reached through its Unix socket in `local_socket_dir`."""
    url = (
        os.environ.get("DATABASE_URL")
        or f"postgres://fleetport@{quote(str(local_socket_dir), safe='')}/fleetport"
    )
    config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=0))
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a PostgreSQL URL (postgres://…), not {config['ENGINE']}."
        )
    if env_bool("DATABASE_POOL", default=True):
        # A connection pool per process (psycopg_pool): under ASGI, Django's persistent
        # connections are not an option, and a new PostgreSQL connection per request costs
        # more than the ingest request itself. DATABASE_POOL=0 turns it off.
        config["OPTIONS"] = {
            "pool": {
                "min_size": int(os.environ.get("DATABASE_POOL_MIN", "2")),
                "max_size": int(os.environ.get("DATABASE_POOL_MAX", "20")),
                "timeout": 10,
                # Failed connects retried about every second, not after a doubling backoff
                # (portal/dbpool.py; docs/ingest.md, "Outages").
                "reconnect_timeout": dbpool.RECONNECT_SECONDS,
                "reconnect_failed": dbpool.reconnect_failed,
            }
        }
    # Connections are checked before use: with the pool, Django passes the pool
    # `ConnectionPool.check_connection` (an empty query as a connection is handed out), so
    # after a PostgreSQL restart dead ones are replaced instead of failing a request or task
    # each (docs/ingest.md, "Outages"); without it, a connection kept across requests is.
    config["CONN_HEALTH_CHECKS"] = True
    return config


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "csp",
    "django_countries",
    "portal.apps.PortalConfig",
    "fleet.apps.FleetConfig",
    "billing.apps.BillingConfig",
    "support.apps.SupportConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Axes last: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {"default": database_from_env(VAR_DIR / "postgres")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_SENTINELS = parse_sentinels(os.environ.get("REDIS_SENTINELS", ""))
REDIS_SENTINEL_MASTER = os.environ.get("REDIS_SENTINEL_MASTER", "fleetport")

AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    # Axes first: it refuses a locked-out e-mail/IP before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule: Django's hook after a password is set, wherever; it revokes the API tokens.
    {"NAME": "portal.tokens.PasswordChangeRevokesTokens"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = int(timedelta(days=3).total_seconds())

# Login throttling (django-axes; docs/security.md): after AXES_FAILURE_LIMIT failures for one
# e-mail from one address, that pair is locked out for AXES_COOLOFF_TIME; a success resets the
# count. An address with LOGIN_ADDRESS_FAILURE_LIMIT failures over any e-mails is locked out whole.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "portal.accounts.LoginThrottle"
LOGIN_ADDRESS_FAILURE_LIMIT = int(os.environ.get("LOGIN_ADDRESS_FAILURE_LIMIT", "20"))
# The client's address is the connecting peer's, unless that peer is one of TRUSTED_PROXIES
# (addresses or networks, comma-separated): then X-Forwarded-For is read back to the first hop
# that is not. Default: no proxy is trusted, the header is ignored (the Procfile's uvicorn
# runs with --no-proxy-headers, so the peer is the real one).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
for _proxy in TRUSTED_PROXIES:  # a typo stops the start, not the first log-in
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {error} (addresses or networks, comma-separated)."
        ) from error
AXES_CLIENT_IP_CALLABLE = "portal.accounts.request_client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.accounts.lockout_response"
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False
AXES_SENSITIVE_PARAMETERS = ["password"]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Where collectstatic writes (bin/run runs it before the processes start; docs/deploy.md).
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or VAR_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.js from the `plotly` package (pinned in the lock) as /static/vendor/plotly.min.js.
    "portal.staticfinders.PlotlyFinder",
]
# STATIC_FILES says how static files are served (docs/deploy.md, "Static files"):
#   "hashed": collectstatic's files under hashed names, with brotli and gzip copies, cached
#             by browsers for good (portal/staticstorage.py); production and `make run`;
#   "source": straight from the source folders, uncompressed and revalidated on each use, so
#             an edit shows on reload: front-end work (`STATIC_FILES=source make run`), tests.
STATIC_STORAGES = {
    "hashed": {"BACKEND": "portal.staticstorage.HashedStaticStorage"},
    "source": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


def static_files(default: str) -> tuple[dict[str, dict[str, str]], bool, bool]:
    """(STORAGES, WHITENOISE_USE_FINDERS, WHITENOISE_AUTOREFRESH) for STATIC_FILES, unset: `default`.

    Hashed: WhiteNoise serves only what collectstatic wrote (the finders' files are neither
    hashed nor compressed). Source: the finders' files, looked up on each request."""
    mode = os.environ.get("STATIC_FILES") or default
    if mode not in STATIC_STORAGES:
        raise ImproperlyConfigured(f"STATIC_FILES must be one of {', '.join(STATIC_STORAGES)}, not {mode!r}.")
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": STATIC_STORAGES[mode],
    }
    return storages, mode == "source", mode == "source"


STORAGES, WHITENOISE_USE_FINDERS, WHITENOISE_AUTOREFRESH = static_files("hashed")
MEDIA_ROOT = VAR_DIR / "media"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# The Content-Security-Policy (django-csp; docs/security.md): scripts only from our own static
# files — no inline scripts, no inline event handlers, no eval — and every other resource from
# this origin. Styles may be inline: plotly.js sets them on the elements it draws (a style
# cannot run script). Images may be data: URLs (Plotly's and Swagger UI's icons).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],  # fetch() and the live socket (ws: and wss: of this origin)
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Fleetport <noreply@fleetport.example>")

# The base of every link in an e-mail (portal.links); tasks have no request. `make run` sets it
# from its HOST and PORT (bin/run).
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000")
# Demo data (manage.py seed_demo) is refused unless this is on; production turns it off.
DEMO_ALLOWED = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.tokens.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "portal.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fleetport API",
    "DESCRIPTION": "Live fleets, usage billing and support for products-as-a-service.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # An operation's path as text, not a link inside the expanding button (axe: nested-interactive).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "AssetStatusEnum": "fleet.models.AssetStatus",
        "AlarmStateEnum": "fleet.models.AlarmState",
        "HeartbeatStatusEnum": "fleet.models.HeartbeatStatus",
        "RoleEnum": "portal.roles.Role",
        "ContractStatusEnum": "billing.models.ContractStatus",
        "InvoiceStatusEnum": "billing.models.InvoiceStatus",
        "InvoiceRunStatusEnum": "billing.models.InvoiceRunStatus",
        "TicketStatusEnum": "support.models.Status",
        "TicketPriorityEnum": "portal.priority.Priority",
        "TicketCategoryEnum": "support.models.Category",
        "SlaStateEnum": "support.models.SlaState",
    },
}

# Celery: Redis broker, JSON only, late acks so a task whose worker dies is redelivered.
# With Sentinel: kombu's sentinel:// transport, master_name in the transport options.
CELERY_BROKER_URL, _BROKER_SENTINEL_OPTIONS = celery_broker(REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Take a message only when a pool process is free: no reserved, unacked messages sit in the
# worker (kombu's restore of those on a lost Redis connection crashes the worker).
CELERY_WORKER_DISABLE_PREFETCH = True
# Celery's Django fixup closes a prefork child's connection pool before and after every task
# unless told to reuse it: each ingest drain then opened new PostgreSQL connections (a server
# process each, its caches cold, the rollup staging table made again). This keeps the pool
# for the child's life; portal.celery hands a task's connections back to it instead.
CELERY_DB_REUSE_MAX = 2**62
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, **_BROKER_SENTINEL_OPTIONS}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
# The beat schedule is in portal/settings/schedule.py; the ingest drain's queue and acking in
# portal/settings/ingest.py.
AUDIT_RETENTION_DAYS = int(os.environ.get("AUDIT_RETENTION_DAYS", "730"))

# The pub/sub layer: live messages are fire-and-forget (a page refetches what it missed on
# reconnect), and unlike the list-based core layer it neither caps a socket's queue at 100
# messages nor drops them silently under fan-out (bench/live.py, docs/performance.md).
CHANNEL_LAYERS = {
    "default": {
        # channels_redis's pub/sub layer, with pipelined group_send_many (portal/channel_layer.py).
        "BACKEND": "portal.channel_layer.LiveChannelLayer",
        # A read timeout above Channels' own 5 s wait (else idle sockets die), and a pool that
        # waits for a connection instead of failing when many sockets (dis)connect at once.
        # With Sentinel, channels_redis asks the sentinels for the primary on each connect.
        "CONFIG": {
            "hosts": [
                channel_layer_host(
                    REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, socket_timeout=10, max_connections=1000
                )
            ]
        },
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"client_errors_on_one_line": {"()": "portal.logfilters.ClientErrorsOnOneLine"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors_on_one_line"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # No handler of Django's own (its default logging prints django.* records a second
        # time, tracebacks included, while DEBUG is on): everything goes through "console".
        "django": {"handlers": []},
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

# Billing: the rules ("The rules") and these settings are in docs/billing.md.
BILLING_PAYMENT_TERMS_DAYS = int(os.environ.get("BILLING_PAYMENT_TERMS_DAYS", "30"))
# Invoice runs re-meter finalized periods this many months back for late usage (heartbeats
# may arrive up to INGEST_MAX_AGE_DAYS late).
BILLING_LATE_USAGE_MONTHS = int(os.environ.get("BILLING_LATE_USAGE_MONTHS", "4"))
# Who the invoices come from (printed on every PDF and e-invoice; a finalized invoice keeps
# the values it was finalized with). The defaults are a fictitious seller with well-formed IDs.
BILLING_PROVIDER = {
    "name": os.environ.get("BILLING_PROVIDER_NAME", "Fleetport Equipment Services GmbH"),
    "address_line1": os.environ.get("BILLING_PROVIDER_STREET", "Hafenstraße 1"),
    "postal_code": os.environ.get("BILLING_PROVIDER_POSTAL_CODE", "20457"),
    "city": os.environ.get("BILLING_PROVIDER_CITY", "Hamburg"),
    "country": os.environ.get("BILLING_PROVIDER_COUNTRY", "DE"),  # ISO 3166-1 alpha-2
    "vat_id": os.environ.get("BILLING_PROVIDER_VAT_ID", "DE123456788"),
    "email": os.environ.get("BILLING_PROVIDER_EMAIL", "billing@fleetport.example"),
    "iban": os.environ.get("BILLING_PROVIDER_IBAN", "DE89370400440532013000"),
    "bic": os.environ.get("BILLING_PROVIDER_BIC", "COBADEFFXXX"),
}
# Dunning: reminder e-mails this many days after an unpaid invoice's due date.
BILLING_REMINDER_DAYS = [
    int(d) for d in os.environ.get("BILLING_REMINDER_DAYS", "7,14,30").split(",") if d.strip()
]

# Support: ticket attachments live outside static and media, served by an access-checked view.
ATTACHMENTS_ROOT = Path(os.environ.get("ATTACHMENTS_ROOT", str(VAR_DIR / "attachments")))
ATTACHMENT_MAX_BYTES = int(os.environ.get("ATTACHMENT_MAX_BYTES", str(10 * 1024 * 1024)))
ATTACHMENT_TYPES = {  # what may be uploaded: checked by extension and by the file's first bytes
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "application/pdf": (".pdf",),
    "text/plain": (".txt", ".log"),
    "text/csv": (".csv",),
}
# SLA terms for tickets no contract covers, in minutes per priority.
SUPPORT_DEFAULT_SLA = {
    "first_response": {"P1": 240, "P2": 480, "P3": 1440, "P4": 2880},
    "resolution": {"P1": 1440, "P2": 4320, "P3": 7200, "P4": 14400},
}
# A ticket is "about to breach" when less than this share of its allowed time is left.
SUPPORT_AT_RISK_SHARE = 0.2
# A re-raised alarm reopens its ticket when that was resolved less than this long ago.
SUPPORT_REOPEN_WITHIN_HOURS = int(os.environ.get("SUPPORT_REOPEN_WITHIN_HOURS", "72"))
# A resolved ticket nobody reopened is closed this many days after it was resolved (0: never).
SUPPORT_AUTO_CLOSE_DAYS = int(os.environ.get("SUPPORT_AUTO_CLOSE_DAYS", "7"))
# Built-in alarm kinds that open tickets, with the priority (rules say their own). "offline" is
# left out by default: a site losing its network would open a ticket per machine; add it per
# deployment (e.g. {"device_fault": "P2", "offline": "P2"}).
SUPPORT_ALARM_TICKETS = {"device_fault": "P2"}

"""Settings shared by every environment.

One django-environ ``env`` object reads the process environment (and a ``.env`` file when present).
Names follow ../shared/ECOSYSTEM.md so the sibling services configure us the same way as themselves.
"""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer's .env is a convenience; real deployments pass the environment directly.
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"), overwrite=False)


def _duration_seconds(name: str, default: str) -> float:
    """Read a duration such as ``5s``, ``250ms``, ``5m`` or a bare number of seconds."""
    raw = env.str(name, default=default).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?", raw)
    if not match:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a duration (examples: 5s, 250ms, 5m, 30)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


# --- Service identity (ECOSYSTEM.md "Environment") -------------------------------------------------
INSTANCE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

SERVICE_NAME = env.str("SERVICE_NAME", default="exchange-simulator")
SERVICE_INSTANCE_NAME = env.str("SERVICE_INSTANCE_NAME", default="") or SERVICE_NAME
# fullmatch: "$" alone would accept a trailing newline (a value read from a file), which no DNS name has.
if len(SERVICE_INSTANCE_NAME) > 63 or not INSTANCE_NAME_RE.fullmatch(SERVICE_INSTANCE_NAME):
    raise ImproperlyConfigured(
        f"SERVICE_INSTANCE_NAME={SERVICE_INSTANCE_NAME!r} is invalid: use 1-63 lowercase letters, digits or '-', "
        "starting and ending with a letter or digit"
    )
SERVICE_VERSION = env.str("SERVICE_VERSION", default="0.1.0")
# Reported by health, discovery and every log line. Each settings module has its own default (local
# "development", test "test", production "production"); ENVIRONMENT wins when set.
ENVIRONMENT = env.str("ENVIRONMENT", default="development")
# The host name siblings should dial; inside containers the hostname is the right default.
SERVICE_HOST = env.str("SERVICE_HOST", default="") or socket.gethostname()
HTTP_PORT = env.int("HTTP_PORT", default=8080)
GRPC_PORT = env.int("GRPC_PORT", default=50051)
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="json").lower()
if LOG_FORMAT not in {"json", "console"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is invalid: use json or console")
REDIS_URL = env.str("REDIS_URL", default="")
CONFIG_SERVICE_URL = env.str("CONFIG_SERVICE_URL", default="http://localhost:8090")
REQUEST_TIMEOUT = _duration_seconds("REQUEST_TIMEOUT", "5s")
CACHE_TTL = _duration_seconds("CACHE_TTL", "5m")
HEALTH_CHECK_INTERVAL = _duration_seconds("HEALTH_CHECK_INTERVAL", "30s")
# How often the serve process re-runs the readiness checks that drive gRPC health.
READINESS_POLL_INTERVAL = _duration_seconds("READINESS_POLL_INTERVAL", "2s")
# How often the risk monitor (`manage.py risk_monitor`, run by `serve`) recomputes the risk gauges and alerts;
# 0 keeps `serve` from starting it.
RISK_MONITOR_INTERVAL = _duration_seconds("RISK_MONITOR_INTERVAL", "15s")
# The price engine (`manage.py run_market`, run by `serve`; docs/simulation.md): false keeps prices where operators
# set them. Markets with no scenario follow a GBM of PRICE_ENGINE_VOLATILITY (a year) ticking every PRICE_ENGINE_TICK
# under PRICE_ENGINE_SEED; cross markets follow the USD ones with a small basis.
PRICE_ENGINE_ENABLED = env.bool("PRICE_ENGINE_ENABLED", default=True)
PRICE_ENGINE_TICK = _duration_seconds("PRICE_ENGINE_TICK", "1s")
PRICE_ENGINE_SEED = env.str("PRICE_ENGINE_SEED", default="exchange-simulator")
PRICE_ENGINE_VOLATILITY = env.float("PRICE_ENGINE_VOLATILITY", default=0.6)
# Where `load_scenario` writes the API keys a scenario issues (mode 0600).
SCENARIO_KEYS_FILE = env.str("SCENARIO_KEYS_FILE", default=str(BASE_DIR / "scenario-keys.txt"))
# Where `serve` writes the demo data's API keys (mode 0600) when it seeds an empty database.
DEMO_API_KEYS_FILE = env.str("DEMO_API_KEYS_FILE", default=str(BASE_DIR / "api-keys.txt"))
# Brute force (exchange/ratelimit.py): failed API-key authentications per client address and window; over the
# limit, every attempt from that address answers 429 until the window ends. X-Forwarded-For is read only when a
# proxy of ours sets it (TRUST_X_FORWARDED_FOR); otherwise anyone could pick their own address.
AUTH_FAILURE_LIMIT = env.int("AUTH_FAILURE_LIMIT", default=20)
AUTH_FAILURE_WINDOW = _duration_seconds("AUTH_FAILURE_WINDOW", "60s")
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)

# /metrics (exchange/metrics.py): the bearer token Prometheus sends. Unset: anonymous where
# METRICS_ALLOW_ANONYMOUS (local, test), refused in production.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOW_ANONYMOUS = True
# HTTP serving (exchange/gunicorn_conf.py, exchange/asgi.py): gunicorn workers (each runs an event loop; the Django
# work runs in its thread pool), and the threads per worker that run Django requests (each keeps one database
# connection). Few threads per process: a thread that holds a market's row lock and waits for the GIL behind its
# siblings keeps every order on that market waiting. Measured on 2 cores (docs/benchmarks.md): 4 x 2 placed 207
# market orders/s, 2 x 4 168/s, 2 x 8 162/s.
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=4)
WEB_THREADS = env.int("WEB_THREADS", default=2)
# A connection whose request headers are not complete this long after it opened is closed, and so is one whose
# request body has not arrived whole HTTP_BODY_TIMEOUT after its headers (slow clients: exchange/gunicorn_worker.py).
HTTP_HEADER_TIMEOUT = _duration_seconds("HTTP_HEADER_TIMEOUT", "10s")
HTTP_BODY_TIMEOUT = _duration_seconds("HTTP_BODY_TIMEOUT", "10s")

# --- Service discovery, configuration service, sibling clients (exchange/registration.py, ...) ---------------
# The registration key's lifetime. ECOSYSTEM.md fixes 90 s and siblings drop entries older than that, so a longer
# TTL would only leave dead instances listed; tests shorten it to see expiry without waiting 90 s.
DISCOVERY_TTL = int(_duration_seconds("DISCOVERY_TTL", "90s"))
if not 1 <= DISCOVERY_TTL <= 90:
    raise ImproperlyConfigured(f"DISCOVERY_TTL={DISCOVERY_TTL} is invalid: use 1 to 90 seconds")
# Guards on calls to siblings and to the configuration service (ECOSYSTEM.md: open after 5 consecutive failures,
# half-open after 30-60 s, a few trial calls). The timeouts are settings so tests need not wait 30 s.
BREAKER_FAIL_MAX = env.int("BREAKER_FAIL_MAX", default=5)
BREAKER_SUCCESS_THRESHOLD = env.int("BREAKER_SUCCESS_THRESHOLD", default=2)
GRPC_BREAKER_RESET_TIMEOUT = _duration_seconds("GRPC_BREAKER_RESET_TIMEOUT", "30s")
CONFIG_BREAKER_RESET_TIMEOUT = _duration_seconds("CONFIG_BREAKER_RESET_TIMEOUT", "30s")


def _decimal(name: str, default: str) -> Decimal:
    raw = env.str(name, default=default).strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise ImproperlyConfigured(f"{name}={raw!r} is not a decimal number")
    return value


# Local defaults of the runtime configuration keys (exchange/runtime_config.py): used when the configuration
# service is off, unreachable, or does not know the key. Decimal, never float: they price money.
DEFAULT_TAKER_FEE_BPS = _decimal("DEFAULT_TAKER_FEE_BPS", "10")
DEFAULT_MAKER_FEE_BPS = _decimal("DEFAULT_MAKER_FEE_BPS", "5")
DEFAULT_SPREAD_BPS = _decimal("DEFAULT_SPREAD_BPS", "10")
# The house's ladder of quotes (markets/ladder.py): levels per side, their spacing, and a factor on each market's
# size per level.
MARKET_MAKING_LEVELS = env.int("MARKET_MAKING_LEVELS", default=10)
MARKET_MAKING_STEP_BPS = _decimal("MARKET_MAKING_STEP_BPS", "5")
MARKET_MAKING_SIZE_FACTOR = _decimal("MARKET_MAKING_SIZE_FACTOR", "1")
MAX_ORDER_NOTIONAL_USD = _decimal("MAX_ORDER_NOTIONAL_USD", "1000000")
RISK_HOUSE_INVENTORY_LOW_USD = _decimal("RISK_HOUSE_INVENTORY_LOW_USD", "100000")
RISK_REJECTION_RATE_HIGH_PER_MIN = _decimal("RISK_REJECTION_RATE_HIGH_PER_MIN", "60")

# The Binance-compatible API (/api/v3, binance_api/weights.py): request weight per minute of public requests per
# client address (requests with a key count against the key's limits, KEY_* below).
BINANCE_WEIGHT_LIMIT_1M = env.int("BINANCE_WEIGHT_LIMIT_1M", default=6000)

# API keys kept in each process's memory, invalidated by PostgreSQL's notifications (accounts/key_cache.py).
API_KEY_CACHE = env.bool("API_KEY_CACHE", default=True)
# "auto": the order path's PostgreSQL functions on PostgreSQL (orders/pg_store.py); "orm" forces the ORM store.
ORDER_STORE = env.str("ORDER_STORE", default="auto")

# --- Chaos control (chaos/, README "Chaos control") -----------------------------------------------------------
# Off: every /chaos endpoint answers 404 and no fault acts (those stored stay until they expire).
CHAOS_ENABLED = env.bool("CHAOS_ENABLED", default=True)
# An injection without a duration lasts CHAOS_DEFAULT_DURATION; none may last longer than CHAOS_MAX_DURATION.
CHAOS_DEFAULT_DURATION = _duration_seconds("CHAOS_DEFAULT_DURATION", "5m")
CHAOS_MAX_DURATION = _duration_seconds("CHAOS_MAX_DURATION", "24h")
# Magnitude limits: the largest delay (fixed plus jitter) and spread multiplier an injection may ask for.
CHAOS_MAX_LATENCY = _duration_seconds("CHAOS_MAX_LATENCY", "30s")
CHAOS_MAX_SPREAD_MULTIPLIER = _decimal("CHAOS_MAX_SPREAD_MULTIPLIER", "100")
# How long each process answers "what is in force" from memory before reading the table again.
CHAOS_CACHE_TTL = _duration_seconds("CHAOS_CACHE_TTL", "500ms")

# --- Rate limits per API key (exchange/key_limits.py) ----------------------------------------------------------
# Request weight per key and minute, orders per key and 10 seconds and per day, as Binance counts them. Off by
# default here (local, test); production turns them on. A chaos injection can tighten them even when off.
KEY_LIMITS_ENABLED = env.bool("KEY_LIMITS_ENABLED", default=False)
KEY_WEIGHT_LIMIT_1M = env.int("KEY_WEIGHT_LIMIT_1M", default=6000)
KEY_ORDER_LIMIT_10S = env.int("KEY_ORDER_LIMIT_10S", default=100)
KEY_ORDER_LIMIT_1D = env.int("KEY_ORDER_LIMIT_1D", default=200000)

# --- Django core ------------------------------------------------------------------------------------
SECRET_KEY = env.str("SECRET_KEY", default="")
# Encrypts API keys' signing secrets at rest (accounts/signing.py). Unset: derived from SECRET_KEY (development).
SIGNING_SECRET_KEY = env.str("SIGNING_SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])

INSTALLED_APPS = [
    # django.contrib.admin with the operators' site (exchange/admin_site.py: headings, dashboard).
    "exchange.apps.ExchangeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    # Swagger UI and ReDoc served from our own static files, so the docs work without internet access.
    "drf_spectacular_sidecar",
    "django_prometheus",
    "simple_history",
    "axes",
    "exchange.apps.ExchangeConfig",
    "accounts",
    "ledger",
    "markets",
    "orders",
    "risk",
    "streams",
    "corsheaders",
    "simulation",
    "chaos",
    "binance_api",
]

MIDDLEWARE = [
    # Outermost so every request, including 404s and crashes, is counted with its route and status.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "exchange.middleware.RequestIdMiddleware",
    # CORS for the browser dashboard (CORS_ALLOWED_ORIGINS): answers preflights before anything else runs.
    "corsheaders.middleware.CorsMiddleware",
    # The opt-in display number format (amounts as JSON numbers): streams/numbers.py.
    "streams.numbers.NumberFormatMiddleware",
    # Chaos (chaos/middleware.py): simulated downtime answers 503 before anything else runs; rate limit headers.
    "chaos.middleware.ChaosMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and JS, Swagger UI, ReDoc) from the service itself, under every server that
    # runs the WSGI app (gunicorn, or an ASGI server wrapping it): no reverse proxy or DEBUG needed.
    # https://whitenoise.readthedocs.io/en/stable/django.html
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Admin login lockout (django-axes): last, as its documentation asks, so it sees every login attempt.
    "axes.middleware.AxesMiddleware",
    # Innermost, so it sees a view's database outage first and answers 503 (exchange/middleware.py).
    "exchange.middleware.DatabaseOutageMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "exchange.urls"
WSGI_APPLICATION = "exchange.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database ---------------------------------------------------------------------------------------
# DATABASE_URL (POSTGRES_URL is the alias siblings use). Without either, a local SQLite file so a newcomer
# can run the service with nothing installed. PostgreSQL is the production database.
_database_url = env.str("DATABASE_URL", default="") or env.str("POSTGRES_URL", default="")
if _database_url:
    DATABASES = {"default": env.db_url_config(_database_url)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}}

DB_STATEMENT_TIMEOUT_MS = env.int("DB_STATEMENT_TIMEOUT_MS", default=15000)
DB_CONNECT_TIMEOUT = env.int("DB_CONNECT_TIMEOUT", default=3)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a health check that costs no round trip (exchange/db/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "exchange.db.postgresql"
    DATABASES["default"].setdefault("OPTIONS", {})
    # A short connect timeout lets readiness notice a dead database in seconds, not minutes; the statement
    # timeout stops a stuck query from holding row locks (and a worker) forever.
    DATABASES["default"]["OPTIONS"].update(
        {
            "connect_timeout": DB_CONNECT_TIMEOUT,
            "options": f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}",
        }
    )
    # Persistent connections: a new connection per request costs ~8x throughput on this hardware
    # (docs/benchmarks.md). Health checks (once per request, a local poll of the socket) replace a connection that
    # died while idle before the request's first query.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    # SQLite: wait for the write lock instead of failing at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    # Take the write lock when a transaction begins, so two writers serialise instead of one failing on upgrade.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-transaction-behavior
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
DATABASES["default"]["ATOMIC_REQUESTS"] = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Admin login lockout (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from one address,
# that pair is locked out (429) for AXES_COOLOFF_TIME; a success resets the count. Locking the pair, not the
# username alone, keeps an attacker from locking the operators out from everywhere; failures are stored in the
# database (axes' own tables), so every worker and instance sees them. ``python manage.py axes_reset`` unlocks.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=_duration_seconds("AXES_COOLOFF_TIME", "15m"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# No start-up banner: every process start would log one.
AXES_VERBOSE = False
# The client address axes uses: REMOTE_ADDR, as for API keys (django-ipware is not installed).
AXES_HTTP_RESPONSE_CODE = 429

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# WhiteNoise serves the apps' static files straight from where they are installed (indexed once at start-up), so
# `make run` needs no collectstatic. The Docker image also collects them into STATIC_ROOT (set there), which
# WhiteNoise serves as well; unset, nothing is collected and nothing is missing.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = True

# --- REST framework ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.ReadScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["exchange.api.DecimalJSONParser"],
    "EXCEPTION_HANDLER": "exchange.exception_handler.exception_handler",
    # Request weight and order limits per API key (exchange/key_limits.py), after authentication.
    "DEFAULT_THROTTLE_CLASSES": ["exchange.key_limits.KeyLimitThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Money is Decimal end to end and a string in JSON, never a float.
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "exchange-simulator API",
    "DESCRIPTION": "Back office of a simulated crypto exchange: accounts, balances, ledger, markets and orders.",
    "VERSION": SERVICE_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    # Operation ids and tags are derived from the path after /api/ (v1_orders_create, ...), also now that /chaos
    # sits at the root (its operations name themselves).
    "SCHEMA_PATH_PREFIX": r"/api/",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge from the public validator service: nothing on the docs pages leaves this service.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "persistAuthorization": True},
    # The error envelope and each operation's error codes (exchange/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "exchange.schema.postprocess",
    ],
    "ENUM_NAME_OVERRIDES": {
        "AssetEnum": "ledger.reference_data.ASSET_CHOICES",
        "SideEnum": "orders.models.Side",
        "OrderStatusEnum": "orders.models.OrderStatus",
        "AccountStatusEnum": "accounts.models.AccountStatus",
        "MarketStatusEnum": "markets.models.MarketStatus",
        "PositionSideEnum": "risk.position_apis.POSITION_SIDES",
        "OrderTypeEnum": "orders.models.OrderType",
        "MarketOrderTypeEnum": "orders.serializers.MARKET_ONLY",
        "LimitOrderTypeEnum": "orders.serializers.LIMIT_ONLY",
        "TimeInForceEnum": "orders.models.TimeInForce",
        "PostOnlyTimeInForceEnum": "orders.serializers.GTC_ONLY",
        "SelfTradePreventionEnum": "orders.models.SelfTradePrevention",
        "LiquidityEnum": "orders.models.Liquidity",
    },
}

# --- Logging ----------------------------------------------------------------------------------------
# structlog renders every record (ours, Django's, gunicorn's) as one JSON object per line on stdout, with the
# service identity and the request id of the request being handled; secrets are scrubbed before rendering.
from exchange.logging import build_logging_config, configure_structlog  # noqa: E402


def logging_for(environment: str) -> dict:
    """The logging configuration naming ``environment``; a settings module that changes ENVIRONMENT rebuilds it."""
    return build_logging_config(
        level=LOG_LEVEL, fmt=LOG_FORMAT, service=SERVICE_NAME, instance=SERVICE_INSTANCE_NAME, environment=environment
    )


LOGGING = logging_for(ENVIRONMENT)
configure_structlog()

# Errors raised outside DRF views answer with the same JSON envelope (exchange.exception_handler).
CSRF_FAILURE_VIEW = "exchange.exception_handler.csrf_failure"

# exchange.locking checks, per transaction, that row locks follow the global order and raises on a violation.
# Off in production (it costs a little bookkeeping per lock); on with DEBUG and in the test settings.
LOCK_ORDER_CHECKS = DEBUG

# History is an audit trail: it is never reverted from the admin (money changes only through services).
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- Live streams (streams/: outbox, relay, server-sent events) and browser clients ------------------------------
# How often a stream hub looks at the outbox when no notification woke it (PostgreSQL NOTIFY wakes it at once).
STREAM_POLL_INTERVAL = _duration_seconds("STREAM_POLL_INTERVAL", "250ms")
STREAM_HEARTBEAT = _duration_seconds("STREAM_HEARTBEAT", "15s")
# A subscriber more than this many events behind is disconnected (with a final event) rather than slowing others.
STREAM_QUEUE_SIZE = env.int("STREAM_QUEUE_SIZE", default=10000)
# Events older than this are deleted; a client resuming from an older id gets the current state again.
STREAM_RETENTION = _duration_seconds("STREAM_RETENTION", "24h")
# Lifetime of the signed stream tokens a browser EventSource passes in the query string.
STREAM_TOKEN_TTL = _duration_seconds("STREAM_TOKEN_TTL", "5m")
# ``serve`` runs the instance's streams in a stream server of their own (streams/server.py), which the web workers
# relay the stream paths to over a Unix socket (set for them by serve in STREAM_SERVER_SOCKET); off: every web
# worker serves the streams of its own connections with a hub of its own.
STREAM_SERVER_ENABLED = env.bool("STREAM_SERVER_ENABLED", default=True)
STREAM_SERVER_SOCKET = env.str("STREAM_SERVER_SOCKET", default="")
# The web workers hand a stream's connection itself to the stream server (streams/handoff.py), instead of relaying
# its bytes; off: every stream is relayed.
STREAM_HANDOFF_ENABLED = env.bool("STREAM_HANDOFF_ENABLED", default=True)
# After a wake-up a hub lane waits until this long has passed since its last look, so that under load one look
# (one stamping, one read, one rendering) covers the commits of this window instead of each commit its own.
STREAM_BATCH_WINDOW = _duration_seconds("STREAM_BATCH_WINDOW", "20ms")
# The same for the lane of derived views (positions, books, tickers, and the markets' trades with them), whose looks
# cost more: 100 ms, the cadence of Binance's fast depth streams (docs/benchmarks.md: their latency against the
# order rate).
STREAM_VIEWS_BATCH_WINDOW = _duration_seconds("STREAM_VIEWS_BATCH_WINDOW", "100ms")
# Browser origins allowed to call the API (the dashboard: http://localhost:3002), comma separated.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-api-key",
    "x-request-id",
    "idempotency-key",
    "last-event-id",
)
CORS_EXPOSE_HEADERS = (
    "x-request-id",
    "retry-after",
    # The per-key rate limit counts (exchange/key_limits.py).
    "x-mbx-used-weight-1m",
    "x-mbx-order-count-10s",
    "x-mbx-order-count-1d",
)
CORS_URLS_REGEX = r"^/(api|chaos)/.*$"
# Best-effort audit hand-off: order events are POSTed to {AUDIT_CORRELATOR_URL}/api/v1/audit/events. Off when empty.
AUDIT_CORRELATOR_URL = env.str("AUDIT_CORRELATOR_URL", default="")

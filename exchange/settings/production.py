"""Production: refuses to start without its secrets or with DEBUG on; passes ``manage.py check --deploy``."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env, logging_for

ENVIRONMENT = env.str("ENVIRONMENT", default="production")
LOGGING = logging_for(ENVIRONMENT)

SECRET_KEY = env.str("SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith(("local-", "test-", "django-insecure")):
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 50 characters in production")
DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production")
# Host names this service answers to. Explicit, never "*": Django builds absolute URLs (pagination links, admin
# redirects) from the Host header, so a forged Host must be refused (400), not echoed back to clients.
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must list the host names this service answers to in production (comma-separated, not '*'); "
        "include the ones health checks and siblings use, e.g. ALLOWED_HOSTS=exchange.example.com,exchange,127.0.0.1"
    )

# /metrics carries operator figures: never anonymous here. Without METRICS_TOKEN every scrape gets 401.
METRICS_ALLOW_ANONYMOUS = False

# TLS is terminated by the load balancer in front of us; it sets X-Forwarded-Proto.
# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health probes and sibling services call us over plain HTTP inside the cluster, so redirecting to HTTPS here
# would break them; the load balancer redirects public traffic instead. (check --deploy warning W008 silenced.)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SILENCED_SYSTEM_CHECKS = ["security.W008"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Rate limits per API key are on in production (exchange/key_limits.py; the limits are in base.py).
KEY_LIMITS_ENABLED = env.bool("KEY_LIMITS_ENABLED", default=True)

"""Settings for the test suite (pytest-django)."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import DATABASES, env, logging_for

ENVIRONMENT = env.str("ENVIRONMENT", default="test")
LOGGING = logging_for(ENVIRONMENT)

SECRET_KEY = env.str("SECRET_KEY", default="test-only-not-a-secret")
DEBUG = False
# Every lock a test takes is checked against the global order (exchange.locking).
LOCK_ORDER_CHECKS = True
# Hashing API keys and passwords with the production hasher makes every authenticated test request slow.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No remote configuration lookups from the suite: local defaults only, unless a test points this at its own server.
CONFIG_SERVICE_URL = ""
if DATABASES["default"]["ENGINE"] == "exchange.db.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# Test transactions roll back, so they never notify: a cached key would outlive its revocation. Tests of the cache
# turn it on with committed transactions (tests/accounts/test_key_cache.py).
API_KEY_CACHE = False
# Prices move only when a test moves them; a test of the engine runs it itself or turns it on for a service.
PRICE_ENGINE_ENABLED = env.bool("PRICE_ENGINE_ENABLED", default=False)
# Test transactions roll back and tests inject and clear faults at once: read what is in force every time.
CHAOS_CACHE_TTL = 0.0

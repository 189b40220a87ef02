"""API-key authentication: ``Authorization: Api-Key <prefix>.<secret>`` (or ``X-Api-Key: <key>``).

Keys come from djangorestframework-api-key: random, stored only as a SHA-512 hash, looked up by their prefix, through
a per-process cache that the database invalidates the moment a key or its user changes (accounts/key_cache.py).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.key_cache import key_cache
from accounts.models import ApiKey
from exchange import errors
from exchange.ratelimit import Limiter, client_address

# last_used_at is written at most this often per key: a write on every request would make every request of a
# busy key wait on the same row.
LAST_USED_RESOLUTION = timedelta(seconds=60)


_failures: Limiter | None = None


def failure_limiter() -> Limiter:
    """Failed authentications per client address (AUTH_FAILURE_LIMIT per AUTH_FAILURE_WINDOW)."""
    global _failures
    limit, window = settings.AUTH_FAILURE_LIMIT, settings.AUTH_FAILURE_WINDOW
    if _failures is None or (_failures.limit, _failures.window) != (limit, window):
        _failures = Limiter("auth_failures", limit=limit, window=window)
    return _failures


def _load(prefix: str) -> tuple[ApiKey, Any] | None:
    # With the key's own account (a Binance-style key trades one, binance_api.auth.key_account): no query of its
    # own, and held exactly as long as the key is.
    key = ApiKey.objects.select_related("user", "account").filter(prefix=prefix, revoked=False).first()
    return (key, key.user) if key is not None else None


class ApiKeyAuthentication(BaseAuthentication):
    """Brute force: every failed attempt counts against the client's address; once it is over the limit, every
    attempt from there (a correct key included, or a right guess would show) answers 429 ``rate_limited`` with
    ``Retry-After`` until the window ends. A request without credentials is no attempt."""

    keyword = "Api-Key"

    def _raw_key(self, request: Request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == self.keyword.lower():
                return value.strip()
            return None
        value = request.META.get("HTTP_X_API_KEY", "")
        return value.strip() or None

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        raw = self._raw_key(request)
        if raw is None:
            return None
        try:
            key, user = api_key_verify(raw=raw, address=client_address(request))
        except KeyRefused as refused:
            if refused.retry_after is not None:
                raise _rate_limited(refused.retry_after) from None
            raise AuthenticationFailed("Invalid API key.") from None
        return user, key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class KeyRefused(Exception):
    """A key that does not authenticate: unknown, wrong, revoked, expired or its user inactive (``retry_after`` None),
    or asked from an address over its failure limit (``retry_after``: seconds until it may try again)."""

    def __init__(self, retry_after: int | None = None) -> None:
        super().__init__("API key refused")
        self.retry_after = retry_after


# (key prefix, client address) pairs that authenticated rightly in this process (oldest first, bounded).
GOOD_STANDING_MAX = 10_000
_good_standing: dict[tuple[str, str], None] = {}
_good_standing_lock = threading.Lock()


def api_key_verify(*, raw: str, address: str) -> tuple[ApiKey, Any]:
    """The key and user a presented key string names, for every API that takes keys (``/api/v1`` here, the
    Binance facade's ``X-MBX-APIKEY``): one check, one brute-force budget per address. Raises ``KeyRefused``.

    A failure counts against the address. A right key from an address over its failure limit is refused too, or a
    right guess would show. Asking the counters costs a round trip, so a key this process holds, from an address
    that has already used it rightly here, is not asked about (a client in good standing keeps working when others
    behind its address fail). Holding the key is not enough: a wrong guess with its prefix loads it as well."""
    limiter = failure_limiter()
    prefix, dot, _secret = raw.partition(".")
    known = bool(dot and prefix) and (prefix, address) in _good_standing and key_cache.holds(prefix)
    found = key_cache.get(prefix, lambda: _load(prefix)) if dot and prefix else None
    key, user = found if found is not None else (None, None)
    if key is None or key.revoked or not key.is_valid(raw) or key.has_expired or not user.is_active:
        failed = limiter.hit(address)
        raise KeyRefused(None if failed.allowed else failed.retry_after)
    if not known:
        blocked = limiter.peek(address)
        if not blocked.allowed:
            raise KeyRefused(blocked.retry_after)
        with _good_standing_lock:
            if len(_good_standing) >= GOOD_STANDING_MAX:
                _good_standing.pop(next(iter(_good_standing)))
            _good_standing[(prefix, address)] = None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        key_cache.touch(prefix, now)
    return key, user


def _rate_limited(retry_after: int) -> errors.RateLimited:
    return errors.RateLimited(
        "Too many failed authentication attempts from this address; retry later.",
        details={"retry_after_seconds": retry_after},
        retry_after=retry_after,
    )

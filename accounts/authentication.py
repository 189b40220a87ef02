"""API-key authentication: ``Authorization: Api-Key <prefix>.<secret>`` (or ``X-Api-Key: <key>``).

Keys come from djangorestframework-api-key: random, stored only as a SHA-512 hash, looked up by their prefix, through
a per-process cache that the database invalidates the moment a key or its user changes (accounts/key_cache.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from accounts.key_cache import key_cache
from accounts.models import ApiKey

# last_used_at is written at most this often per key: a write on every request would make every request of a
# busy key wait on the same row.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _load(prefix: str) -> tuple[ApiKey, Any] | None:
    key = ApiKey.objects.select_related("user").filter(prefix=prefix, revoked=False).first()
    return (key, key.user) if key is not None else None


class ApiKeyAuthentication(BaseAuthentication):
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
        prefix, dot, _secret = raw.partition(".")
        if not dot or not prefix:
            raise AuthenticationFailed("Invalid API key.")
        found = key_cache.get(prefix, lambda: _load(prefix))
        if found is None:
            raise AuthenticationFailed("Invalid API key.")
        key, user = found
        if key.revoked or not key.is_valid(raw) or key.has_expired or not user.is_active:
            raise AuthenticationFailed("Invalid API key.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
            key_cache.touch(prefix, now)
        return user, key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword

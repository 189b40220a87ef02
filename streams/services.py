"""Stream tokens: how a browser ``EventSource`` (which cannot send headers) authenticates.

``POST /api/v1/stream/token`` with an API key returns a token: the key's id signed (HMAC with SECRET_KEY,
django.core.signing) with its time of issue, valid for ``STREAM_TOKEN_TTL``. It is passed as ``?token=`` on a
stream URL and checked when the stream opens: the key must still exist, be unrevoked and its user active. The token
is a credential: the stream access log records the path without the query string, and the log scrubber redacts
``token`` fields.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils import timezone

from accounts.models import ApiKey

SALT = "exchange.streams.token"


def stream_token_create(*, key: ApiKey) -> tuple[str, datetime]:
    """A signed, short-lived token standing for ``key`` on stream URLs; returns (token, expires at)."""
    token = signing.dumps({"k": key.pk}, salt=SALT, compress=False)
    return token, timezone.now() + timedelta(seconds=settings.STREAM_TOKEN_TTL)


def stream_token_check(*, token: str) -> tuple[Any, ApiKey] | None:
    """(user, key) for a valid, unexpired token whose key is still valid; None otherwise."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.STREAM_TOKEN_TTL)
    except signing.BadSignature:  # SignatureExpired included
        return None
    key = ApiKey.objects.select_related("user").filter(pk=payload.get("k"), revoked=False).first()
    if key is None or key.has_expired or not key.user.is_active:
        return None
    return key.user, key

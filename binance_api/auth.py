"""Binance's request authentication: the ``X-MBX-APIKEY`` header and, on signed endpoints, an HMAC-SHA256
``signature`` of the request's exact parameters with a ``timestamp`` inside ``recvWindow``.

* The API key is one of ours (``<prefix>.<secret>``, the key ``/api/v1`` takes too), checked against its hash through
  the same per-process key cache; failed attempts count against the client's address like ``/api/v1``'s (and
  the WebSocket API's ``apiKey``, binance_api/ws.py: one budget per address).
* The signature is HMAC-SHA256, in hex, keyed by the key's signing secret (accounts/signing.py, decrypted in memory
  only) over ``totalParams``: the query string followed by the request body, exactly as sent, without the
  ``signature`` parameter itself (it may be in either). Nothing is re-encoded, so any client's encoding verifies.
* ``timestamp`` (milliseconds) is accepted when ``serverTime - timestamp <= recvWindow`` and it is less than 1000 ms
  ahead of the server's clock; ``recvWindow`` defaults to 5000 and may not exceed 60000.
* A key trades one account: the one chosen when the key was made, else the user's default account (the oldest one
  not closed). Reads see only that account.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from django.http import HttpRequest

from accounts.authentication import KeyRefused, api_key_verify
from accounts.models import Account, AccountStatus, ApiKey
from accounts.signing import signing_secret_decrypt
from binance_api import errors
from exchange.ratelimit import client_address

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
AHEAD_TOLERANCE_MS = 1000
_KEY = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def now_ms() -> int:
    return int(time.time() * 1000)


class Params:
    """The request's parameters, from the query string and a form body together (Binance reads both)."""

    def __init__(self, request: HttpRequest) -> None:
        self.query = request.META.get("QUERY_STRING", "")
        content_type = request.META.get("CONTENT_TYPE", "")
        body = request.body.decode("utf-8", errors="replace") if request.body else ""
        self.body = body if (not content_type or "form-urlencoded" in content_type) else ""
        self.values: dict[str, str] = {}
        for source in (self.query, self.body):
            for name, value in parse_qsl(source, keep_blank_values=True):
                if name in self.values:
                    raise errors.duplicate_param(name)
                self.values[name] = value

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return None if value is None or value == "" else value

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise errors.mandatory(name)
        return value

    def integer(self, name: str, *, default: int | None = None, minimum: int | None = None) -> int | None:
        raw = self.get(name)
        if raw is None:
            return default
        if not re.fullmatch(r"-?[0-9]{1,19}", raw):
            raise errors.illegal_chars(name, "^[0-9]{1,20}$")
        value = int(raw)
        if minimum is not None and value < minimum:
            raise errors.mandatory(name)
        return value

    def decimal(self, name: str) -> Decimal | None:
        raw = self.get(name)
        if raw is None:
            return None
        if not re.fullmatch(r"[0-9]{1,20}(\.[0-9]{1,20})?", raw):
            raise errors.illegal_chars(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
        try:
            value = Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            raise errors.illegal_chars(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$") from None
        if value <= 0:
            raise errors.invalid("price" if name == "price" else "quantity")
        return value


@dataclass
class Caller:
    key: ApiKey
    user: Any
    account: Account


def _without_signature(raw: str) -> tuple[str, str | None]:
    """(the text without its signature parameter, the signature), both exactly as sent."""
    parts = raw.split("&") if raw else []
    signature = None
    kept = []
    for part in parts:
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def api_key(request: HttpRequest) -> tuple[ApiKey, Any]:
    """The caller's key and user from ``X-MBX-APIKEY`` (brute force counted per address as for /api/v1)."""
    raw = request.META.get("HTTP_X_MBX_APIKEY", "").strip()
    if not raw or not _KEY.match(raw):
        raise errors.bad_api_key_format()
    try:
        return api_key_verify(raw=raw, address=client_address(request))
    except KeyRefused as refused:
        raise key_refused(refused) from None


def key_refused(refused: KeyRefused) -> errors.BinanceError:
    """Binance's answer to a refused key, on /api/v3 and the WebSocket API alike: -2015, or -1003 (429) while the
    address is over its failure limit."""
    if refused.retry_after is not None:
        return errors.BinanceError(
            -1003,
            "Too many failed authentication attempts; retry later.",
            status=429,
            retry_after=refused.retry_after,
        )
    return errors.rejected_api_key()


def verify_signature(*, key: ApiKey, params: Params) -> None:
    """Check ``timestamp``/``recvWindow`` and the HMAC; raises BinanceError."""
    recv_window = params.integer("recvWindow", default=DEFAULT_RECV_WINDOW)
    if recv_window is None or recv_window <= 0 or recv_window > MAX_RECV_WINDOW:
        raise errors.bad_recv_window()
    timestamp = params.integer("timestamp")
    if timestamp is None:
        raise errors.mandatory("timestamp")
    query, in_query = _without_signature(params.query)
    body, in_body = _without_signature(params.body)
    signature = in_query or in_body
    if not signature:
        raise errors.mandatory("signature")
    server = now_ms()
    if timestamp >= server + AHEAD_TOLERANCE_MS:
        raise errors.timestamp_ahead()
    if server - timestamp > recv_window:
        raise errors.timestamp_outside_window()
    secret = signing_secret_decrypt(key.signing_secret_encrypted)
    if secret is None:
        raise errors.rejected_api_key()
    expected = hmac.new(secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise errors.bad_signature()


def key_account(*, key: ApiKey, user: Any) -> Account:
    """The account the key trades: its own, else the user's default (oldest not closed). An Account carrying its
    identity only (its status is checked again under a lock by every money movement).

    A key's own account comes loaded with the key (accounts.authentication._load), so it is cached exactly as long
    as the key is, not in a per-process map by row id that would outlive the row (a recreated row, or on SQLite an
    id reused after a rollback, kept answering another account's public id)."""
    if key.account_id is not None:
        account = key.account
        identity = (account.pk, account.account_id, account.owner_id, account.label)
    else:
        found = (
            Account.objects.filter(owner=user)
            .exclude(status=AccountStatus.CLOSED)
            .order_by("id")
            .values_list("id", "account_id", "owner_id", "label")
            .first()
        )
        if found is None:
            raise errors.unauthorized()
        identity = found
    pk, account_id, owner_id, label = identity
    if owner_id != user.pk:
        raise errors.unauthorized()
    return Account(id=pk, account_id=account_id, owner_id=owner_id, label=label)

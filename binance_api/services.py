"""Writes of the Binance-compatible API: listen keys of the user data stream (no money moves here)."""

from __future__ import annotations

import secrets
import string
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Account, ApiKey
from binance_api import errors
from binance_api.models import ListenKey

LIFETIME = timedelta(minutes=60)
_ALPHABET = string.ascii_letters + string.digits


@transaction.atomic
def listen_key_open(*, api_key: ApiKey, account: Account) -> ListenKey:
    """The key's live listen key for the account, extended by 60 minutes; a new one when it has none (as Binance:
    one active listen key per key and account)."""
    now = timezone.now()
    live = (
        ListenKey.objects.select_for_update()
        .filter(api_key=api_key, account_id=account.pk, expires_at__gt=now)
        .order_by("-expires_at")
        .first()
    )
    if live is not None:
        live.expires_at = now + LIFETIME
        live.save(update_fields=["expires_at"])
        return live
    token = "".join(secrets.choice(_ALPHABET) for _ in range(60))
    return ListenKey.objects.create(listen_key=token, api_key=api_key, account_id=account.pk, expires_at=now + LIFETIME)


def _live(api_key: ApiKey, listen_key: str) -> ListenKey:
    found = (
        ListenKey.objects.select_for_update()
        .filter(api_key=api_key, listen_key=listen_key, expires_at__gt=timezone.now())
        .first()
    )
    if found is None:
        raise errors.BinanceError(-1125, "This listenKey does not exist.")
    return found


@transaction.atomic
def listen_key_keepalive(*, api_key: ApiKey, listen_key: str) -> ListenKey:
    """Extend a live listen key of this API key by 60 minutes (-1125 when it has expired or is not this key's)."""
    found = _live(api_key, listen_key)
    found.expires_at = timezone.now() + LIFETIME
    found.save(update_fields=["expires_at"])
    return found


@transaction.atomic
def listen_key_close(*, api_key: ApiKey, listen_key: str) -> None:
    found = _live(api_key, listen_key)
    found.expires_at = timezone.now()
    found.save(update_fields=["expires_at"])

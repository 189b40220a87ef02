"""Reads for the Binance-compatible API: one key's account's orders and fills, through orders.selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import Account
from markets.models import Market
from orders import selectors as order_selectors
from orders.models import Fill, Order


def account_orders(*, user: Any, account: Account, market: Market | None = None) -> QuerySet[Order]:
    """The account's orders (on one market), newest first."""
    return order_selectors.order_list(
        user=user, key=None, account_id=account.account_id, symbol=market.symbol if market else None
    )


def account_order_find(
    *, user: Any, account: Account, market: Market, order_id: int | None, client_order_id: str | None
) -> Order | None:
    """An order of the account on the market by its numeric id (``orderId``) or its client order id."""
    qs = account_orders(user=user, account=account, market=market)
    if order_id is not None:
        qs = qs.filter(pk=order_id)
    if client_order_id is not None:
        qs = qs.filter(client_order_id=client_order_id)
    return qs.first()


def account_fills(*, user: Any, account: Account, market: Market) -> QuerySet[Fill]:
    """The account's fills on the market, newest first."""
    return order_selectors.trade_list(user=user, key=None, account_id=account.account_id, symbol=market.symbol)


def listen_key_account(*, listen_key: str) -> Account | None:
    """The account whose user data stream a live listen key names (None when unknown, expired or revoked)."""
    from django.utils import timezone

    from binance_api.models import ListenKey

    found = (
        ListenKey.objects.select_related("account", "api_key")
        .filter(listen_key=listen_key, expires_at__gt=timezone.now(), api_key__revoked=False)
        .first()
    )
    return found.account if found is not None else None

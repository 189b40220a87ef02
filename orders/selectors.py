"""Reads for orders and trades. Visibility as for accounts: owners see their own, operators and monitors all."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet

from accounts.models import ApiKey
from accounts.selectors import actor_sees_all
from exchange import errors
from markets.selectors import symbol_normalize
from orders.models import RESTING_STATUSES, Fill, Order, OrderStatus

# An order's fills as the order endpoints show them (each with its trade and journal entry).
FILLS = Prefetch("fills", queryset=Fill.objects.select_related("trade", "trade__journal_entry").order_by("id"))


def _visible(qs: QuerySet[Any], *, user: Any, key: ApiKey | None) -> QuerySet[Any]:
    return qs if actor_sees_all(key=key) else qs.filter(account__owner=user)


def order_list(
    *,
    user: Any,
    key: ApiKey | None,
    account_id: uuid.UUID | None = None,
    symbol: str | None = None,
    side: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Order]:
    qs = _visible(
        Order.objects.select_related("account", "market", "market__base_asset", "market__quote_asset"),
        user=user,
        key=key,
    )
    return _filter(qs, account_id=account_id, symbol=symbol, side=side, status=status, since=since, until=until)


def trade_list(
    *,
    user: Any,
    key: ApiKey | None,
    account_id: uuid.UUID | None = None,
    symbol: str | None = None,
    side: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    order_id: uuid.UUID | None = None,
) -> QuerySet[Fill]:
    qs = _visible(
        Fill.objects.select_related("account", "market", "order", "trade", "trade__journal_entry"), user=user, key=key
    )
    if order_id:
        qs = qs.filter(order__order_id=order_id)
    return _filter(qs, account_id=account_id, symbol=symbol, side=side, status=None, since=since, until=until)


def _filter(
    qs: QuerySet[Any], *, account_id: Any, symbol: Any, side: Any, status: Any, since: Any, until: Any
) -> QuerySet[Any]:
    if account_id:
        qs = qs.filter(account__account_id=account_id)
    if symbol:
        qs = qs.filter(market__symbol=symbol_normalize(symbol))
    if side:
        qs = qs.filter(side=side)
    if status == OrderStatus.OPEN:
        qs = qs.filter(status__in=RESTING_STATUSES)  # "open" means resting: open or partially filled
    elif status:
        qs = qs.filter(status=status)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("-id")


def order_get(*, order_id: Any, user: Any, key: ApiKey | None) -> Order:
    try:
        parsed = uuid.UUID(str(order_id))
    except ValueError:
        raise errors.NotFound("Order not found.", details={"order_id": str(order_id)[:64]}) from None
    order = (
        _visible(
            Order.objects.select_related("account", "market", "market__base_asset", "market__quote_asset"),
            user=user,
            key=key,
        )
        .prefetch_related(FILLS)
        .filter(order_id=parsed)
        .first()
    )
    if order is None:
        raise errors.NotFound("Order not found.", details={"order_id": str(order_id)})
    return order


def order_for_cancel(*, order_id: Any, user: Any) -> Order:
    """One of ``user``'s own orders, read lightly (its state is read again under the market's lock by the cancel):
    another user's order is not found, exactly like one that does not exist."""
    try:
        parsed = uuid.UUID(str(order_id))
    except ValueError:
        raise errors.NotFound("Order not found.", details={"order_id": str(order_id)[:64]}) from None
    order = Order.objects.only("id", "market_id", "account_id").filter(order_id=parsed, account__owner=user).first()
    if order is None:
        raise errors.NotFound("Order not found.", details={"order_id": str(order_id)})
    return order


def order_fills(*, order: Order) -> QuerySet[Fill]:
    """An order's fills as the order endpoints show them, in the order they happened."""
    return Fill.objects.filter(order=order).select_related("trade", "trade__journal_entry").order_by("id")

"""Placing market orders: validation, an immediate fill against house liquidity, and settlement in the ledger.

The order of a fill, all in one database transaction:
1. Business checks that need no lock: account active, market trading, quantity on the step and above the
   minimum, notional within the market's limits and the configured maximum. A failure is recorded as a
   rejected order (no money moves).
2. Price the fill (orders.pricing): the reference price plus half the spread for buys, minus it for sells;
   the taker fee in the quote asset; rounding for the house.
3. Choose house shards: a random shard of the asset the house gives that holds enough (several when one does
   not), and the same shard index for what the house receives and for the fee. Spreading fills over shards
   keeps concurrent fills from queueing on one hot row.
4. ``journal_post`` locks the customer's balance rows, re-checks the balance under the lock (a refusal is
   recorded as a rejected order in the same transaction), and writes one entry with every posting of the
   fill and the fee; then the order (filled) and its trade are inserted; last, the house rows are updated in
   one statement that locks them in id order, so they stay locked only until the commit right after. If a
   concurrent fill drained the chosen shard meanwhile, the database's CHECK constraint refuses the update, the
   transaction rolls back and the order is tried again from fresh balances (finally rejected as
   insufficient_liquidity).
Idempotency: ``client_order_id`` is unique per account in the database. A retry loses the race to insert the
order, its whole transaction (fill included) rolls back, and the original order is returned instead.
A deadlock or serialization failure (which the lock order should prevent) is retried a bounded number of times.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import Account, AccountStatus
from exchange import errors
from exchange.runtime_config import get_config
from ledger.models import EntryKind, LedgerAccount, LedgerAccountKind
from ledger.selectors import asset_map
from ledger.services import Leg, amount_check_precision, journal_post
from markets.models import Market, MarketStatus
from markets.pricing import Fill, price_fill, quantity_for_quote, quote_prices
from markets.services import effective_fee_bps, effective_spread_bps
from orders.models import CANCELABLE_STATUSES, Order, OrderStatus, OrderType, Side, Trade

logger = structlog.get_logger("exchange.orders")

MAX_ATTEMPTS = 4
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


@dataclass(frozen=True)
class OrderRequest:
    account: Account
    market: Market
    side: str
    order_type: str
    quantity: Decimal | None
    quote_quantity: Decimal | None
    client_order_id: str | None = None

    def fingerprint(self) -> str:
        """What a retry with the same client_order_id must repeat exactly."""
        parts = [
            self.market.symbol,
            self.side,
            self.order_type,
            "" if self.quantity is None else f"{self.quantity.normalize():f}",
            "" if self.quote_quantity is None else f"{self.quote_quantity.normalize():f}",
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


class _Rejection(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def order_request_validate(*, request: OrderRequest) -> None:
    """Input errors (400, nothing stored): unsupported type, size fields, precision."""
    if request.order_type != OrderType.MARKET:
        raise errors.UnsupportedOrderType(
            f"Order type {request.order_type!r} is not supported; use 'market'.",
            details={"order_type": request.order_type, "supported": [OrderType.MARKET]},
        )
    if request.side not in Side.values:
        raise errors.ValidationFailed(details={"fields": {"side": ["Must be 'buy' or 'sell'."]}})
    if (request.quantity is None) == (request.quote_quantity is None):
        raise errors.ValidationFailed(
            "Give exactly one of quantity and quote_quantity.",
            details={"fields": {"quantity": ["Exactly one of quantity and quote_quantity is required."]}},
        )
    assets = asset_map()
    for name, value, asset_code in (
        ("quantity", request.quantity, request.market.base_asset_id),
        ("quote_quantity", request.quote_quantity, request.market.quote_asset_id),
    ):
        if value is None:
            continue
        if value <= 0:
            raise errors.InvalidAmount(f"{name} must be positive.", details={"field": name, "value": str(value)})
        if value > Decimal("1e15"):
            raise errors.InvalidAmount(f"{name} is too large.", details={"field": name, "value": str(value)})
        try:
            amount_check_precision(amount=value, asset=assets[asset_code])
        except errors.InvalidAmount as exc:
            raise errors.InvalidAmount(exc.message, details={"field": name, **exc.details}) from None


def _usd_value(market: Market, quote_amount: Decimal) -> Decimal:
    if market.quote_asset_id in ("USD", "USDT"):
        return quote_amount
    price = (
        Market.objects.filter(base_asset_id=market.quote_asset_id, quote_asset_id="USD")
        .values_list("reference_price", flat=True)
        .first()
    )
    return quote_amount * price if price is not None else Decimal(0)


def _price(request: OrderRequest) -> tuple[Fill, Decimal, Decimal]:
    """Check the business rules that need no lock and price the fill. Raises _Rejection."""
    market, account = request.market, request.account
    if account.status == AccountStatus.SUSPENDED:
        raise _Rejection("account_suspended", "The account is suspended.")
    if account.status == AccountStatus.CLOSED:
        raise _Rejection("account_closed", "The account is closed.")
    if market.status != MarketStatus.TRADING:
        raise _Rejection("market_halted", f"{market.symbol} is halted.")
    spread, fee_bps = effective_spread_bps(market), effective_fee_bps(market)
    quote_quantum = asset_map()[market.quote_asset_id].quantum
    bid, ask = quote_prices(reference=market.reference_price, spread_bps=spread, quote_quantum=quote_quantum)
    price = ask if request.side == Side.BUY else bid
    if request.quantity is not None:
        quantity = request.quantity
        if quantity % market.quantity_step != 0:
            raise _Rejection(
                "invalid_quantity_step", f"Quantity must be a multiple of {market.quantity_step.normalize():f}."
            )
    else:
        quantity = quantity_for_quote(
            side=request.side,
            quote_quantity=request.quote_quantity or Decimal(0),
            price=price,
            fee_bps=fee_bps,
            step=market.quantity_step,
            quote_quantum=quote_quantum,
        )
    if quantity < market.min_quantity:
        raise _Rejection("below_min_quantity", f"Quantity is below the minimum {market.min_quantity.normalize():f}.")
    fill = price_fill(side=request.side, quantity=quantity, price=price, fee_bps=fee_bps, quote_quantum=quote_quantum)
    if fill.quote_amount < market.min_notional:
        raise _Rejection("below_min_notional", f"Notional is below the minimum {market.min_notional.normalize():f}.")
    if fill.quote_amount > market.max_notional:
        raise _Rejection("above_max_notional", f"Notional is above the maximum {market.max_notional.normalize():f}.")
    max_usd = Decimal(get_config("trading.max_order_notional_usd"))
    if _usd_value(market, fill.quote_amount) > max_usd:
        raise _Rejection("above_max_notional", f"Notional is above the configured maximum of {max_usd:f} USD.")
    return fill, spread, fee_bps


# The exchange's books (house liquidity and fee revenue shards) are reference rows that never change identity,
# so each process keeps them: asset -> (kind, shard) -> ledger account (its cached balance is not used from here).
_HOUSE_BOOKS: dict[str, dict[tuple[str, int], LedgerAccount]] = {}


def _house_books(asset: str) -> dict[tuple[str, int], LedgerAccount]:
    if not _HOUSE_BOOKS:
        for book in LedgerAccount.objects.filter(
            account__isnull=True, kind__in=(LedgerAccountKind.HOUSE_LIQUIDITY, LedgerAccountKind.FEE_REVENUE)
        ).only("id", "kind", "asset_id", "shard", "account_id"):
            _HOUSE_BOOKS.setdefault(book.asset_id, {})[(book.kind, book.shard)] = book
    return _HOUSE_BOOKS.get(asset, {})


def clear_caches() -> None:
    """Forget the per-process ledger-account caches (tests that recreate the reference data call this)."""
    _HOUSE_BOOKS.clear()
    _CUSTOMER_LEDGER_ACCOUNTS.clear()


def _house_legs(*, market: Market, fill: Fill, optimistic: bool) -> list[Leg]:
    """The house's side of a fill, on one shard index for what it gives, what it takes and the fee.

    Optimistic (first try): a random shard, with no query; the database's CHECK constraint refuses the
    settlement if that shard cannot give enough, and the order is tried again. Otherwise the shards' balances
    are read: a random shard that holds enough, or several (the fullest first) when none does alone. Raises
    _Rejection when the house as a whole cannot cover the fill."""
    base, quote = market.base_asset_id, market.quote_asset_id
    give_asset, give = (base, fill.quantity) if fill.side == Side.BUY else (quote, fill.quote_amount)
    take_asset, take = (quote, fill.quote_amount) if fill.side == Side.BUY else (base, fill.quantity)
    house = {k[1]: b for k, b in _house_books(give_asset).items() if k[0] == LedgerAccountKind.HOUSE_LIQUIDITY}
    legs: list[Leg] = []
    if optimistic:
        primary = house[random.choice(sorted(house))]
        legs.append(Leg(primary, -give))
    else:
        balances = dict(
            LedgerAccount.objects.filter(pk__in=[b.pk for b in house.values()]).values_list("pk", "balance")
        )
        shards = sorted(house.values(), key=lambda b: balances[b.pk], reverse=True)
        able = [b for b in shards if balances[b.pk] >= give]
        if able:
            primary = random.choice(able)
            legs.append(Leg(primary, -give))
        else:
            remaining = give
            for shard in shards:
                if remaining <= 0 or balances[shard.pk] <= 0:
                    break
                part = min(balances[shard.pk], remaining)
                legs.append(Leg(shard, -part))
                remaining -= part
            if remaining > 0 or not legs:
                raise _Rejection(
                    "insufficient_liquidity", f"The exchange cannot supply {give.normalize():f} {give_asset} now."
                )
            primary = shards[0]
    legs.append(Leg(_house_books(take_asset)[(LedgerAccountKind.HOUSE_LIQUIDITY, primary.shard)], take))
    if fill.fee:
        legs.append(Leg(_house_books(quote)[(LedgerAccountKind.FEE_REVENUE, primary.shard)], fill.fee))
    return legs


# Customer ledger accounts never change once an account is opened, so each process remembers them by the
# account's public id (never reused). Bounded: the oldest entries go first.
_CUSTOMER_LEDGER_ACCOUNTS: OrderedDict[uuid.UUID, dict[str, LedgerAccount]] = OrderedDict()
_CUSTOMER_LEDGER_ACCOUNTS_MAX = 10_000


def _customer_available(account: Account) -> dict[str, LedgerAccount]:
    cached = _CUSTOMER_LEDGER_ACCOUNTS.get(account.account_id)
    if cached is None:
        cached = {
            la.asset_id: la
            for la in LedgerAccount.objects.filter(account=account, kind=LedgerAccountKind.CUSTOMER_AVAILABLE).only(
                "id", "kind", "asset_id", "account_id"
            )
        }
        _CUSTOMER_LEDGER_ACCOUNTS[account.account_id] = cached
        if len(_CUSTOMER_LEDGER_ACCOUNTS) > _CUSTOMER_LEDGER_ACCOUNTS_MAX:
            _CUSTOMER_LEDGER_ACCOUNTS.popitem(last=False)
    return cached


def _customer_legs(*, account: Account, market: Market, fill: Fill) -> list[Leg]:
    available = _customer_available(account)
    base_change = fill.quantity if fill.side == Side.BUY else -fill.quantity
    return [
        Leg(available[market.base_asset_id], base_change),
        Leg(available[market.quote_asset_id], fill.customer_quote_change),
    ]


def _save_order(
    request: OrderRequest, *, order_id: uuid.UUID, actor: Any, change_reason: str = "", **outcome: Any
) -> Order:
    """Insert the order as the request asked for it, with its outcome (status, fill figures or rejection), and its
    first history row naming the acting user."""
    order = Order(
        order_id=order_id,
        account=request.account,
        market=request.market,
        side=request.side,
        order_type=request.order_type,
        quantity=request.quantity,
        quote_quantity=request.quote_quantity,
        client_order_id=request.client_order_id,
        request_hash=request.fingerprint(),
        created_by=actor if getattr(actor, "pk", None) else None,
        **outcome,
    )
    order._history_user = order.created_by  # type: ignore[attr-defined]
    if change_reason:
        order._change_reason = change_reason  # type: ignore[attr-defined]
    order.save()
    return order


def _reject(request: OrderRequest, *, actor: Any, reason: str, message: str, order_id: uuid.UUID) -> Order:
    order = _save_order(
        request,
        order_id=order_id,
        actor=actor,
        change_reason=f"rejected: {reason}",
        status=OrderStatus.REJECTED,
        reject_reason=reason,
        reject_message=message[:300],
    )
    logger.info(
        "order_rejected", order_id=str(order_id), reason=reason, symbol=request.market.symbol, side=request.side
    )
    return order


def _place(request: OrderRequest, *, actor: Any, attempt: int = 1) -> Order:
    order_id, trade_id = uuid.uuid4(), uuid.uuid4()
    try:
        fill, spread, fee_bps = _price(request)
        legs = _customer_legs(account=request.account, market=request.market, fill=fill)
        legs += _house_legs(market=request.market, fill=fill, optimistic=attempt == 1)
    except _Rejection as rejection:
        return _reject(request, actor=actor, reason=rejection.reason, message=rejection.message, order_id=order_id)
    market = request.market
    records: dict[str, Any] = {}

    def record_fill(entry: Any) -> None:
        """The order and its trade, written before the house rows are touched (journal_post does those last)."""
        order = _save_order(
            request,
            order_id=order_id,
            actor=actor,
            status=OrderStatus.FILLED,
            filled_quantity=fill.quantity,
            filled_quote=fill.quote_amount,
            average_price=fill.price,
            fee=fill.fee,
            fee_asset_id=market.quote_asset_id,
            filled_at=timezone.now(),
        )
        records["order"] = order
        records["trade"] = Trade.objects.create(
            trade_id=trade_id,
            order=order,
            account=request.account,
            market=market,
            side=fill.side,
            quantity=fill.quantity,
            price=fill.price,
            quote_amount=fill.quote_amount,
            fee=fill.fee,
            fee_asset_id=market.quote_asset_id,
            reference_price=market.reference_price,
            spread_bps=spread,
            fee_bps=fee_bps,
            journal_entry=entry,
        )

    try:
        journal_post(
            kind=EntryKind.TRADE,
            legs=legs,
            actor=actor,
            memo=f"{fill.side} {fill.quantity.normalize():f} {market.symbol} @ {fill.price.normalize():f}",
            reference_type="trade",
            reference_id=str(trade_id),
            metadata={
                "order_id": str(order_id),
                "trade_id": str(trade_id),
                "symbol": market.symbol,
                "side": fill.side,
                "quantity": f"{fill.quantity:f}",
                "price": f"{fill.price:f}",
                "quote_amount": f"{fill.quote_amount:f}",
                "fee": f"{fill.fee:f}",
            },
            before_books=record_fill,
        )
    except errors.InsufficientBalance as exc:
        return _reject(request, actor=actor, reason=exc.code, message=exc.message, order_id=order_id)
    order = records["order"]
    # Hand the fill to the caller as if prefetched (saves the serializer a query). A queryset, as Django's own
    # prefetch stores it, so order.fills.get() / .filter() / .exists() keep working on the returned order.
    fills = order.fills.all()
    fills._result_cache, fills._prefetch_done = [records["trade"]], True  # type: ignore[attr-defined]
    order._prefetched_objects_cache = {"fills": fills}  # type: ignore[attr-defined]
    return order


def _replay(request: OrderRequest) -> Order | None:
    if not request.client_order_id:
        return None
    original = Order.objects.filter(account=request.account, client_order_id=request.client_order_id).first()
    if original is None:
        return None
    if original.request_hash != request.fingerprint():
        raise errors.ClientOrderIdConflict(
            details={"client_order_id": request.client_order_id, "order_id": str(original.order_id)}
        )
    return original


def order_place(*, request: OrderRequest, actor: Any) -> tuple[Order, bool]:
    """Place a market order. Returns (order, created); created is False for an idempotent replay.
    A rejected order is returned (status rejected), not raised: it is recorded and the caller reports it."""
    order_request_validate(request=request)
    retryable = not connection.in_atomic_block
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return _place(request, actor=actor, attempt=attempt), True
        except IntegrityError:
            replay = _replay(request)
            if replay is None:
                raise
            return replay, False
        except errors.LiquidityContention:
            # The shard chosen from an unlocked read ran dry before settlement; everything was rolled back.
            # Choose again from fresh balances; after the last try, record the refusal.
            logger.info("order_retry", attempt=attempt, reason="liquidity_contention")
            if attempt == MAX_ATTEMPTS:
                with transaction.atomic():
                    return _reject(
                        request,
                        actor=actor,
                        reason=errors.InsufficientLiquidity.code,
                        message=errors.InsufficientLiquidity.default_message,
                        order_id=uuid.uuid4(),
                    ), True
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if not retryable or sqlstate not in RETRYABLE_SQLSTATES:
                raise
            logger.warning("order_retry", attempt=attempt, sqlstate=sqlstate)
            if attempt == MAX_ATTEMPTS:
                raise errors.ServiceUnavailable("The order could not be placed; retry.") from exc
    raise AssertionError("unreachable")


@transaction.atomic
def order_cancel(*, order: Order, actor: Any) -> Order:
    """Cancel an order that can still be cancelled. Market orders never can: they end filled or rejected.
    Conditional update: of two concurrent cancels (or a cancel and a fill) only one wins."""
    updated = Order.objects.filter(pk=order.pk, status__in=CANCELABLE_STATUSES).update(
        status=OrderStatus.CANCELLED, updated_at=timezone.now()
    )
    if not updated:
        order.refresh_from_db(fields=["status"])
        raise errors.OrderNotCancelable(
            f"The order is {order.status} and can no longer be cancelled.",
            details={"order_id": str(order.order_id), "status": order.status},
        )
    order.refresh_from_db()
    order._history_user = actor  # type: ignore[attr-defined]
    order._change_reason = "cancelled"  # type: ignore[attr-defined]
    order.save(update_fields=["updated_at"])
    return order

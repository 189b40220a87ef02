"""Placing and cancelling orders on a market's central limit order book.

Placement is one story, in one database transaction (``order_place``):

1. **validate** the request (400, nothing stored): type, side, size, price and time in force, precision;
2. **lock** the market (matching on it is serialized by its row), share-lock the account and re-check its status,
   re-check the API key, read the market's rules and the book (orders/store.py); a business refusal from here on
   is stored as a rejected order (422) and moves nothing;
3. **match** against the opposite side of the book, customers' resting orders and the house's ladder merged, by
   price-time priority (orders/matching.py, pure arithmetic);
4. **reserve and settle**: one balanced journal entry per trade (both sides, both fees), a reservation entry from
   available to locked for what rests, a release entry for each resting order self-trade prevention expired;
   the balance rows are locked and the taker's checked before anything is written (refused: ``insufficient_balance``);
5. **rest or expire**: a GTC remainder rests in the book, an IOC or market remainder expires.

Cancelling locks the market too, so a cancel and a fill of the same order are serialized: exactly one wins and the
reservation is released exactly once. A new reference price moves the house's ladder; the resting customer orders it
now crosses are filled against the house in the same transaction, so the book is never crossed after a commit.

Idempotency: ``client_order_id`` is unique per account in the database. A retry loses the race to insert the
order, its whole transaction rolls back, and the original order is returned instead. A house shard drained by a
concurrent order, a deadlock or a serialization failure rolls back and is retried a bounded number of times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import Account, AccountStatus
from chaos import effects as chaos_effects
from chaos.effects import NO_FAULTS, OrderFaults
from exchange import errors
from exchange.runtime_config import get_config
from ledger.batch import Book, JournalBatch, available, locked
from ledger.models import EntryKind, JournalEntry, LedgerAccount, LedgerAccountKind
from ledger.selectors import asset_map
from ledger.services import amount_check_precision
from markets import services as market_services
from markets.ladder import house_ladder
from markets.models import Market, MarketStatus
from orders.matching import (
    BUY,
    SELL,
    BookOrder,
    EndReason,
    HouseLevel,
    Incoming,
    Match,
    Outcome,
    RejectReason,
    Terms,
    average_price,
    house_takes_crossed,
    match_incoming,
)
from orders.models import (
    RESTING_STATUSES,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
)
from orders.models import (
    Liquidity as LiquidityRole,
)
from orders.store import PAGE, Candle, LockedBook, MarketRow, Settlement, book_store

logger = structlog.get_logger("exchange.orders")

MAX_ATTEMPTS = 4
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
MAX_AMOUNT = Decimal("1e15")
ZERO = Decimal(0)


@dataclass(frozen=True)
class OrderRequest:
    account: Account
    market: Market
    side: str
    order_type: str
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str | None = None
    post_only: bool = False
    self_trade_prevention: str = SelfTradePrevention.EXPIRE_TAKER
    client_order_id: str | None = None
    # The API key that sent the order: re-checked under the lock, so a key revoked a moment ago places nothing.
    key_id: str | None = None

    @property
    def tif(self) -> str:
        if self.order_type == OrderType.MARKET:
            return ""
        return self.time_in_force or TimeInForce.GTC

    def fingerprint(self) -> str:
        """What a retry with the same client_order_id must repeat exactly."""

        def num(value: Decimal | None) -> str:
            return "" if value is None else f"{value.normalize():f}"

        parts = [
            self.market.symbol,
            self.side,
            self.order_type,
            num(self.quantity),
            num(self.quote_quantity),
            num(self.price),
            self.tif,
            "post_only" if self.post_only else "",
            self.self_trade_prevention,
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass
class PlacedOrder:
    """The order as placed (saved), with its fills, for the caller to render without reading it back."""

    order: Order
    fills: list[Fill] = field(default_factory=list)
    # The chaos faults that acted on it (chaos/effects.py OrderFaults), for the API to lose the answer if asked.
    chaos: Any = None


class _Rejection(Exception):
    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


# --- 1. validate -------------------------------------------------------------------------------------------------
def order_request_validate(*, request: OrderRequest) -> None:
    """Input errors (400, nothing stored): what the order is, and amounts a market could never accept."""
    if request.order_type not in OrderType.values:
        raise errors.UnsupportedOrderType(
            f"Order type {request.order_type!r} is not supported.",
            details={"order_type": request.order_type, "supported": OrderType.values},
        )
    if request.side not in Side.values:
        raise errors.ValidationFailed(details={"fields": {"side": ["Must be 'buy' or 'sell'."]}})
    if request.self_trade_prevention not in SelfTradePrevention.values:
        raise errors.ValidationFailed(
            details={"fields": {"self_trade_prevention": [f"Must be one of {SelfTradePrevention.values}."]}}
        )
    if request.order_type == OrderType.MARKET:
        for name, given in (
            ("price", request.price is not None),
            ("time_in_force", request.time_in_force not in (None, "")),
            ("post_only", request.post_only),
        ):
            if given:
                raise errors.ParameterNotAllowed(
                    f"{name} is not allowed on a market order.", details={"field": name, "order_type": "market"}
                )
        if (request.quantity is None) == (request.quote_quantity is None):
            raise errors.ValidationFailed(
                "Give exactly one of quantity and quote_quantity.",
                details={"fields": {"quantity": ["Exactly one of quantity and quote_quantity is required."]}},
            )
    else:
        if request.quote_quantity is not None:
            raise errors.ParameterNotAllowed(
                "quote_quantity is not allowed on a limit order; give quantity and price.",
                details={"field": "quote_quantity", "order_type": "limit"},
            )
        missing = [n for n, v in (("price", request.price), ("quantity", request.quantity)) if v is None]
        if missing:
            raise errors.ValidationFailed(
                "A limit order needs a price and a quantity.",
                details={"fields": {name: ["Required for a limit order."] for name in missing}},
            )
        if request.tif not in TimeInForce.values:
            raise errors.ValidationFailed(
                details={"fields": {"time_in_force": [f"Must be one of {TimeInForce.values}."]}}
            )
        if request.post_only and request.tif != TimeInForce.GTC:
            raise errors.ParameterNotAllowed(
                "A post-only order rests in the book: its time in force must be gtc.",
                details={"field": "post_only", "time_in_force": request.tif},
            )
    assets = asset_map()
    for name, value, asset_code in (
        ("quantity", request.quantity, request.market.base_asset_id),
        ("quote_quantity", request.quote_quantity, request.market.quote_asset_id),
        ("price", request.price, request.market.quote_asset_id),
    ):
        if value is None:
            continue
        if value <= 0:
            raise errors.InvalidAmount(f"{name} must be positive.", details={"field": name, "value": str(value)})
        if value > MAX_AMOUNT:
            raise errors.InvalidAmount(f"{name} is too large.", details={"field": name, "value": str(value)})
        try:
            amount_check_precision(amount=value, asset=assets[asset_code])
        except errors.InvalidAmount as exc:
            raise errors.InvalidAmount(exc.message, details={"field": name, **exc.details}) from None


# --- 2. business rules under the lock ----------------------------------------------------------------------------
def _check_rules(request: OrderRequest, book: LockedBook) -> None:
    """Refusals that need the locked rows: the account, the market's status and rules. Raises _Rejection."""
    if not book.key_valid:
        raise errors.NotAuthenticated("The API key is no longer valid.")
    if book.account_status == AccountStatus.CLOSED:
        raise _Rejection(RejectReason.ACCOUNT_CLOSED, "The account is closed.")
    if book.account_status == AccountStatus.SUSPENDED:
        raise _Rejection(RejectReason.ACCOUNT_SUSPENDED, "The account is suspended.")
    market = book.market
    if market.status != MarketStatus.TRADING:
        raise _Rejection(RejectReason.MARKET_HALTED, f"{market.symbol} is halted.")
    if request.quantity is not None:
        if request.quantity % market.quantity_step != 0:
            raise _Rejection(
                RejectReason.INVALID_QUANTITY_STEP,
                f"Quantity must be a multiple of {market.quantity_step.normalize():f}.",
            )
        if request.quantity < market.min_quantity:
            raise _Rejection(
                RejectReason.BELOW_MIN_QUANTITY, f"Quantity is below the minimum {market.min_quantity.normalize():f}."
            )
    if request.price is not None:
        if request.price % market.price_tick != 0:
            raise _Rejection(
                RejectReason.INVALID_PRICE_TICK, f"Price must be a multiple of {market.price_tick.normalize():f}."
            )
        _check_notional(market, request.price * (request.quantity or ZERO))
    else:
        # A market order's size in the quote asset, estimated at the reference price, may not exceed the maximum
        # (its actual notional is checked against the minimum once it has matched).
        estimate = request.quote_quantity or (request.quantity or ZERO) * market.reference_price
        _check_notional(market, estimate, minimum=False)


def _check_notional(market: MarketRow, notional: Decimal, *, minimum: bool = True, maximum: bool = True) -> None:
    if minimum and notional < market.min_notional:
        raise _Rejection(
            RejectReason.BELOW_MIN_NOTIONAL, f"Notional is below the minimum {market.min_notional.normalize():f}."
        )
    if not maximum:
        return
    if notional > market.max_notional:
        raise _Rejection(
            RejectReason.ABOVE_MAX_NOTIONAL, f"Notional is above the maximum {market.max_notional.normalize():f}."
        )
    max_usd = Decimal(get_config("trading.max_order_notional_usd"))
    if _usd_value(market, notional) > max_usd:
        raise _Rejection(
            RejectReason.ABOVE_MAX_NOTIONAL, f"Notional is above the configured maximum of {max_usd:f} USD."
        )


def _usd_value(market: MarketRow, quote_amount: Decimal) -> Decimal:
    if market.quote in ("USD", "USDT"):
        return quote_amount
    price = (
        Market.objects.filter(base_asset_id=market.quote, quote_asset_id="USD")
        .values_list("reference_price", flat=True)
        .first()
    )
    return quote_amount * price if price is not None else ZERO


# --- 3. the book -------------------------------------------------------------------------------------------------
def _terms(market: MarketRow) -> Terms:
    return Terms(quantity_step=market.quantity_step, quote_quantum=asset_map()[market.quote].quantum)


def _ladder(book: LockedBook) -> tuple[list[HouseLevel], list[HouseLevel]]:
    bids, asks = house_ladder(
        market_services.ladder_settings(book.market),
        base_inventory=book.base_inventory,
        quote_inventory=book.quote_inventory,
    )
    return [HouseLevel(p, q) for p, q in bids], [HouseLevel(p, q) for p, q in asks]


def _opposite(side: str) -> str:
    return SELL if side == BUY else BUY


def _better(side: str, a: Decimal, b: Decimal) -> bool:
    """Whether price ``a`` comes before ``b`` on the book side ``side`` (asks: lower first; bids: higher first)."""
    return a < b if side == SELL else a > b


def _liquidity(book: LockedBook, *, side: str, limit: Decimal | None) -> Any:
    """The ``side`` of the book in priority order: resting customer orders (paged from the store) merged with the
    house's ladder; at one price, customers first."""
    bids, asks = _ladder(book)
    house = iter(asks if side == SELL else bids)
    store = book_store()

    def customers() -> Any:
        page = book.resting
        while page:
            yield from page
            if len(page) < PAGE:
                return
            last = page[-1]
            page = store.resting(
                market_pk=book.market.pk, side=side, limit=limit, after=(last.price, last.pk), count=PAGE
            )

    orders = customers()
    order = next(orders, None)
    level = next(house, None)
    while order is not None or level is not None:
        if level is None or (order is not None and not _better(side, level.price, order.price)):
            yield order
            order = next(orders, None)
        else:
            yield level
            level = next(house, None)


# --- 4. settlement -----------------------------------------------------------------------------------------------
# The exchange's books (house liquidity and fee revenue shards) are reference rows that never change identity,
# so each process keeps them: asset -> (kind, shard) -> ledger account id.
_HOUSE_BOOKS: dict[str, dict[tuple[str, int], int]] = {}


def _house_books(asset: str) -> dict[tuple[str, int], int]:
    if not _HOUSE_BOOKS:
        for pk, kind, asset_id, shard in LedgerAccount.objects.filter(
            account__isnull=True, kind__in=(LedgerAccountKind.HOUSE_LIQUIDITY, LedgerAccountKind.FEE_REVENUE)
        ).values_list("id", "kind", "asset_id", "shard"):
            _HOUSE_BOOKS.setdefault(asset_id, {})[(kind, shard)] = pk
    return _HOUSE_BOOKS.get(asset, {})


def clear_caches() -> None:
    """Forget the per-process caches of reference rows' ids (tests that recreate the reference data call this)."""
    from markets.selectors import clear_identities

    _HOUSE_BOOKS.clear()
    clear_identities()


class _HouseSide:
    """Chooses the house shards of one settlement: every leg of what the house takes and of the fees goes to one
    shard index; what it gives comes from that shard too, or (on a retry, from fresh balances) from as many shards
    as it takes. The first try picks at random without a query; the database's CHECK constraint refuses the
    settlement if that shard cannot give enough, and the order is tried again."""

    def __init__(self, *, optimistic: bool, assets: tuple[str, str]) -> None:
        shards = sorted(s for kind, s in _house_books(assets[0]) if kind == LedgerAccountKind.HOUSE_LIQUIDITY)
        self.balances: dict[int, Decimal] | None = None
        if not optimistic:
            ids = [
                pk
                for a in assets
                for (kind, _), pk in _house_books(a).items()
                if kind == LedgerAccountKind.HOUSE_LIQUIDITY
            ]
            self.balances = dict(LedgerAccount.objects.filter(pk__in=ids).values_list("pk", "balance"))
        self.primary = random.choice(shards)

    def book(self, kind: str, asset: str, shard: int | None = None) -> Book:
        return Book(kind, asset, pk=_house_books(asset)[(kind, self.primary if shard is None else shard)])

    def give(self, asset: str, amount: Decimal) -> list[tuple[Book, Decimal]]:
        """Legs taking ``amount`` of ``asset`` out of house liquidity."""
        if self.balances is None:
            return [(self.book(LedgerAccountKind.HOUSE_LIQUIDITY, asset), -amount)]
        shards = sorted(
            ((s, pk) for (kind, s), pk in _house_books(asset).items() if kind == LedgerAccountKind.HOUSE_LIQUIDITY),
            key=lambda item: self.balances.get(item[1], ZERO),  # type: ignore[union-attr]
            reverse=True,
        )
        primary_pk = _house_books(asset)[(LedgerAccountKind.HOUSE_LIQUIDITY, self.primary)]
        if self.balances.get(primary_pk, ZERO) >= amount:
            shards = [(self.primary, primary_pk)]
        legs, left = [], amount
        for _shard, pk in shards:
            part = min(self.balances.get(pk, ZERO), left)
            if part <= 0:
                continue
            legs.append((Book(LedgerAccountKind.HOUSE_LIQUIDITY, asset, pk=pk), -part))
            self.balances[pk] -= part
            left -= part
            if left <= 0:
                break
        if left > 0:
            raise _Rejection(
                RejectReason.INSUFFICIENT_LIQUIDITY, f"The exchange cannot supply {amount.normalize():f} {asset} now."
            )
        return legs

    def take(self, asset: str, amount: Decimal) -> list[tuple[Book, Decimal]]:
        book = self.book(LedgerAccountKind.HOUSE_LIQUIDITY, asset)
        if self.balances is not None:
            self.balances[book.pk] = self.balances.get(book.pk, ZERO) + amount  # type: ignore[index]
        return [(book, amount)]

    def fee(self, asset: str, amount: Decimal) -> list[tuple[Book, Decimal]]:
        return [(self.book(LedgerAccountKind.FEE_REVENUE, asset), amount)]


@dataclass
class _Ledger:
    """Builds the journal entries of one settlement."""

    market: MarketRow
    house: _HouseSide
    batch: JournalBatch = field(default_factory=JournalBatch)

    def trade(self, match: Match, *, taker_pk: int | None, taker_order_id: uuid.UUID | None) -> uuid.UUID:
        """One entry settling both sides of ``match`` and both fees."""
        base, quote = self.market.base, self.market.quote
        q = match.quantity
        buyer_pays = match.taker_quote if match.taker_side == BUY else match.maker_quote
        seller_gets = match.maker_quote if match.taker_side == BUY else match.taker_quote
        legs: list[tuple[Book, Decimal]] = []
        # The taker's side: a customer's available balance, or the house.
        if taker_pk is not None:
            if match.taker_side == BUY:
                legs += [(available(taker_pk, base), q), (available(taker_pk, quote), -(buyer_pays + match.taker_fee))]
            else:
                legs += [(available(taker_pk, base), -q), (available(taker_pk, quote), seller_gets - match.taker_fee)]
        elif match.taker_side == BUY:
            legs += self.house.take(base, q) + self.house.give(quote, buyer_pays)
        else:
            legs += self.house.give(base, q) + self.house.take(quote, seller_gets)
        # The maker's side: a resting order (its reservation pays) or the house's quote.
        maker = match.maker
        if maker is not None:
            if maker.side == BUY:
                legs += [
                    (locked(maker.account_pk, quote), -(buyer_pays + match.maker_fee)),
                    (available(maker.account_pk, base), q),
                ]
            else:
                legs += [
                    (locked(maker.account_pk, base), -q),
                    (available(maker.account_pk, quote), seller_gets - match.maker_fee),
                ]
        elif match.taker_side == BUY:
            legs += self.house.give(base, q) + self.house.take(quote, buyer_pays)
        else:
            legs += self.house.take(base, q) + self.house.give(quote, seller_gets)
        revenue = match.taker_fee + match.maker_fee + match.rounding
        if revenue:
            legs += self.house.fee(quote, revenue)
        entry = self.batch.add(
            kind=EntryKind.TRADE,
            legs=legs,
            reference_type="trade",
            reference_id=str(match.trade_id),
            memo=f"{match.taker_side} {q.normalize():f} {self.market.symbol} @ {match.price.normalize():f}",
            metadata={
                "trade_id": str(match.trade_id),
                "symbol": self.market.symbol,
                "price": f"{match.price:f}",
                "quantity": f"{q:f}",
                "taker_order_id": str(taker_order_id) if taker_order_id else None,
                "maker_order_id": str(maker.order_id) if maker is not None else None,
                "order_by_account": {
                    **({str(taker_pk): str(taker_order_id)} if taker_pk is not None else {}),
                    **({str(maker.account_pk): str(maker.order_id)} if maker is not None else {}),
                },
            },
        )
        return entry.entry_id

    def reserve(self, *, account_pk: int, asset: str, amount: Decimal, order_id: uuid.UUID) -> None:
        if amount:
            self.batch.add(
                kind=EntryKind.RESERVATION,
                legs=[(available(account_pk, asset), -amount), (locked(account_pk, asset), amount)],
                reference_type="order",
                reference_id=str(order_id),
                memo=f"reserve {amount.normalize():f} {asset} for order {order_id}",
                metadata={"order_id": str(order_id), "asset": asset, "amount": f"{amount:f}"},
            )

    def release(self, *, account_pk: int, asset: str, amount: Decimal, order_id: uuid.UUID, why: str) -> None:
        if amount:
            self.batch.add(
                kind=EntryKind.RELEASE,
                legs=[(locked(account_pk, asset), -amount), (available(account_pk, asset), amount)],
                reference_type="order",
                reference_id=str(order_id),
                memo=f"release {amount.normalize():f} {asset} of order {order_id} ({why})",
                metadata={"order_id": str(order_id), "asset": asset, "amount": f"{amount:f}", "reason": why},
            )


def _maker_row(maker: BookOrder, *, now: datetime, quote: str, quantum: Decimal) -> Order:
    """The resting order's new state after matching (only the columns matching changes are set)."""
    if maker.expired:
        status, reason = OrderStatus.EXPIRED, EndReason.SELF_TRADE_PREVENTION
    elif maker.remaining <= 0:
        status, reason = OrderStatus.FILLED, ""
    else:
        status, reason = OrderStatus.PARTIALLY_FILLED, ""
    return Order(
        pk=maker.pk,
        order_id=maker.order_id,
        status=status,
        remaining_quantity=maker.remaining,
        locked=ZERO if status != OrderStatus.PARTIALLY_FILLED else maker.locked,
        filled_quantity=maker.filled_quantity,
        filled_quote=maker.filled_quote,
        average_price=maker.average_price,
        fee=maker.fee,
        fee_asset_id=quote,
        end_reason=reason,
        updated_at=now,
        filled_at=now if status == OrderStatus.FILLED else None,
    )


def _record_matches(
    *,
    ledger: _Ledger,
    matches: list[Match],
    settlement: Settlement,
    market: Market,
    book: LockedBook,
    taker: Order | None,
) -> None:
    """Trades, fills and their entries for ``matches``; the makers' new rows. ``taker`` None: the house took."""
    now, quote = settlement.now, book.market.quote
    quantum = asset_map()[quote].quantum
    spread = market_services.effective_spread_bps(book.market)
    makers: dict[int, BookOrder] = {}
    for match in matches:
        entry_id = ledger.trade(
            match,
            taker_pk=taker.account_id if taker is not None else None,
            taker_order_id=taker.order_id if taker is not None else None,
        )
        maker_order = Order(pk=match.maker.pk, order_id=match.maker.order_id) if match.maker is not None else None
        trade = Trade(
            trade_id=match.trade_id,
            market_id=book.market.pk,
            price=match.price,
            quantity=match.quantity,
            taker_side=match.taker_side,
            taker_order=taker,
            taker_account_id=taker.account_id if taker is not None else None,
            taker_quote=match.taker_quote,
            taker_fee=match.taker_fee,
            taker_fee_bps=taker.taker_fee_bps if taker is not None else ZERO,
            maker_order=maker_order,
            maker_account_id=match.maker.account_pk if match.maker is not None else None,
            maker_quote=match.maker_quote,
            maker_fee=match.maker_fee,
            maker_fee_bps=match.maker.maker_fee_bps if match.maker is not None else ZERO,
            fee_asset_id=quote,
            reference_price=book.market.reference_price,
            spread_bps=spread,
            created_at=now,
        )
        trade.market = market
        trade.journal_entry = JournalEntry(entry_id=entry_id)  # for rendering; the store writes the row
        settlement.trades.append(trade)
        settlement.trade_entries[match.trade_id] = entry_id
        if taker is not None:
            settlement.fills.append(
                _fill(trade, taker, match.taker_side, LiquidityRole.TAKER, match.taker_quote, match.taker_fee)
            )
        if match.maker is not None:
            makers[match.maker.pk] = match.maker
            maker_side = SELL if match.taker_side == BUY else BUY
            settlement.fills.append(
                _fill(
                    trade,
                    maker_order,
                    maker_side,
                    LiquidityRole.MAKER,
                    match.maker_quote,
                    match.maker_fee,
                    account_pk=match.maker.account_pk,
                )
            )
    for maker in makers.values():
        if maker.remaining <= 0 and maker.side == BUY and maker.locked:
            # Filled completely: the cumulative rounding spends the reservation to the unit (orders/matching.py);
            # anything left would be a bug, so it is released visibly rather than kept locked.
            ledger.release(
                account_pk=maker.account_pk, asset=quote, amount=maker.locked, order_id=maker.order_id, why="filled"
            )
        settlement.changed_orders.append(_maker_row(maker, now=now, quote=quote, quantum=quantum))
    if matches:
        prices = [m.price for m in matches]
        settlement.candle = Candle(
            open_time=now.replace(second=0, microsecond=0),
            open=prices[0],
            high=max(prices),
            low=min(prices),
            close=prices[-1],
            volume=sum((m.quantity for m in matches), ZERO),
            quote_volume=sum((m.taker_quote for m in matches), ZERO),
            trades=len(matches),
        )


def _fill(
    trade: Trade,
    order: Order | None,
    side: str,
    liquidity: str,
    quote_amount: Decimal,
    fee: Decimal,
    *,
    account_pk: int | None = None,
) -> Fill:
    fill = Fill(
        trade=trade,
        order=order,
        account_id=account_pk if account_pk is not None else order.account_id,  # type: ignore[union-attr]
        market_id=trade.market_id,
        side=side,
        liquidity=liquidity,
        price=trade.price,
        quantity=trade.quantity,
        quote_amount=quote_amount,
        fee=fee,
        fee_asset_id=trade.fee_asset_id,
        created_at=trade.created_at,
    )
    fill.market = trade.market
    return fill


def _release_expired_makers(ledger: _Ledger, outcome: Outcome, settlement: Settlement, book: LockedBook) -> None:
    quantum = asset_map()[book.market.quote].quantum
    for maker in outcome.expired_makers:
        asset = book.market.quote if maker.side == BUY else book.market.base
        ledger.release(
            account_pk=maker.account_pk,
            asset=asset,
            amount=maker.locked,
            order_id=maker.order_id,
            why=EndReason.SELF_TRADE_PREVENTION,
        )
        if not any(o.pk == maker.pk for o in settlement.changed_orders):
            settlement.changed_orders.append(
                _maker_row(maker, now=settlement.now, quote=book.market.quote, quantum=quantum)
            )


# --- the story ---------------------------------------------------------------------------------------------------
def _new_order(request: OrderRequest, *, order_id: uuid.UUID, actor: Any, now: datetime, **state: Any) -> Order:
    order = Order(
        order_id=order_id,
        account=request.account,
        market=request.market,
        side=request.side,
        order_type=request.order_type,
        time_in_force=request.tif,
        post_only=request.post_only,
        self_trade_prevention=request.self_trade_prevention,
        quantity=request.quantity,
        quote_quantity=request.quote_quantity,
        price=request.price,
        client_order_id=request.client_order_id,
        request_hash=request.fingerprint(),
        created_by_id=getattr(actor, "pk", None),
        created_at=now,
        updated_at=now,
        **state,
    )
    if request.quantity is not None and "remaining_quantity" not in state:
        order.remaining_quantity = request.quantity - order.filled_quantity
    return order


def _reject(
    request: OrderRequest, *, actor: Any, reason: str, message: str, order_id: uuid.UUID, chaos_id: str = ""
) -> PlacedOrder:
    """Store the refusal (nothing moves) and return it."""
    now = timezone.now()
    order = _new_order(
        request,
        order_id=order_id,
        actor=actor,
        now=now,
        status=OrderStatus.REJECTED,
        reject_reason=str(reason),
        reject_message=message[:300],
        chaos_id=chaos_id,
    )
    order._history_user = actor if getattr(actor, "pk", None) else None  # type: ignore[attr-defined]
    order._change_reason = f"rejected: {reason}" + (f" (chaos {chaos_id})" if chaos_id else "")  # type: ignore[attr-defined]
    order.save(force_insert=True)
    logger.info(
        "order_rejected", order_id=str(order_id), reason=str(reason), symbol=request.market.symbol, side=request.side
    )
    return PlacedOrder(order)


def _place(request: OrderRequest, *, actor: Any, attempt: int, faults: OrderFaults = NO_FAULTS) -> PlacedOrder:
    order_id = uuid.uuid4()
    store = book_store()
    limit = request.price if request.order_type == OrderType.LIMIT else None
    opposite = _opposite(request.side)
    book = store.lock_book(
        market_pk=request.market.pk, account_pk=request.account.pk, key_id=request.key_id, side=opposite, limit=limit
    )
    market = book.market
    chaos_rejection = False
    try:
        _check_rules(request, book)
        if faults.reject_reason:  # chaos: recorded as a rejection for the reason asked, under the same locks
            chaos_rejection = True
            raise _Rejection(RejectReason(faults.reject_reason), faults.reject_message)
        incoming = Incoming(
            account_pk=request.account.pk,
            side=request.side,
            order_type=request.order_type,
            price=request.price,
            quantity=request.quantity,
            quote_quantity=request.quote_quantity,
            time_in_force=request.tif,
            post_only=request.post_only,
            self_trade_prevention=request.self_trade_prevention,
            taker_fee_bps=market_services.effective_fee_bps(market),
            maker_fee_bps=market_services.effective_maker_fee_bps(market),
            max_fill_fraction=faults.max_fill_fraction,
        )
        outcome = match_incoming(incoming, _liquidity(book, side=opposite, limit=limit), _terms(market))
        if outcome.reject_reason is not None:
            raise _Rejection(outcome.reject_reason, outcome.reject_message)
        if request.order_type == OrderType.MARKET and outcome.matches:
            # What it traded (a market order that self-trade prevention stopped before any match just expires).
            _check_notional(market, outcome.filled_quote, maximum=False)
        now = timezone.now()
        taker = _new_order(
            request,
            order_id=order_id,
            actor=actor,
            now=now,
            status=outcome.status,
            end_reason=str(outcome.end_reason),
            maker_fee_bps=incoming.maker_fee_bps,
            taker_fee_bps=incoming.taker_fee_bps,
            filled_quantity=outcome.filled_quantity,
            filled_quote=outcome.filled_quote,
            average_price=average_price([(m.price, m.quantity) for m in outcome.matches]),
            fee=outcome.fee,
            fee_asset_id=market.quote,
            rest_quantity=outcome.rest_quantity,
            locked=outcome.reservation,
            filled_at=now if outcome.status == OrderStatus.FILLED else None,
            chaos_id=faults.chaos_id,
        )
        ledger = _Ledger(market=market, house=_HouseSide(optimistic=attempt == 1, assets=(market.base, market.quote)))
        settlement = Settlement(
            now=now,
            market_pk=market.pk,
            actor_pk=getattr(actor, "pk", None),
            history_reason=f"placed (chaos {faults.chaos_id})" if faults.chaos_id else "placed",
            batch=ledger.batch,
            checked_accounts=frozenset({request.account.pk}),
            new_order=taker,
            book_changed=bool(outcome.matches or outcome.rest_quantity or outcome.expired_makers),
        )
        _record_matches(
            ledger=ledger, matches=outcome.matches, settlement=settlement, market=request.market, book=book, taker=taker
        )
        _release_expired_makers(ledger, outcome, settlement, book)
        reserve_asset = market.quote if request.side == BUY else market.base
        ledger.reserve(
            account_pk=request.account.pk, asset=reserve_asset, amount=outcome.reservation, order_id=order_id
        )
    except _Rejection as rejection:
        return _reject(
            request,
            actor=actor,
            reason=rejection.reason,
            message=rejection.message,
            order_id=order_id,
            chaos_id=faults.chaos_id if chaos_rejection else "",
        )
    try:
        store.settle(settlement)
    except errors.InsufficientBalance as exc:
        return _reject(
            request, actor=actor, reason=RejectReason.INSUFFICIENT_BALANCE, message=exc.message, order_id=order_id
        )
    if outcome.rest_quantity and _rests_across_house(request, book):
        # It took every house quote up to its limit and the house re-quotes at once: filled by the house at its own
        # price, so the book is not crossed after the commit.
        _sweep(
            _lock_market(market.pk, with_book=False),
            market=request.market,
            actor=actor,
            reason="house re-quoted",
            attempt=attempt,
            house=ledger.house,
        )
        taker = Order.objects.select_related("account", "market").get(pk=taker.pk)
        return PlacedOrder(taker, list(taker.fills.select_related("trade", "trade__journal_entry").order_by("id")))
    taker_fills = [f for f in settlement.fills if f.liquidity == LiquidityRole.TAKER]
    return PlacedOrder(taker, taker_fills)


def _rests_across_house(request: OrderRequest, book: LockedBook) -> bool:
    """Whether a resting remainder at the request's price crosses the house's best opposite quote before the order
    matched (its quotes after the order are the same or further away: the house has no more to give than before)."""
    bids, asks = _ladder(book)
    best = asks if request.side == BUY else bids
    if not best or request.price is None:
        return False
    return request.price >= best[0].price if request.side == BUY else request.price <= best[0].price


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


def _with_retries(run: Any, *, on_exhausted: Any = None) -> Any:
    """Run ``run(attempt)`` in a transaction; retry when a house shard ran dry, or on a deadlock or serialization
    failure (which the lock order should prevent), a bounded number of times."""
    retryable = not connection.in_atomic_block
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return run(attempt)
        except errors.LiquidityContention:
            logger.info("order_retry", attempt=attempt, reason="liquidity_contention")
            if attempt == MAX_ATTEMPTS:
                if on_exhausted is None:
                    raise
                with transaction.atomic():
                    return on_exhausted()
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if not retryable or sqlstate not in RETRYABLE_SQLSTATES:
                raise
            logger.warning("order_retry", attempt=attempt, sqlstate=sqlstate)
            if attempt == MAX_ATTEMPTS:
                raise errors.ServiceUnavailable("The order could not be placed; retry.") from exc
    raise AssertionError("unreachable")


def order_place(*, request: OrderRequest, actor: Any) -> tuple[PlacedOrder, bool]:
    """Place an order. Returns (placed order, created); created is False for an idempotent replay. A rejected
    order is returned (status rejected), not raised: it is recorded and the caller reports it."""
    order_request_validate(request=request)
    faults = chaos_effects.order_faults(
        account=request.account, symbol=request.market.symbol, client_order_id=request.client_order_id
    )
    try:
        placed = _with_retries(
            lambda attempt: _place(request, actor=actor, attempt=attempt, faults=faults),
            on_exhausted=lambda: _reject(
                request,
                actor=actor,
                reason=RejectReason.INSUFFICIENT_LIQUIDITY,
                message=errors.InsufficientLiquidity.default_message,
                order_id=uuid.uuid4(),
            ),
        )
    except IntegrityError:
        replay = _replay(request)
        if replay is None:
            raise
        return PlacedOrder(replay, list(replay.fills.select_related("trade").order_by("id"))), False
    if faults.chaos_ids and placed.order.chaos_id:
        faults.counted()
        placed.chaos = faults
    return placed, True


# --- cancel ------------------------------------------------------------------------------------------------------
def _cancel_in_book(*, book: LockedBook, orders: list[Order], actor: Any, reason: str, now: datetime) -> list[Order]:
    """Cancel resting ``orders`` of the locked market: release what each holds, mark it cancelled."""
    market = book.market
    ledger = _Ledger(market=market, house=_HouseSide(optimistic=True, assets=(market.base, market.quote)))
    settlement = Settlement(
        now=now,
        market_pk=market.pk,
        actor_pk=getattr(actor, "pk", None),
        history_reason=reason,
        batch=ledger.batch,
        checked_accounts=frozenset(),
    )
    for order in orders:
        asset = market.quote if order.side == BUY else market.base
        ledger.release(
            account_pk=order.account_id, asset=asset, amount=order.locked, order_id=order.order_id, why=reason
        )
        order.status, order.end_reason, order.locked, order.updated_at = OrderStatus.CANCELLED, reason, ZERO, now
        settlement.changed_orders.append(order)
    if orders:
        book_store().settle(settlement)
    return orders


def _lock_market(market_pk: int, *, with_book: bool = True) -> LockedBook:
    """The market locked (level 1) and its row; ``with_book`` also reads the first page of resting buys."""
    return book_store().lock_book(
        market_pk=market_pk, account_pk=None, key_id=None, side=BUY, limit=None, page=PAGE if with_book else 0
    )


def order_cancel(*, order: Order, actor: Any, reason: str = EndReason.CANCELLED) -> Order:
    """Cancel a resting order and release its reservation. Of a cancel and a fill (or two cancels) of the same
    order exactly one wins: both lock the market first, and the order's state is read again under that lock."""

    def run(attempt: int) -> Order:
        book = _lock_market(order.market_id, with_book=False)
        current = Order.objects.select_related("account", "market").get(pk=order.pk)
        if current.status not in RESTING_STATUSES:
            raise errors.OrderNotCancelable(
                f"The order is {current.status} and can no longer be cancelled.",
                details={"order_id": str(current.order_id), "status": current.status},
            )
        _cancel_in_book(book=book, orders=[current], actor=actor, reason=reason, now=timezone.now())
        return current

    return _with_retries(run)


def order_cancel_all(
    *, account: Account, actor: Any, market: Market | None = None, reason: str = EndReason.CANCELLED
) -> list[Order]:
    """Cancel every resting order of an account (on one market, or all), one market at a time in id order, each
    in its own transaction: one transaction locking a second market after the first one's balance rows would
    break the lock order (market, then balance rows) and could deadlock with an order on that second market."""
    open_orders = Order.objects.filter(account=account, status__in=RESTING_STATUSES)
    if market is not None:
        open_orders = open_orders.filter(market=market)
    market_pks = sorted(set(open_orders.values_list("market_id", flat=True)))

    def cancel_on(market_pk: int) -> list[Order]:
        book = _lock_market(market_pk, with_book=False)
        orders = list(
            Order.objects.select_related("account", "market")
            .filter(account=account, market_id=market_pk, status__in=RESTING_STATUSES)
            .order_by("id")
        )
        return _cancel_in_book(book=book, orders=orders, actor=actor, reason=reason, now=timezone.now())

    cancelled: list[Order] = []
    for market_pk in market_pks:
        cancelled += _with_retries(lambda attempt, pk=market_pk: cancel_on(pk))
    return cancelled


def account_suspend(*, account: Account, actor: Any, reason: str = "") -> Account:
    """Suspend an account and cancel its resting orders: a suspended account does not trade. The suspension commits
    first (from then on it places nothing, the status being read under the account's lock by every order), then its
    orders are cancelled market by market; until they are, a resting order of it may still be filled as a maker."""
    from accounts import services as account_services

    suspended = account_services.account_suspend(account=account, actor=actor, reason=reason)
    order_cancel_all(account=suspended, actor=actor, reason=EndReason.ACCOUNT_SUSPENDED)
    return suspended


# --- the house's ladder moves ------------------------------------------------------------------------------------
def _crossed_by_house(book: LockedBook) -> list[Match]:
    """The matches that fill the resting orders the house's quotes cross, as makers at their own prices. The house
    re-quotes from its new inventory at once (markets/ladder.py), so an order larger than the quotes that crossed
    it would still cross them: rounds repeat, on the inventory the earlier rounds left, until nothing crosses."""
    store = book_store()
    terms = _terms(book.market)
    known: dict[int, BookOrder] = {}  # resting orders as the earlier rounds left them
    matches: list[Match] = []
    while True:
        bids, asks = _ladder(book)
        found: list[Match] = []
        for side, ladder in ((BUY, asks), (SELL, bids)):
            if not ladder:
                continue
            rows = store.resting(market_pk=book.market.pk, side=side, limit=ladder[0].price, after=None, count=10_000)
            orders = [o for o in (known.setdefault(row.pk, row) for row in rows) if o.remaining > 0]
            found += house_takes_crossed(orders, ladder, terms)
        if not found:
            return matches
        matches += found
        base, quote = book.base_inventory, book.quote_inventory
        for match in found:  # the house sold base to resting buys, bought it from resting sells
            sign = -1 if match.taker_side == SELL else 1
            base, quote = base + sign * match.quantity, quote - sign * match.taker_quote
        book = dataclasses.replace(book, base_inventory=base, quote_inventory=quote)


def _sweep(
    book: LockedBook,
    *,
    market: Market,
    actor: Any,
    reason: str,
    attempt: int,
    moved: bool = False,
    house: _HouseSide | None = None,
) -> int:
    """Fill the resting orders that the house's quotes cross, as makers at their own prices, in one settlement.
    Returns the number of trades. ``moved``: the ladder moved (a new reference price), a change of the book even
    when nothing crosses; nothing trades while the market is halted. ``house``: the house side of a settlement
    this transaction made already, so the sweep's books are the shards it locked."""
    matches = _crossed_by_house(book) if book.market.status == MarketStatus.TRADING else []
    if not matches and not moved:
        return 0
    if house is None:
        house = _HouseSide(optimistic=attempt == 1, assets=(book.market.base, book.market.quote))
    ledger = _Ledger(market=book.market, house=house)
    settlement = Settlement(
        now=timezone.now(),
        market_pk=book.market.pk,
        actor_pk=getattr(actor, "pk", None),
        history_reason=reason,
        batch=ledger.batch,
        checked_accounts=frozenset(),
    )
    _record_matches(ledger=ledger, matches=matches, settlement=settlement, market=market, book=book, taker=None)
    book_store().settle(settlement)
    return len(matches)


def market_price_set(*, market: Market, price: Any, actor: Any, reason: str = "") -> Market:
    """Set a market's reference price (kept in its history, so every fill's price is traceable). The house's
    ladder moves with it; resting orders it now crosses are filled against the house in the same transaction."""

    def run(attempt: int) -> Market:
        book = _lock_market(market.pk, with_book=False)
        updated = market_services.market_set_price(market=market, price=price, actor=actor, reason=reason)
        moved = updated.reference_price != book.market.reference_price
        book.market.reference_price = updated.reference_price
        _sweep(
            book,
            market=updated,
            actor=actor,
            reason=f"house quotes moved: {updated.reference_price}",
            attempt=attempt,
            moved=moved,
        )
        return updated

    return _with_retries(run)


def market_quotes_refresh(*, market: Market, actor: Any, reason: str = "house quotes changed") -> int:
    """The settings the house's ladder is derived from changed (spread, ladder, tick, house quoting): the book moved
    (its sequence increases) and the resting orders the new quotes cross are filled. Returns the number of trades."""
    return _with_retries(
        lambda attempt: _sweep(
            _lock_market(market.pk, with_book=False),
            market=market,
            actor=actor,
            reason=reason,
            attempt=attempt,
            moved=True,
        )
    )


def market_status_set(*, market: Market, status: str, actor: Any, reason: str = "") -> Market:
    """Halt or resume a market. Resting orders stay in the book while it is halted; on resume, those the house's
    quotes cross are filled at once."""

    def run(attempt: int) -> Market:
        book = _lock_market(market.pk, with_book=False)
        updated = market_services.market_set_status(market=market, status=status, actor=actor, reason=reason)
        book.market.status = updated.status
        _sweep(book, market=updated, actor=actor, reason=f"market {updated.status}", attempt=attempt)
        return updated

    return _with_retries(run)

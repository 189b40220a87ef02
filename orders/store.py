"""Where the order path meets the database: lock and read a market's book, then write what matching decided.

The order path (orders/services.py) talks to the database in two steps, whatever the number of matches:

1. ``lock_book``: lock the market row (the lock that serializes matching on it), share-lock the trading account and
   re-read its status, check the API key is still valid, read the market's settings, the house's inventory and the
   first page of the opposite side of the book (``resting`` pages on, rarely needed);
2. ``settle``: lock every customer balance row the order touches (sorted), refuse (writing nothing) if the taker's
   balance would go negative, then write the balances, the order rows and their history, the trades, fills,
   journal entries and postings, the market's book sequence and candle, and last the exchange's own books.

Locks follow the global order of exchange/locking.py: market, account, balance rows, the exchange's books.

Two implementations share this contract: ``OrmBookStore`` (any database; SQLite runs it) and, on PostgreSQL,
``PgBookStore``, which does each step as one call of a PL/pgSQL function (orders/sql/) so an order costs a fixed,
small number of round trips. tests/orders/test_store_equivalence.py runs both on the same orders and compares
every row they write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from django.db import connection
from django.db.models import F, Q, Sum

from exchange import errors, locking
from ledger.batch import JournalBatch
from ledger.models import JournalEntry, LedgerAccount, LedgerAccountKind, Posting
from orders.matching import BookOrder
from orders.models import RESTING_STATUSES, Fill, Order, Trade

ZERO = Decimal(0)
# Resting orders read per round trip when the book is walked (more pages are read only if an order needs them).
PAGE = 50


@dataclass
class MarketRow:
    """The market's row as read under its lock."""

    pk: int
    symbol: str
    base: str
    quote: str
    status: str
    reference_price: Decimal
    quantity_step: Decimal
    price_tick: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    max_notional: Decimal
    spread_bps: Decimal | None
    taker_fee_bps: Decimal | None
    maker_fee_bps: Decimal | None
    house_quoting: bool
    ladder_levels: int | None
    ladder_step_bps: Decimal | None
    ladder_size: Decimal | None
    book_sequence: int


@dataclass
class LockedBook:
    market: MarketRow
    account_status: str | None
    key_valid: bool
    base_inventory: Decimal
    quote_inventory: Decimal
    resting: list[BookOrder]  # the first page of the side asked for, in priority order


@dataclass
class Candle:
    """The minute's figures that the trades of one settlement add to the market's candle."""

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int


@dataclass
class Settlement:
    """Everything one order (or one sweep of crossed orders) writes, decided before any write."""

    now: datetime
    market_pk: int
    actor_pk: int | None
    history_reason: str
    batch: JournalBatch
    # Accounts whose balance may not go negative as a matter of business (the taker's): a refusal, not a bug.
    checked_accounts: frozenset[int]
    new_order: Order | None = None  # the taker, unsaved, with its final state
    changed_orders: list[Order] = field(default_factory=list)  # makers, with their new state (pk set)
    trades: list[Trade] = field(default_factory=list)  # unsaved; taker_order/maker_order set as objects
    fills: list[Fill] = field(default_factory=list)  # unsaved
    trade_entries: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # trade_id -> entry_id
    candle: Candle | None = None
    book_changed: bool = True


# Columns a maker's row changes when it is matched, expired or cancelled.
MAKER_FIELDS = (
    "status",
    "remaining_quantity",
    "locked",
    "filled_quantity",
    "filled_quote",
    "average_price",
    "fee",
    "fee_asset",
    "end_reason",
    "updated_at",
    "filled_at",
)


class BookStore(Protocol):
    def lock_book(
        self,
        *,
        market_pk: int,
        account_pk: int | None,
        key_id: str | None,
        side: str,
        limit: Decimal | None,
        page: int = PAGE,
    ) -> LockedBook: ...

    def resting(
        self, *, market_pk: int, side: str, limit: Decimal | None, after: tuple[Decimal, int] | None, count: int
    ) -> list[BookOrder]: ...

    def settle(self, settlement: Settlement) -> None: ...


def _book_order(row: Any) -> BookOrder:
    return BookOrder(
        pk=row.pk,
        order_id=row.order_id,
        account_pk=row.account_id,
        side=row.side,
        price=row.price,
        remaining=row.remaining_quantity,
        rest_quantity=row.rest_quantity,
        locked=row.locked,
        maker_fee_bps=row.maker_fee_bps,
        filled_quantity=row.filled_quantity,
        filled_quote=row.filled_quote,
        fee=row.fee,
        average_price=row.average_price,
    )


def _resting_query(*, market_pk: int, side: str, limit: Decimal | None, after: tuple[Decimal, int] | None) -> Any:
    """Resting orders of one side of a market, in priority order (asks lowest first, bids highest first), up to
    ``limit`` (the taker's limit price) and after ``after`` (the last (price, id) of the previous page)."""
    qs = Order.objects.filter(market_id=market_pk, side=side, status__in=RESTING_STATUSES)
    if side == "sell":
        if limit is not None:
            qs = qs.filter(price__lte=limit)
        if after is not None:
            qs = qs.filter(Q(price__gt=after[0]) | Q(price=after[0], pk__gt=after[1]))
        return qs.order_by("price", "id")
    if limit is not None:
        qs = qs.filter(price__gte=limit)
    if after is not None:
        qs = qs.filter(Q(price__lt=after[0]) | Q(price=after[0], pk__gt=after[1]))
    return qs.order_by("-price", "id")


def history_snapshot(
    *, order_pks: Iterable[int], history_type: str, reason: str, user_pk: int | None, now: Any
) -> None:
    """Write the current state of these orders as history rows (django-simple-history's table) in one
    INSERT ... SELECT: the order path writes rows in bulk, which sends no model signals."""
    pks = list(order_pks)
    if not pks:
        return
    history = Order.history.model
    base_columns = {f.column for f in Order._meta.concrete_fields}
    columns = [f.column for f in history._meta.concrete_fields if f.column in base_columns]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    placeholders = ", ".join(["%s"] * len(pks))
    # Table and column names come from the models; the values are parameters.
    target, source = history._meta.db_table, Order._meta.db_table
    extra = "history_date, history_change_reason, history_type, history_user_id"
    sql = f"INSERT INTO {target} ({quoted}, {extra}) SELECT {quoted}, %s, %s, %s, %s FROM {source} WHERE id IN "  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"{sql}({placeholders})", [now, reason[:100] or None, history_type, user_pk, *pks])


class OrmBookStore:
    """The contract through the ORM: a handful of statements per step. Correct on every database; the reference
    the PostgreSQL functions are checked against."""

    def lock_book(
        self,
        *,
        market_pk: int,
        account_pk: int | None,
        key_id: str | None,
        side: str,
        limit: Decimal | None,
        page: int = PAGE,
    ) -> LockedBook:
        from accounts.models import ApiKey

        market = locking.lock_market(market_pk)
        status = locking.lock_account(account_pk, mode=locking.Mode.SHARE) if account_pk is not None else None
        key_valid = True
        if key_id is not None:
            key_valid = ApiKey.objects.filter(pk=key_id, revoked=False, user__is_active=True).exists()
        inventory = dict(
            LedgerAccount.objects.filter(
                kind=LedgerAccountKind.HOUSE_LIQUIDITY, asset_id__in=[market.base_asset_id, market.quote_asset_id]
            )
            .values_list("asset_id")
            .annotate(total=Sum("balance"))
        )
        return LockedBook(
            market=MarketRow(
                pk=market.pk,
                symbol=market.symbol,
                base=market.base_asset_id,
                quote=market.quote_asset_id,
                status=market.status,
                reference_price=market.reference_price,
                quantity_step=market.quantity_step,
                price_tick=market.price_tick,
                min_quantity=market.min_quantity,
                min_notional=market.min_notional,
                max_notional=market.max_notional,
                spread_bps=market.spread_bps,
                taker_fee_bps=market.taker_fee_bps,
                maker_fee_bps=market.maker_fee_bps,
                house_quoting=market.house_quoting,
                ladder_levels=market.ladder_levels,
                ladder_step_bps=market.ladder_step_bps,
                ladder_size=market.ladder_size,
                book_sequence=market.book_sequence,
            ),
            account_status=status,
            key_valid=key_valid,
            base_inventory=inventory.get(market.base_asset_id, ZERO),
            quote_inventory=inventory.get(market.quote_asset_id, ZERO),
            resting=self.resting(market_pk=market_pk, side=side, limit=limit, after=None, count=page) if page else [],
        )

    def resting(
        self, *, market_pk: int, side: str, limit: Decimal | None, after: tuple[Decimal, int] | None, count: int
    ) -> list[BookOrder]:
        return [
            _book_order(o) for o in _resting_query(market_pk=market_pk, side=side, limit=limit, after=after)[:count]
        ]

    def settle(self, settlement: Settlement) -> None:
        from accounts.models import Balance
        from markets.models import Market

        s = settlement
        # Level 3 of the lock order: every customer balance row of the batch, sorted, checked before any write.
        deltas = s.batch.customer_deltas()
        rows = locking.lock_balances(deltas)
        changed = []
        for key, (d_available, d_locked) in deltas.items():
            row = rows.get(key)
            if row is None:
                raise errors.InternalError(f"Balance row missing for account {key[0]} asset {key[1]}.")
            new_available, new_locked = row.available + d_available, row.locked + d_locked
            if new_available < 0 or new_locked < 0:
                if key[0] in s.checked_accounts and new_locked >= 0:
                    raise errors.InsufficientBalance(
                        details={"asset": key[1], "available": str(row.available), "required": str(-d_available)}
                    )
                raise errors.InternalError(f"Settlement would overdraw account {key[0]} {key[1]}.")
            row.available, row.locked, row.updated_at = new_available, new_locked, s.now
            changed.append(row)
        if changed:
            Balance.objects.bulk_update(changed, ["available", "locked", "updated_at"])

        if s.new_order is not None:
            # bulk_create sends no signals: its history row is written below, like every other order row's.
            Order.objects.bulk_create([s.new_order])  # IntegrityError on a duplicate client_order_id
            history_snapshot(
                order_pks=[s.new_order.pk], history_type="+", reason=s.history_reason, user_pk=s.actor_pk, now=s.now
            )
        if s.changed_orders:
            Order.objects.bulk_update(s.changed_orders, list(MAKER_FIELDS))
            history_snapshot(
                order_pks=[o.pk for o in s.changed_orders],
                history_type="~",
                reason=s.history_reason,
                user_pk=s.actor_pk,
                now=s.now,
            )

        entries = _write_entries(s)
        # Re-assigning a related object that has been saved meanwhile sets its id and keeps it cached.
        for trade in s.trades:
            trade.taker_order, trade.maker_order = trade.taker_order, trade.maker_order
            entry_id = s.trade_entries[trade.trade_id]
            trade.journal_entry = JournalEntry(pk=entries[entry_id], entry_id=entry_id)
        Trade.objects.bulk_create(s.trades)
        for fill in s.fills:
            fill.trade, fill.order = fill.trade, fill.order
        Fill.objects.bulk_create(s.fills)
        if s.book_changed:
            Market.objects.filter(pk=s.market_pk).update(book_sequence=F("book_sequence") + 1)
        if s.candle is not None:
            _candle_add(s.market_pk, s.candle)
        _settle_books(s.batch.book_deltas())


def _write_entries(s: Settlement) -> dict[uuid.UUID, int]:
    """Insert the batch's entries and postings; returns entry uuid -> row id."""
    if not s.batch.entries:
        return {}
    JournalEntry.objects.bulk_create(
        [
            JournalEntry(
                entry_id=e.entry_id,
                kind=e.kind,
                reference_type=e.reference_type,
                reference_id=e.reference_id,
                memo=e.memo,
                actor_id=s.actor_pk,
                metadata=e.metadata,
                created_at=s.now,
            )
            for e in s.batch.entries
        ]
    )
    ids = dict(
        JournalEntry.objects.filter(entry_id__in=[e.entry_id for e in s.batch.entries]).values_list("entry_id", "id")
    )
    customer = {(b.account_pk, b.asset, b.kind) for e in s.batch.entries for b, _ in e.legs if b.is_customer}
    ledger_ids = {}
    if customer:
        ledger_ids = {
            (la.account_id, la.asset_id, la.kind): la.pk
            for la in LedgerAccount.objects.filter(account_id__in={a for a, _, _ in customer}).only(
                "id", "account_id", "asset_id", "kind"
            )
        }
    Posting.objects.bulk_create(
        [
            Posting(
                entry_id=ids[e.entry_id],
                ledger_account_id=book.pk
                if book.pk is not None
                else ledger_ids[(book.account_pk, book.asset, book.kind)],
                asset_id=book.asset,
                account_id=book.account_pk,
                amount=amount,
                created_at=s.now,
            )
            for e in s.batch.entries
            for book, amount in e.legs
        ]
    )
    return ids


def _settle_books(deltas: dict[int, Decimal]) -> None:
    """The exchange's books last, locked in id order; a shard drained meanwhile fails its CHECK (retry)."""
    from ledger.services import settle_book_deltas

    settle_book_deltas(deltas)


def _candle_add(market_pk: int, c: Candle) -> None:
    """Add the trades to the market's candle of their minute. Every writer of a market's candles holds the market's
    lock, so reading then writing cannot race."""
    from markets.models import Candle as CandleRow

    row = CandleRow.objects.filter(market_id=market_pk, open_time=c.open_time).first()
    if row is None:
        CandleRow.objects.create(
            market_id=market_pk,
            open_time=c.open_time,
            open=c.open,
            high=c.high,
            low=c.low,
            close=c.close,
            volume=c.volume,
            quote_volume=c.quote_volume,
            trades=c.trades,
        )
        return
    row.high, row.low, row.close = max(row.high, c.high), min(row.low, c.low), c.close
    row.volume += c.volume
    row.quote_volume += c.quote_volume
    row.trades += c.trades
    row.save(update_fields=["high", "low", "close", "volume", "quote_volume", "trades"])


def book_store() -> BookStore:
    """PostgreSQL's functions where they exist (ORDER_STORE=orm forces the ORM, for comparing the two)."""
    from django.conf import settings

    if connection.vendor == "postgresql" and getattr(settings, "ORDER_STORE", "auto") != "orm":
        from orders.pg_store import PgBookStore

        return PgBookStore()
    return OrmBookStore()

"""From outbox rows to the events streams send: each with the fields of the REST resource it is about.

``Published`` is one event as delivered: its id (the row's delivery sequence, with a sub-index when one change
gives two events, e.g. a market's book and its ticker), its stream topic, who may see it, its SSE event name and
its payload (the REST resource's fields, amounts as strings).

Orders, balances and fills are rendered from the row the change wrote (``Event.data``, on PostgreSQL), so an event
shows the state that committed, not a later one; an order's fills are those written up to that change. Positions,
books and tickers are derived views: they are computed when the event is delivered (a position from the ledger, a
book from the resting orders and the house's ladder), so they show a state at least as new as the change.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from django.db import connection, models

from exchange.api import format_amount

# Stream topics a subscription asks for (an outbox row of one topic may give events of several).
ORDER, FILL, BALANCE, POSITION, TRADE, BOOK, TICKER = "order", "fill", "balance", "position", "trade", "book", "ticker"

Wanted = Callable[[str, int | None, int | None], bool]  # (topic, account pk, market pk) -> does anyone want it


@dataclass(frozen=True)
class Raw:
    """One outbox row as read back."""

    seq: int
    topic: str
    account_pk: int | None
    market_pk: int | None
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Published:
    seq: int
    sub: int
    topic: str
    name: str
    account_pk: int | None
    market_pk: int | None
    payload: dict[str, Any]
    created_at: datetime
    # The event as sent, per number format: encoded once however many subscribers it goes to (streams/sse.py).
    wire: dict[bool, bytes] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def id(self) -> str:
        """The SSE ``id:``: the delivery sequence, ``<seq>.<n>`` for the n-th extra event of one change."""
        return str(self.seq) if not self.sub else f"{self.seq}.{self.sub}"

    @property
    def position(self) -> tuple[int, int]:
        return (self.seq, self.sub)


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """A ``Last-Event-ID`` as (seq, sub); None when absent or not one of ours."""
    if not value:
        return None
    head, _, tail = value.strip().partition(".")
    try:
        seq, sub = int(head), int(tail or 0)
    except ValueError:
        return None
    return (seq, sub) if seq >= 0 and sub >= 0 else None


_DECODER = json.JSONDecoder(parse_float=Decimal)  # one decoder: json.loads with options builds one per call


# --- reading rows ------------------------------------------------------------------------------------------------
def fetch(*, after: int, until: int | None = None, limit: int = 2000, where: str = "", params: Any = ()) -> list[Raw]:
    """Stamped rows with ``after < seq <= until``, in sequence order. ``data`` is read as text and parsed with
    Decimal numbers (psycopg's own jsonb loader would make floats of amounts)."""
    sql = "SELECT seq, topic, account_id, market_id, data::text, created_at FROM streams_event WHERE seq > %s"
    args: list[Any] = [after]
    if until is not None:
        sql += " AND seq <= %s"
        args.append(until)
    if where:
        sql += f" AND ({where})"
        args += list(params)
    sql += " ORDER BY seq LIMIT %s"
    args.append(limit)
    from exchange.db.postgresql import statements

    if connection.vendor != "postgresql":
        sql = sql.replace("data::text", "data")
    rows = statements.rows(sql, args)  # a lane's read of every batch: one prepared statement
    result = []
    for seq, topic, account_pk, market_pk, data, created_at in rows:
        if isinstance(created_at, str):  # SQLite
            from django.utils.dateparse import parse_datetime

            created_at = parse_datetime(created_at)
            if created_at is not None and created_at.tzinfo is None:
                from datetime import UTC

                created_at = created_at.replace(tzinfo=UTC)
        result.append(
            Raw(seq, topic, account_pk, market_pk, _DECODER.decode(data), created_at)  # type: ignore[arg-type]
        )
    return result


def _instance(model: type[models.Model], data: dict[str, Any]) -> Any:
    kwargs = {}
    for f in model._meta.concrete_fields:
        if f.column in data:
            value = data[f.column]
            kwargs[f.attname] = None if value is None else f.to_python(value)
    return model(**kwargs)


def _rows(model: type[models.Model], raws: list[Raw]) -> list[Any]:
    """The rows as the changes wrote them (PostgreSQL), or as they are now (SQLite: the triggers store the id)."""
    if connection.vendor == "postgresql":
        return [_instance(model, r.data) for r in raws]
    current = model._default_manager.in_bulk([r.data["id"] for r in raws])
    return [current.get(r.data["id"]) for r in raws]


# --- caches of reference rows ------------------------------------------------------------------------------------
_accounts: dict[int, Any] = {}
_markets: dict[int, Any] = {}


def account_of(pk: int) -> Any:
    from accounts.models import Account

    if pk not in _accounts:
        _accounts.update(Account.objects.in_bulk([pk]))
    return _accounts[pk]


def market_of(pk: int) -> Any:
    from markets.models import Market

    if pk not in _markets:
        _markets.update(Market.objects.in_bulk([pk]))
    return _markets[pk]


def _preload(raws: list[Raw]) -> None:
    from accounts.models import Account
    from markets.models import Market

    accounts = {r.account_pk for r in raws if r.account_pk is not None} - _accounts.keys()
    markets = {r.market_pk for r in raws if r.market_pk is not None} - _markets.keys()
    if accounts:
        _accounts.update(Account.objects.in_bulk(list(accounts)))
    if markets:
        _markets.update(Market.objects.in_bulk(list(markets)))


# --- the resources -----------------------------------------------------------------------------------------------
def _load_fills(order_pks: list[int], fill_pks: list[int]) -> tuple[dict[int, list[Any]], dict[int, Any]]:
    """The fills of the orders and the fills themselves, in one query: (order pk -> its fills in id order, fill
    pk -> fill)."""
    from django.db.models import Q

    from orders.models import Fill

    by_order: dict[int, list[Any]] = defaultdict(list)
    by_id: dict[int, Any] = {}
    if not order_pks and not fill_pks:
        return by_order, by_id
    # Plain values, not model instances with three related ones each: what the renderers read, at a fraction of
    # the cost; on PostgreSQL one prepared statement (a read of every batch), elsewhere the ORM's same query.
    if connection.vendor == "postgresql":
        from exchange.db.postgresql import statements

        found = statements.rows(_FILLS_SQL, [order_pks, fill_pks])
    else:
        found = (
            Fill.objects.filter(Q(order_id__in=order_pks) | Q(id__in=fill_pks))
            .order_by("id")
            .values_list(*_FILL_FIELDS)
        )
    for row in found:
        values = dict(zip(_FILL_FIELDS, row, strict=True))
        fill = SimpleNamespace(
            pk=values["id"],
            trade=SimpleNamespace(
                trade_id=values.pop("trade__trade_id"),
                reference_price=values.pop("trade__reference_price"),
                journal_entry=SimpleNamespace(entry_id=values.pop("trade__journal_entry__entry_id")),
            ),
            order=SimpleNamespace(order_id=values.pop("order__order_id")),
            **values,
        )
        by_id[fill.pk] = fill
        if fill.order_id is not None:
            by_order[fill.order_id].append(fill)
    return by_order, by_id


_FILL_FIELDS = (
    "id",
    "order_id",
    "account_id",
    "market_id",
    "side",
    "liquidity",
    "price",
    "quantity",
    "quote_amount",
    "fee",
    "fee_asset_id",
    "created_at",
    "trade__trade_id",
    "trade__reference_price",
    "trade__journal_entry__entry_id",
    "order__order_id",
)
# The ORM's query for _FILL_FIELDS (INNER JOINs: a fill's order, trade and journal entry), lists as arrays.
_FILLS_SQL = """
    SELECT f.id, f.order_id, f.account_id, f.market_id, f.side, f.liquidity, f.price, f.quantity, f.quote_amount,
           f.fee, f.fee_asset_id, f.created_at, t.trade_id, t.reference_price, j.entry_id, o.order_id
      FROM orders_fill f
      JOIN orders_order o ON o.id = f.order_id
      JOIN orders_trade t ON t.id = f.trade_id
      JOIN ledger_journalentry j ON j.id = t.journal_entry_id
     WHERE f.order_id = ANY(%s) OR f.id = ANY(%s)
     ORDER BY f.id
"""


def _orders(raws: list[Raw], fills: dict[int, list[Any]]) -> list[Published]:
    from orders.models import Order
    from orders.rendering import order_json

    orders = _rows(Order, raws)
    out = []
    for raw, order in zip(raws, orders, strict=True):
        if order is None:
            continue
        order.market, order.account = market_of(order.market_id), account_of(order.account_id)
        own = [f for f in fills.get(order.pk, ()) if f.created_at <= order.updated_at]
        out.append(
            Published(raw.seq, 0, ORDER, "order", raw.account_pk, raw.market_pk, order_json(order, own), raw.created_at)
        )
    return out


def fill_json(fill: Any) -> dict[str, Any]:
    """``TradeOut(fill).data``, field for field, without a DRF serializer per fill (tests/streams checks they agree)."""
    from ledger.selectors import asset_map
    from orders.rendering import _iso, _uuid

    assets = asset_map()
    market = fill.market
    base, quote = assets[market.base_asset_id].decimals, assets[market.quote_asset_id].decimals
    fee = assets[fill.fee_asset_id].decimals if fill.fee_asset_id in assets else None
    return {
        "trade_id": _uuid(fill.trade.trade_id),
        "order_id": _uuid(fill.order.order_id) if fill.order_id else None,
        "account_id": _uuid(fill.account.account_id),
        "symbol": market.symbol,
        "side": fill.side,
        "liquidity": fill.liquidity,
        "quantity": format_amount(fill.quantity, base),
        "price": format_amount(fill.price, quote),
        "quote_amount": format_amount(fill.quote_amount, quote),
        "fee": format_amount(fill.fee, fee),
        "fee_asset": fill.fee_asset_id,
        "reference_price": format_amount(fill.trade.reference_price, quote),
        "journal_entry_id": _uuid(fill.trade.journal_entry.entry_id),
        "created_at": _iso(fill.created_at),
    }


def _fills(raws: list[Raw], rows: dict[int, Any]) -> list[Published]:
    out = []
    for r in raws:
        fill = rows.get(r.data["id"])
        if fill is None:
            continue
        fill.market, fill.account = market_of(fill.market_id), account_of(fill.account_id)
        out.append(Published(r.seq, 0, FILL, "trade", r.account_pk, r.market_pk, fill_json(fill), r.created_at))
    return out


def trade_json(trade: Any) -> dict[str, Any]:
    """``{"symbol": ..., **TapeTradeOut(trade).data}``, field for field, without a DRF serializer per trade
    (tests/streams checks they agree)."""
    from ledger.selectors import asset_map
    from orders.rendering import _iso, _uuid

    assets = asset_map()
    market = market_of(trade.market_id)
    return {
        "symbol": market.symbol,
        "trade_id": _uuid(trade.trade_id),
        "price": format_amount(trade.price, assets[market.quote_asset_id].decimals),
        "quantity": format_amount(trade.quantity, assets[market.base_asset_id].decimals),
        "taker_side": trade.taker_side,
        "executed_at": _iso(trade.created_at),
    }


def _trades(raws: list[Raw]) -> list[Published]:
    from orders.models import Trade

    out = []
    for r, trade in zip(raws, _rows(Trade, raws), strict=True):
        if trade is None:
            continue
        out.append(Published(r.seq, 0, TRADE, "trade", None, r.market_pk, trade_json(trade), r.created_at))
    return out


def balance_json(balance: Any) -> dict[str, Any]:
    from ledger.selectors import asset_map

    places = asset_map()[balance.asset_id].decimals
    return {
        "account_id": str(account_of(balance.account_id).account_id),
        "asset": balance.asset_id,
        "available": format_amount(balance.available, places),
        "locked": format_amount(balance.locked, places),
        "total": format_amount(balance.available + balance.locked, places),
        "updated_at": balance.updated_at.isoformat().replace("+00:00", "Z") if balance.updated_at else None,
    }


def position_json(account_pk: int, asset: str) -> dict[str, Any]:
    from risk.position_apis import PositionOut
    from risk.positions import Position, positions_for

    account = account_of(account_pk)
    found = positions_for(accounts=[account], asset=asset)
    position = found[0] if found else Position(account_id=account.account_id, asset=asset)
    if not found:
        from markets.selectors import usd_prices

        position.current_price = (usd_prices() or {}).get(asset)
    return dict(PositionOut(position).data)


def position_out(position: Any) -> dict[str, Any]:
    """``PositionOut(position).data``, field for field, without a DRF serializer per position (tests/streams
    checks they agree)."""
    from ledger.selectors import asset_map
    from risk.position_apis import _usd

    return {
        "position_id": position.position_id,
        "account_id": str(position.account_id),
        "asset": position.asset,
        "side": position.side,
        "quantity": format_amount(position.quantity, asset_map()[position.asset].decimals),
        "entry_price": _usd(position.entry_price),
        "current_price": _usd(position.current_price),
        "unrealized_pnl": _usd(position.unrealized_pnl),
        "realized_pnl": _usd(position.realized_pnl),
        "quote_asset": "USD",
    }


def ticker_out(ticker: Any, market: Any) -> dict[str, Any]:
    """``TickerOut(ticker, context={"market": market}).data``, field for field, without a DRF serializer
    (tests/streams checks they agree)."""
    from ledger.selectors import asset_map
    from orders.rendering import _iso

    assets = asset_map()
    quote = assets[market.quote_asset_id].decimals if market.quote_asset_id in assets else None
    base = assets[market.base_asset_id].decimals if market.base_asset_id in assets else None
    return {
        "symbol": ticker.symbol,
        "last": format_amount(ticker.last, quote),
        "bid": format_amount(ticker.bid, quote),
        "ask": format_amount(ticker.ask, quote),
        "open": format_amount(ticker.open, quote),
        "high": format_amount(ticker.high, quote),
        "low": format_amount(ticker.low, quote),
        "volume": format_amount(ticker.volume, base),
        "quote_volume": format_amount(ticker.quote_volume, quote),
        "trades": int(ticker.trades),
        "change_percent": format_amount(ticker.change_percent),
        "timestamp": _iso(ticker.timestamp),
    }


def positions_json(keys: set[tuple[int, str]], tracker: Any = None) -> dict[tuple[int, str], dict[str, Any]]:
    """The positions of several (account pk, asset) at once. With a ``tracker`` (risk.positions.PositionTracker,
    the hub's): only what changed since its last read is applied. Without (a replay): ``positions_for``, a fixed
    number of queries however many accounts."""
    from markets.selectors import usd_prices
    from risk.position_apis import PositionOut
    from risk.positions import Position, positions_for

    if tracker is not None:
        current = tracker.positions([pk for pk, _asset in keys])
        return {key: position_out(current[key]) for key in keys}
    accounts = [account_of(pk) for pk in sorted({pk for pk, _asset in keys})]
    by_uuid = {a.account_id: a.pk for a in accounts}
    found = {(by_uuid[p.account_id], p.asset): p for p in positions_for(accounts=accounts) if p.account_id in by_uuid}
    prices = None
    out = {}
    for pk, asset in keys:
        position = found.get((pk, asset))
        if position is None:  # holds nothing and never realized anything: a flat position of zero
            if prices is None:
                prices = usd_prices() or {}
            position = Position(account_id=account_of(pk).account_id, asset=asset, current_price=prices.get(asset))
        out[(pk, asset)] = dict(PositionOut(position).data)
    return out


def _balances(raws: list[Raw], wanted: Wanted, tracker: Any = None) -> list[Published]:
    from accounts.models import Balance
    from risk.positions import position_assets

    out = []
    tracked = set(position_assets())
    rows = list(zip(raws, _rows(Balance, raws), strict=True))
    # A position is a derived view: computed once per (account, asset) for the batch, at its last change, and the
    # positions of the whole batch together.
    last_change = {
        (b.account_id, b.asset_id): raw.seq
        for raw, b in rows
        if b is not None and b.asset_id in tracked and wanted(POSITION, raw.account_pk, None)
    }
    positions = positions_json(set(last_change), tracker) if last_change else {}
    for raw, balance in rows:
        if balance is None:
            continue
        if wanted(BALANCE, raw.account_pk, None):
            out.append(
                Published(raw.seq, 0, BALANCE, "balance", raw.account_pk, None, balance_json(balance), raw.created_at)
            )
        key = (balance.account_id, balance.asset_id)
        if last_change.get(key) == raw.seq:
            out.append(
                Published(raw.seq, 0, POSITION, "position", raw.account_pk, None, positions[key], raw.created_at)
            )
    return out


class BookState:
    """The last book each market's stream showed: deltas are the levels that changed since, and a new subscriber's
    first ``book`` event is this same state (so the deltas that follow apply to what it has)."""

    def __init__(self, depth: int = 20) -> None:
        self.depth = depth
        self.bodies: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def _compute(self, market_pk: int) -> dict[str, Any]:
        from markets import market_data
        from markets.serializers import book_out

        market = market_of(market_pk)
        return book_out(market_data.book_get(market=market, depth=self.depth), market)

    def current(self, market_pk: int) -> dict[str, Any]:
        """The whole book as this hub's stream last showed it (computed now if it never did)."""
        with self.lock:
            if market_pk not in self.bodies:
                self.bodies[market_pk] = self._compute(market_pk)
            return self.bodies[market_pk]

    def forget(self, market_pk: int) -> None:
        with self.lock:
            self.bodies.pop(market_pk, None)

    def changes(self, market_pk: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The levels that changed since the book this state last showed, to ``body`` (the book now; computed
        here when not given)."""
        with self.lock:
            old = self.bodies.get(market_pk)
            if body is None:
                body = self._compute(market_pk)
            self.bodies[market_pk] = body
        before = {side: dict(old[side]) if old else {} for side in ("bids", "asks")}
        after = {side: dict(body[side]) for side in ("bids", "asks")}
        # Without an earlier book (a resumed stream's replay): every level, marked as the whole book.
        changed: dict[str, Any] = {"symbol": body["symbol"], "sequence": body["sequence"], "snapshot": old is None}
        for side in ("bids", "asks"):
            levels = [[p, q] for p, q in after[side].items() if before[side].get(p) != q]
            levels += [[p, "0"] for p in before[side] if p not in after[side]]
            changed[side] = levels
        return changed


def _markets_changed(
    raws: list[Raw],
    wanted: Wanted,
    books: BookState | None,
    trades: list[Raw] | None = None,
) -> list[Published]:
    """A market's book and ticker after its changes of the batch (coalesced: computed once, for the last row)."""
    from markets.models import Market

    last: dict[int, Raw] = {}
    for raw in raws:
        if raw.market_pk is not None:
            # Its reference price or status changed: the row as it committed (PostgreSQL), or read it again.
            if connection.vendor == "postgresql" and "symbol" in raw.data:
                _markets[raw.market_pk] = _instance(Market, raw.data)
            else:
                _markets.pop(raw.market_pk, None)
            last[raw.market_pk] = raw
    from markets import market_data
    from markets.serializers import book_out

    want_book = {pk for pk in last if books is not None and wanted(BOOK, None, pk)}
    want_ticker = {pk for pk in last if wanted(TICKER, None, pk)}
    # Every market of the batch at once: one snapshot, a fixed number of queries.
    # A market's trades are matched under its lock, so their ids follow their commits: the batch's last trade of
    # a market (the rows as they committed, PostgreSQL) is its last trade as of the batch, not read again.
    last_trades = {}
    for raw in sorted(trades or [], key=lambda r: r.data["id"]):
        if raw.market_pk is not None and "price" in raw.data:
            last_trades[raw.market_pk] = Decimal(str(raw.data["price"]))
    views = market_data.market_views(
        markets=[market_of(pk) for pk in sorted(want_book | want_ticker)],
        depth=books.depth if books is not None else 20,
        tickers=bool(want_ticker),
        last_trades=last_trades,
    )
    out = []
    for market_pk, raw in last.items():
        market = market_of(market_pk)
        if books is not None and market_pk in want_book:
            change = books.changes(market_pk, book_out(views[market_pk][0], market))
            out.append(Published(raw.seq, 0, BOOK, "book", None, market_pk, change, raw.created_at))
        elif books is not None:
            books.forget(market_pk)  # nobody watched this change: the next subscriber's first book is computed anew
        if market_pk in want_ticker:
            ticker = ticker_out(views[market_pk][1], market)
            out.append(Published(raw.seq, 1, TICKER, "ticker", None, market_pk, ticker, raw.created_at))
    return out


# CPU seconds spent per (thread, part of ``render``) in this process, estimated from a sample of batches (the
# hub's stats log lines report them).
TIMINGS: defaultdict[tuple[str, str], float] = defaultdict(float)
TIMING_SAMPLE = 16  # one batch in this many is timed; its figures are scaled up
_renders = 0


def render(
    raws: list[Raw], *, wanted: Wanted, books: BookState | None = None, positions: Any = None
) -> list[Published]:
    """The events of ``raws`` somebody wants, in (seq, sub) order. ``books`` and ``positions`` (a
    risk.positions.PositionTracker): the state a hub lane keeps between batches."""
    if not raws:
        return []
    _preload(raws)
    by_topic: dict[str, list[Raw]] = defaultdict(list)
    for raw in raws:
        by_topic[raw.topic].append(raw)
    out: list[Published] = []
    # This thread's CPU per part (not its waits for the database or the GIL), in one batch of every
    # TIMING_SAMPLE: reading a thread's CPU clock is a system call, dear enough to show in a profile of every batch.
    global _renders
    _renders += 1
    sampled = _renders % TIMING_SAMPLE == 0
    clock = time.thread_time() if sampled else 0.0

    def took(part: str) -> None:
        nonlocal clock
        if not sampled:
            return
        now = time.thread_time()
        TIMINGS[(threading.current_thread().name, part)] += (now - clock) * TIMING_SAMPLE
        clock = now

    orders = [r for r in by_topic["order"] if wanted(ORDER, r.account_pk, r.market_pk)]
    fills = [r for r in by_topic["fill"] if wanted(FILL, r.account_pk, r.market_pk)]
    trades = [r for r in by_topic["trade"] if wanted(TRADE, None, r.market_pk)]
    if orders or fills:
        by_order, by_id = _load_fills([r.data["id"] for r in orders], [r.data["id"] for r in fills])
        took("fills_read")
        out += _orders(orders, by_order) if orders else []
        took("orders")
        out += _fills(fills, by_id) if fills else []
        took("fills")
    out += _trades(trades) if trades else []
    took("trades")
    out += _balances(by_topic["balance"], wanted, positions) if by_topic["balance"] else []
    took("balances_positions")
    out += _markets_changed(by_topic["market"], wanted, books, by_topic["trade"]) if by_topic["market"] else []
    took("books_tickers")
    out.sort(key=lambda p: p.position)
    return out

"""Market data: the book by price level, the public tape, the 24-hour ticker and candles.

Everything here is read from what the order path committed: resting orders (orders.Order), the house's ladder
(derived from the market's row and the house's inventory, markets/ladder.py), trades (orders.Trade) and the
one-minute candles every trade updates in its own transaction (markets.Candle). A book is read in one snapshot (on
PostgreSQL a REPEATABLE READ transaction), so its ``sequence`` names exactly the state it shows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Min, Q, Sum
from django.utils import timezone

from ledger.models import LedgerAccount, LedgerAccountKind
from markets.ladder import house_ladder
from markets.models import Candle, Market
from markets.services import ladder_settings

ZERO = Decimal(0)
INTERVALS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}


@dataclass
class BookView:
    symbol: str
    sequence: int
    timestamp: datetime
    bids: list[tuple[Decimal, Decimal]]  # (price, quantity), best first
    asks: list[tuple[Decimal, Decimal]]


def _snapshot() -> Any:
    """A transaction whose reads all see one committed state. Inside a transaction already (a caller's, or a test's)
    the isolation level can no longer be set: the reads then see what that transaction sees."""
    atomic = transaction.atomic()

    class _Snapshot:
        def __enter__(self) -> None:
            outermost = not connection.in_atomic_block
            atomic.__enter__()
            # Only a transaction of its own can choose its isolation (inside another one, that one's applies).
            if outermost and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

        def __exit__(self, *exc: Any) -> Any:
            return atomic.__exit__(*exc)

    return _Snapshot()


def house_inventory(*assets: str) -> dict[str, Decimal]:
    rows = (
        LedgerAccount.objects.filter(kind=LedgerAccountKind.HOUSE_LIQUIDITY, asset_id__in=assets)
        .values_list("asset_id")
        .annotate(total=Sum("balance"))
    )
    return {asset: total for asset, total in rows}


def _customer_levels(market: Market, side: str, depth: int) -> list[tuple[Decimal, Decimal]]:
    from orders.models import RESTING_STATUSES, Order

    order = "price" if side == "sell" else "-price"
    rows = (
        Order.objects.filter(market=market, side=side, status__in=RESTING_STATUSES)
        .values("price")
        .annotate(quantity=Sum("remaining_quantity"))
        .order_by(order)[:depth]
    )
    return [(row["price"], row["quantity"]) for row in rows]


def _merge(side: str, *sources: list[tuple[Decimal, Decimal]], depth: int) -> list[tuple[Decimal, Decimal]]:
    levels: dict[Decimal, Decimal] = defaultdict(Decimal)
    for source in sources:
        for price, quantity in source:
            levels[price] += quantity
    ordered = sorted(levels.items(), key=lambda item: item[0], reverse=side == "buy")
    return [(price, quantity) for price, quantity in ordered if quantity > 0][:depth]


def _book(market: Market, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    inventory = house_inventory(market.base_asset_id, market.quote_asset_id)
    house_bids, house_asks = house_ladder(
        ladder_settings(market),
        base_inventory=inventory.get(market.base_asset_id, ZERO),
        quote_inventory=inventory.get(market.quote_asset_id, ZERO),
    )
    bids = _merge("buy", house_bids, _customer_levels(market, "buy", depth), depth=depth)
    asks = _merge("sell", house_asks, _customer_levels(market, "sell", depth), depth=depth)
    return bids, asks


def book_get(*, market: Market, depth: int = 20) -> BookView:
    """The book aggregated by price level (house and customer liquidity together), ``depth`` levels per side."""
    with _snapshot():
        market = Market.objects.get(pk=market.pk)
        bids, asks = _book(market, depth)
        return BookView(market.symbol, market.book_sequence, timezone.now(), bids, asks)


def best_prices(*, market: Market) -> tuple[Decimal | None, Decimal | None]:
    """(best bid, best ask) of the whole book."""
    bids, asks = _book(market, 1)
    return (bids[0][0] if bids else None), (asks[0][0] if asks else None)


def tape(*, market: Market, limit: int = 50) -> list[Any]:
    """The market's latest trades, newest first."""
    from orders.models import Trade

    return list(Trade.objects.filter(market=market).order_by("-id")[:limit])


@dataclass
class Ticker:
    symbol: str
    last: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    volume: Decimal
    quote_volume: Decimal
    trades: int
    change_percent: Decimal | None
    timestamp: datetime


def ticker_get(*, market: Market) -> Ticker:
    """Last trade price, best bid and ask, and the last 24 hours of trading (from the one-minute candles)."""
    from orders.models import Trade

    now = timezone.now()
    with _snapshot():
        window = Candle.objects.filter(market=market, open_time__gte=now - timedelta(hours=24))
        totals = window.aggregate(high=Max("high"), low=Min("low"), volume=Sum("volume"), quote=Sum("quote_volume"))
        trades = window.aggregate(n=Sum("trades"))["n"] or 0
        first = window.order_by("open_time").values_list("open", flat=True).first()
        last = Trade.objects.filter(market=market).order_by("-id").values_list("price", flat=True).first()
        bid, ask = best_prices(market=market)
    change = None
    if first and last is not None:
        change = ((last - first) / first * 100).quantize(Decimal("0.01"))
    return Ticker(
        symbol=market.symbol,
        last=last,
        bid=bid,
        ask=ask,
        open=first,
        high=totals["high"],
        low=totals["low"],
        volume=totals["volume"] or ZERO,
        quote_volume=totals["quote"] or ZERO,
        trades=trades,
        change_percent=change,
        timestamp=now,
    )


def market_views(
    *, markets: list[Market], depth: int = 20, tickers: bool = True, last_trades: dict[int, Decimal] | None = None
) -> dict[int, tuple[BookView, Ticker | None]]:
    """The books (and 24-hour tickers) of several markets, read in one snapshot with a fixed number of queries
    (one per market for the last trade) instead of about twenty per market: field for field what ``book_get`` and
    ``ticker_get`` answer for each (tests/markets/test_market_views.py). The stream hub computes the markets that
    changed in a batch of events with it, passing the last trade price of the markets that traded in the batch
    (``last_trades``: market pk -> price), which it then does not read."""
    pks = sorted({m.pk for m in markets})
    now = timezone.now()
    out: dict[int, tuple[BookView, Ticker | None]] = {}
    if not pks:
        return out
    with _snapshot():
        if connection.vendor == "postgresql":
            fresh, inventory, resting, stats, firsts, lasts = _pg_views_reads(pks, now, tickers, last_trades or {})
        else:
            fresh, inventory, resting, stats, firsts, lasts = _views_reads(pks, now, tickers, last_trades or {})
    for pk in pks:
        market = fresh[pk]
        house_bids, house_asks = house_ladder(
            ladder_settings(market),
            base_inventory=inventory.get(market.base_asset_id, ZERO),
            quote_inventory=inventory.get(market.quote_asset_id, ZERO),
        )
        customer_bids = sorted(resting[(pk, "buy")], key=lambda level: level[0], reverse=True)[:depth]
        customer_asks = sorted(resting[(pk, "sell")], key=lambda level: level[0])[:depth]
        bids = _merge("buy", house_bids, customer_bids, depth=depth)
        asks = _merge("sell", house_asks, customer_asks, depth=depth)
        book = BookView(market.symbol, market.book_sequence, now, bids, asks)
        ticker = None
        if tickers:
            row = stats.get(pk) or {}
            first, last = firsts.get(pk), lasts[pk]
            change = None
            if first and last is not None:
                change = ((last - first) / first * 100).quantize(Decimal("0.01"))
            ticker = Ticker(
                symbol=market.symbol,
                last=last,
                bid=bids[0][0] if bids else None,
                ask=asks[0][0] if asks else None,
                open=first,
                high=row.get("high"),
                low=row.get("low"),
                volume=row.get("volume") or ZERO,
                quote_volume=row.get("quote") or ZERO,
                trades=row.get("n") or 0,
                change_percent=change,
                timestamp=now,
            )
        out[pk] = (book, ticker)
    return out


def _views_reads(pks: list[int], now: datetime, tickers: bool, last_trades: dict[int, Decimal]) -> tuple[Any, ...]:
    """What ``market_views`` reads, with the ORM (in the caller's snapshot)."""
    from orders.models import RESTING_STATUSES, Order, Trade

    fresh = Market.objects.in_bulk(pks)
    inventory = house_inventory(*sorted({a for m in fresh.values() for a in (m.base_asset_id, m.quote_asset_id)}))
    resting: dict[tuple[int, str], list[tuple[Decimal, Decimal]]] = defaultdict(list)
    for market_id, side, price, quantity in (
        Order.objects.filter(market_id__in=pks, status__in=RESTING_STATUSES)
        .values("market_id", "side", "price")
        .annotate(quantity=Sum("remaining_quantity"))
        .order_by()
        .values_list("market_id", "side", "price", "quantity")
    ):
        resting[(market_id, side)].append((price, quantity))
    stats: dict[int, dict[str, Any]] = {}
    firsts: dict[int, Decimal] = {}
    lasts: dict[int, Decimal | None] = {}
    if tickers:
        window = Candle.objects.filter(market_id__in=pks, open_time__gte=now - timedelta(hours=24))
        stats = {
            row["market_id"]: row
            for row in window.values("market_id")
            .annotate(
                high=Max("high"),
                low=Min("low"),
                volume=Sum("volume"),
                quote=Sum("quote_volume"),
                n=Sum("trades"),
                first_time=Min("open_time"),
            )
            .order_by()
        }
        if stats:
            first_of = Q()
            for market_id, row in stats.items():
                first_of |= Q(market_id=market_id, open_time=row["first_time"])
            firsts = dict(Candle.objects.filter(first_of).values_list("market_id", "open"))
        for pk in pks:
            if last_trades and pk in last_trades:
                lasts[pk] = last_trades[pk]
            else:
                lasts[pk] = Trade.objects.filter(market_id=pk).order_by("-id").values_list("price", flat=True).first()
    return fresh, inventory, resting, stats, firsts, lasts


def _pg_views_reads(pks: list[int], now: datetime, tickers: bool, last_trades: dict[int, Decimal]) -> tuple[Any, ...]:
    """``_views_reads`` on PostgreSQL: the same answers from five prepared statements (the stream hub asks every
    batch of market changes), lists as arrays."""
    from exchange.db.postgresql import statements
    from orders.models import RESTING_STATUSES

    rows = statements.rows(_MARKETS_SQL, [pks])
    names = [f.attname for f in Market._meta.concrete_fields]
    fresh = {row[0]: Market.from_db(connection.alias, names, row) for row in rows}
    assets = sorted({a for m in fresh.values() for a in (m.base_asset_id, m.quote_asset_id)})
    inventory = dict(statements.rows(_INVENTORY_SQL, [LedgerAccountKind.HOUSE_LIQUIDITY.value, assets]))
    resting: dict[tuple[int, str], list[tuple[Decimal, Decimal]]] = defaultdict(list)
    for market_id, side, price, quantity in statements.rows(_RESTING_SQL, [pks, [str(s) for s in RESTING_STATUSES]]):
        resting[(market_id, side)].append((price, quantity))
    stats: dict[int, dict[str, Any]] = {}
    firsts: dict[int, Decimal] = {}
    lasts: dict[int, Decimal | None] = {}
    if tickers:
        for market_id, high, low, volume, quote, n, first_time, first in statements.rows(
            _CANDLES_SQL, [pks, now - timedelta(hours=24)]
        ):
            stats[market_id] = {
                "market_id": market_id,
                "high": high,
                "low": low,
                "volume": volume,
                "quote": quote,
                "n": n,
                "first_time": first_time,
            }
            firsts[market_id] = first
        unknown = [pk for pk in pks if pk not in last_trades]
        found = dict(statements.rows(_LAST_TRADES_SQL, [unknown])) if unknown else {}
        lasts = {pk: last_trades[pk] if pk in last_trades else found.get(pk) for pk in pks}
    return fresh, inventory, resting, stats, firsts, lasts


_MARKETS_SQL = (  # the model's own columns, no input
    "SELECT "  # noqa: S608
    + ", ".join(f.column for f in Market._meta.concrete_fields)
    + " FROM markets_market WHERE id = ANY(%s)"
)
_INVENTORY_SQL = """
    SELECT asset_id, sum(balance) FROM ledger_ledgeraccount WHERE kind = %s AND asset_id = ANY(%s) GROUP BY asset_id
"""
_RESTING_SQL = """
    SELECT market_id, side, price, sum(remaining_quantity) FROM orders_order
     WHERE market_id = ANY(%s) AND status = ANY(%s) GROUP BY market_id, side, price
"""
# The 24-hour window's totals per market, with the open of its first candle (one candle per market and minute).
_CANDLES_SQL = """
    SELECT market_id, max(high), min(low), sum(volume), sum(quote_volume), sum(trades), min(open_time),
           (array_agg(open ORDER BY open_time))[1]
      FROM markets_candle WHERE market_id = ANY(%s) AND open_time >= %s GROUP BY market_id
"""
_LAST_TRADES_SQL = """
    SELECT m.id, (SELECT t.price FROM orders_trade t WHERE t.market_id = m.id ORDER BY t.id DESC LIMIT 1)
      FROM unnest(%s::bigint[]) AS m(id)
"""


@dataclass
class CandleView:
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int


# Whether a market's reference price follows a price path (set by the simulation app): then an interval without
# trades still has a candle, carrying the path (see ``candles``).
path_driven: Callable[[Market], bool] = lambda market: False  # noqa: E731


def candles(*, market: Market, interval: str, limit: int = 100) -> list[CandleView]:
    """The last ``limit`` candles of ``interval`` that had trades, oldest first, aggregated from one-minute
    candles. Intervals start on whole multiples of their length since the Unix epoch (a day at 00:00 UTC).

    On a market whose price follows a path (the price engine moves it), every interval has a candle: one without
    trades carries the price path, open at the reference price its interval started with, close at the one it
    ended with (the path's close), high and low the larger and smaller of the two, no volume and no trades."""
    traded = _traded_candles(market=market, interval=interval, limit=limit)
    if not path_driven(market):
        return traded
    return _with_path(market=market, traded=traded, minutes=INTERVALS[interval], limit=limit)


def _with_path(*, market: Market, traded: list[CandleView], minutes: int, limit: int) -> list[CandleView]:
    now = timezone.now()
    first = _bucket(now - timedelta(minutes=minutes * (limit - 1)), minutes)
    closes = _path_closes(market=market, since=first, minutes=minutes)
    by_start = {c.open_time: c for c in traded}
    history = market.history.filter(history_date__lt=first).order_by("-history_date", "-history_id")
    carry = history.values_list("reference_price", flat=True).first()
    out: list[CandleView] = []
    start = first
    while start <= now:
        close = closes.get(start, carry)
        candle = by_start.get(start)
        if candle is not None:
            out.append(candle)
        elif close is not None:
            opened = carry if carry is not None else close
            out.append(CandleView(start, opened, max(opened, close), min(opened, close), close, ZERO, ZERO, 0))
        carry = close
        start += timedelta(minutes=minutes)
    return out[-limit:]


def _path_closes(*, market: Market, since: datetime, minutes: int) -> dict[datetime, Decimal]:
    """The last reference price of each interval since ``since`` (intervals with a price change only)."""
    history = market.history.model
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(history._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT ON (b) b, reference_price FROM (SELECT floor(extract(epoch FROM history_date) / %s) "  # noqa: S608 - the table name is ours
                f"AS b, reference_price, history_date, history_id FROM {table} WHERE id = %s AND history_date >= %s) h "
                "ORDER BY b, history_date DESC, history_id DESC",
                [minutes * 60, market.pk, since],
            )
            rows = cursor.fetchall()
        return {datetime.fromtimestamp(int(b) * minutes * 60, tz=UTC): price for b, price in rows}
    closes: dict[datetime, Decimal] = {}
    rows = history.objects.filter(id=market.pk, history_date__gte=since).order_by("history_date", "history_id")
    for moment, price in rows.values_list("history_date", "reference_price").iterator():
        closes[_bucket(moment, minutes)] = price
    return closes


def _traded_candles(*, market: Market, interval: str, limit: int) -> list[CandleView]:
    minutes = INTERVALS[interval]
    now = timezone.now()
    since = now - timedelta(minutes=minutes * limit)
    since = _bucket(since, minutes)
    rows = Candle.objects.filter(market=market, open_time__gte=since).order_by("open_time")
    out: dict[datetime, CandleView] = {}
    for row in rows.iterator():
        start = _bucket(row.open_time, minutes)
        view = out.get(start)
        if view is None:
            out[start] = CandleView(
                start, row.open, row.high, row.low, row.close, row.volume, row.quote_volume, row.trades
            )
        else:
            view.high, view.low, view.close = max(view.high, row.high), min(view.low, row.low), row.close
            view.volume += row.volume
            view.quote_volume += row.quote_volume
            view.trades += row.trades
    return list(out.values())[-limit:]


def _bucket(moment: datetime, minutes: int) -> datetime:
    epoch_minutes = int(moment.timestamp() // 60)
    return datetime.fromtimestamp((epoch_minutes - epoch_minutes % minutes) * 60, tz=UTC)

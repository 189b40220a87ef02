"""The database's ceiling: the service's market-order fill as plain SQL, one transaction per order, N connections.

Each order is what ``orders.services._place`` does for a market order on a book with no resting customer orders
(the house's ladder is the counterparty), with the same locks in the same order (exchange/locking.py) and the same
rows written, but sent as plain statements from psycopg, one round trip each, the way a competent engineer would
write it without our PL/pgSQL functions (``exchange_book_lock``, ``exchange_settle``, orders/pg_store.py):

1. ``BEGIN``; lock the market row (``SELECT ... FOR UPDATE``: matching on a market is serialized by it);
2. share-lock the account (``FOR SHARE``) and read its status;
3. read the house's inventory of the market's two assets (the ladder is bounded by it) and, for orders on a market
   quoted in another asset than USD or USDT, the USD price that values the order against the configured maximum;
4. read the crossing resting orders of the other side of the book (the first page, in priority order). This
   baseline handles the house as the only counterparty, so a customer order found there is an error: the benchmark
   runs it after cancelling what the ``limit`` phase left;
5. in Python: the rules the service checks (account active, market trading, quantity step and minimums, notional),
   the house's ladder (``markets.ladder``) and the match (``orders.matching``), the product's own pure functions;
6. lock the customer's two balance rows (``FOR UPDATE``, sorted by account and asset) and check the taker's
   balance; then write: the balance rows (one ``UPDATE ... FROM unnest``), the order and its history row (one
   statement, a data-modifying CTE), the journal entry, its five postings, the trade and its taker fill (one
   statement), the candle of the minute (``INSERT ... ON CONFLICT DO UPDATE``), the market's ``book_sequence``,
   and last the three house rows (liquidity given, liquidity taken, fee revenue: one random shard of eight, or
   always shard 0 in the ``sql_hot`` variant) in one statement that locks them in id order; the CHECK constraint
   refuses a negative house balance (counted as a rejection, rolled back);
7. ``COMMIT``, which runs the ledger's deferred balance trigger and the deferred foreign-key checks.

That is 13 round trips per order, against the service's 4 inside its transaction (``BEGIN``, the two functions,
``COMMIT``). What the baseline leaves out is what the service adds around the database work: HTTP, Django and DRF,
API-key authentication (and its re-check under the lock), the account and market lookups before the transaction,
serializing the answer, and storing a refused order (a refusal here is rolled back and counted). The rows are
real and balanced, so ``manage.py reconcile`` checks them with the service's; tests/benchmarks/test_sql_baseline.py
places the same orders through the service and through this module and compares every row they write.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from benchmarks.load import PhaseStats
from benchmarks.workload import random_order
from markets.ladder import LadderSettings, house_ladder
from orders.matching import HouseLevel, Incoming, Match, Terms, average_price, match_incoming

# The configured defaults (exchange/settings/base.py) for what a market leaves empty; the benchmark's service runs
# with local defaults too (no configuration service).
DEFAULTS = {
    "spread_bps": Decimal(10),
    "taker_fee_bps": Decimal(10),
    "maker_fee_bps": Decimal(5),
    "ladder_levels": 10,
    "ladder_step_bps": Decimal(5),
    "size_factor": Decimal(1),
    "max_order_notional_usd": Decimal(1_000_000),
}
PAGE = 50  # the first page of the book the service reads (orders.store.PAGE)

LOCK_MARKET = (
    "SELECT symbol, base_asset_id, quote_asset_id, status, reference_price, quantity_step, price_tick, min_quantity, "
    "min_notional, max_notional, spread_bps, taker_fee_bps, maker_fee_bps, house_quoting, ladder_levels, "
    "ladder_step_bps, ladder_size FROM markets_market WHERE id = %s FOR UPDATE"
)
SHARE_ACCOUNT = "SELECT status FROM accounts_account WHERE id = %s FOR SHARE"
INVENTORY = (
    "SELECT asset_id, sum(balance) FROM ledger_ledgeraccount WHERE kind = 'house_liquidity' AND account_id IS NULL "
    "AND asset_id IN (%s, %s) GROUP BY asset_id"
)
USD_PRICE = "SELECT reference_price FROM markets_market WHERE base_asset_id = %s AND quote_asset_id = 'USD'"
_RESTING = "SELECT id FROM orders_order WHERE market_id = %s AND side = %s AND status IN ('open', 'partially_filled') "
RESTING = {  # the side a taker meets, in priority order (asks lowest first, bids highest first; then oldest)
    "sell": _RESTING + "ORDER BY price, id LIMIT %s",
    "buy": _RESTING + "ORDER BY price DESC, id LIMIT %s",
}
LOCK_BALANCES = (
    "SELECT asset_id, available FROM accounts_balance WHERE account_id = %s AND asset_id = ANY(%s) "
    "ORDER BY account_id, asset_id FOR UPDATE"
)
UPDATE_BALANCES = (
    "UPDATE accounts_balance AS b SET available = b.available + d.delta, updated_at = %s "
    "FROM unnest(%s::text[], %s::numeric[]) AS d(asset_id, delta) WHERE b.account_id = %s AND b.asset_id = d.asset_id"
)
_ORDER_COLUMNS = (
    "order_id, account_id, market_id, side, order_type, time_in_force, post_only, self_trade_prevention, status, "
    "quantity, quote_quantity, price, client_order_id, remaining_quantity, rest_quantity, locked, maker_fee_bps, "
    "taker_fee_bps, filled_quantity, filled_quote, average_price, fee, fee_asset_id, reject_reason, reject_message, "
    "end_reason, created_by_id, created_at, updated_at, filled_at, chaos_id"
)
INSERT_ORDER = (
    f"WITH o AS (INSERT INTO orders_order ({_ORDER_COLUMNS}, request_hash) VALUES "
    "(%s, %s, %s, %s, 'market', '', false, 'expire_taker', %s, %s, NULL, NULL, %s, %s, 0, 0, %s, %s, %s, %s, %s, "
    "%s, %s, '', '', %s, %s, %s, %s, %s, '', %s) RETURNING *) "
    f"INSERT INTO orders_historicalorder ({_ORDER_COLUMNS}, id, history_date, history_change_reason, history_type, "
    f"history_user_id) SELECT {_ORDER_COLUMNS}, id, %s, 'placed', '+', %s FROM o RETURNING id"
)
_ENTRY = "(%s::uuid, 'trade', 'trade', %s, NULL, %s, %s::jsonb, %s::timestamptz)"
_POSTING = "(%s::uuid, %s::bigint, %s, %s::bigint, %s::numeric)"
_TRADE = (
    "(%s::uuid, %s::uuid, %s::bigint, %s::numeric, %s::numeric, %s, %s::bigint, %s::bigint, %s::numeric, "
    "%s::numeric, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s, %s::numeric, %s::numeric)"
)
_FILL = "(%s::uuid, %s::bigint, %s::bigint, %s::bigint, %s, %s::numeric, %s::numeric, %s::numeric, %s::numeric, %s)"
CANDLE = (
    "INSERT INTO markets_candle (market_id, open_time, open, high, low, close, volume, quote_volume, trades) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (market_id, open_time) DO UPDATE "
    "SET high = greatest(markets_candle.high, EXCLUDED.high), low = least(markets_candle.low, EXCLUDED.low), "
    "close = EXCLUDED.close, volume = markets_candle.volume + EXCLUDED.volume, "
    "quote_volume = markets_candle.quote_volume + EXCLUDED.quote_volume, "
    "trades = markets_candle.trades + EXCLUDED.trades"
)
BOOK_SEQUENCE = "UPDATE markets_market SET book_sequence = book_sequence + 1 WHERE id = %s"
SETTLE_HOUSE = (
    "WITH locked AS (SELECT id FROM ledger_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE) "
    "UPDATE ledger_ledgeraccount AS la SET balance = la.balance + d.delta "
    "FROM locked JOIN unnest(%s::bigint[], %s::numeric[]) AS d(id, delta) ON d.id = locked.id "
    "WHERE la.id = locked.id"
)


def _trade_statement(trades: int, postings: int) -> str:
    """The entries, their postings, the trades and the taker's fills, in one statement (parameters in this order:
    the actor, the entries, the time, the postings, the time, the trades, the time, the fills)."""

    def values(row: str, n: int) -> str:
        return ", ".join([row] * n)

    return (
        "WITH e AS (INSERT INTO ledger_journalentry (entry_id, kind, reference_type, reference_id, idempotency_key, "
        f"memo, metadata, created_at, actor_id) SELECT x.*, %s::integer FROM (VALUES {values(_ENTRY, trades)}) AS x "
        "RETURNING id, entry_id), "
        "p AS (INSERT INTO ledger_posting (entry_id, ledger_account_id, asset_id, account_id, amount, created_at) "
        f"SELECT e.id, x.la, x.asset, x.account, x.amount, %s FROM (VALUES {values(_POSTING, postings)}) "
        "AS x(entry, la, asset, account, amount) JOIN e ON e.entry_id = x.entry), "
        "t AS (INSERT INTO orders_trade (trade_id, market_id, price, quantity, taker_side, taker_order_id, "
        "taker_account_id, taker_quote, taker_fee, taker_fee_bps, maker_order_id, maker_account_id, maker_quote, "
        "maker_fee, maker_fee_bps, fee_asset_id, reference_price, spread_bps, journal_entry_id, created_at) "
        "SELECT x.trade_id, x.market, x.price, x.quantity, x.side, x.taker_order, x.taker_account, x.quote, x.fee, "
        "x.fee_bps, NULL, NULL, x.maker_quote, x.maker_fee, x.maker_fee_bps, x.fee_asset, x.reference_price, "
        f"x.spread_bps, e.id, %s FROM (VALUES {values(_TRADE, trades)}) AS x(entry, trade_id, market, price, "
        "quantity, side, taker_order, taker_account, quote, fee, fee_bps, maker_quote, maker_fee, maker_fee_bps, "
        "fee_asset, reference_price, spread_bps) JOIN e ON e.entry_id = x.entry RETURNING id, trade_id) "
        "INSERT INTO orders_fill (trade_id, order_id, account_id, market_id, side, liquidity, price, quantity, "
        "quote_amount, fee, fee_asset_id, created_at) SELECT t.id, x.order_pk, x.account, x.market, x.side, 'taker', "
        f"x.price, x.quantity, x.quote, x.fee, x.fee_asset, %s FROM (VALUES {values(_FILL, trades)}) AS "
        "x(trade_id, order_pk, account, market, side, price, quantity, quote, fee, fee_asset) "
        "JOIN t ON t.trade_id = x.trade_id"
    )


@dataclass(frozen=True)
class Catalogue:
    """What never changes during a run: ids of markets, ledger accounts and owners, and asset precisions."""

    markets: dict[str, int]  # symbol -> id
    quanta: dict[str, Decimal]  # asset -> smallest unit
    customer: dict[tuple[int, str], int]  # (account pk, asset) -> customer_available ledger account id
    owners: dict[int, int]  # account pk -> owner user id (the order's created_by, the entry's actor)
    house: dict[tuple[str, str, int], int]  # (kind, asset, shard) -> ledger account id
    shards: int


def load_catalogue(conn: psycopg.Connection[Any], account_ids: list[int]) -> Catalogue:
    quanta = {code: Decimal(1).scaleb(-d) for code, d in conn.execute("SELECT code, decimals FROM ledger_asset")}
    markets = dict(conn.execute("SELECT symbol, id FROM markets_market").fetchall())
    customer = {
        (acc, asset): pk
        for pk, acc, asset in conn.execute(
            "SELECT id, account_id, asset_id FROM ledger_ledgeraccount "
            "WHERE kind = 'customer_available' AND account_id = ANY(%s)",
            [account_ids],
        )
    }
    owners = dict(conn.execute("SELECT id, owner_id FROM accounts_account WHERE id = ANY(%s)", [account_ids]))
    house = {
        (kind, asset, shard): pk
        for pk, kind, asset, shard in conn.execute(
            "SELECT id, kind, asset_id, shard FROM ledger_ledgeraccount "
            "WHERE account_id IS NULL AND kind IN ('house_liquidity', 'fee_revenue')"
        )
    }
    return Catalogue(markets, quanta, customer, owners, house, 1 + max(shard for _, _, shard in house))


class Refused(Exception):
    """A business refusal (the service would store a rejected order): rolled back and counted by its code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class BookNotEmpty(Exception):
    """A customer order rests on the side this order meets: the baseline only fills against the house."""


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def fingerprint(symbol: str, side: str, quantity: Decimal) -> str:
    """The request hash the service stores for a market order sized by quantity (``OrderRequest.fingerprint``)."""
    parts = [symbol, side, "market", f"{quantity.normalize():f}", "", "", "", "", "expire_taker"]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _match(
    m: dict[str, Any],
    *,
    account: int,
    side: str,
    quantity: Decimal,
    inventory: dict[str, Decimal],
    usd_price: Decimal | None,
    quantum: Decimal,
) -> list[Match]:
    """The service's rules, the house's ladder and the match, on the market row read under its lock."""
    if m["status"] != "trading":
        raise Refused("market_halted")
    if quantity % m["quantity_step"] != 0:
        raise Refused("invalid_quantity_step")
    if quantity < m["min_quantity"]:
        raise Refused("below_min_quantity")
    estimate = quantity * m["reference_price"]
    usd = estimate if m["quote_asset_id"] in ("USD", "USDT") else estimate * (usd_price or Decimal(0))
    if estimate > m["max_notional"] or usd > DEFAULTS["max_order_notional_usd"]:
        raise Refused("above_max_notional")
    bids, asks = house_ladder(
        LadderSettings(
            reference_price=m["reference_price"],
            spread_bps=_or(m["spread_bps"], DEFAULTS["spread_bps"]),
            levels=_or(m["ladder_levels"], DEFAULTS["ladder_levels"]),
            step_bps=_or(m["ladder_step_bps"], DEFAULTS["ladder_step_bps"]),
            size=(m["ladder_size"] or Decimal(0)) * DEFAULTS["size_factor"],
            price_tick=m["price_tick"],
            quantity_step=m["quantity_step"],
            enabled=m["house_quoting"],
        ),
        base_inventory=inventory.get(m["base_asset_id"], Decimal(0)),
        quote_inventory=inventory.get(m["quote_asset_id"], Decimal(0)),
    )
    incoming = Incoming(
        account_pk=account,
        side=side,
        order_type="market",
        price=None,
        quantity=quantity,
        quote_quantity=None,
        time_in_force="",
        post_only=False,
        self_trade_prevention="expire_taker",
        taker_fee_bps=_or(m["taker_fee_bps"], DEFAULTS["taker_fee_bps"]),
        maker_fee_bps=_or(m["maker_fee_bps"], DEFAULTS["maker_fee_bps"]),
    )
    levels = [HouseLevel(p, q) for p, q in (asks if side == "buy" else bids)]
    outcome = match_incoming(incoming, levels, Terms(quantity_step=m["quantity_step"], quote_quantum=quantum))
    if outcome.reject_reason is not None:
        raise Refused(str(outcome.reject_reason))
    if outcome.status != "filled":
        raise Refused("insufficient_liquidity")  # the ladder ran out: the service would expire the remainder
    if outcome.filled_quote < m["min_notional"]:
        raise Refused("below_min_notional")
    return outcome.matches


@dataclass(frozen=True)
class MarketOrder:
    account: int
    symbol: str
    side: str
    quantity: Decimal
    client_order_id: str
    shard: int  # the house shard index that gives, takes and earns the fee


def fill(conn: psycopg.Connection[Any], cat: Catalogue, order: MarketOrder) -> None:
    """One market order filled against the house, in one transaction. Raises Refused (rolled back)."""
    market_pk, side = cat.markets[order.symbol], order.side
    try:
        with conn.transaction():
            # Level 1 of the lock order: the market; level 2: the account, shared.
            m = conn.cursor(row_factory=dict_row).execute(LOCK_MARKET, [market_pk]).fetchone()
            cur = conn.cursor()
            status = cur.execute(SHARE_ACCOUNT, [order.account]).fetchone()[0]
            if status != "active":
                raise Refused(f"account_{status}")
            base, quote = m["base_asset_id"], m["quote_asset_id"]
            inventory = dict(cur.execute(INVENTORY, [base, quote]).fetchall())
            usd_price = None if quote in ("USD", "USDT") else cur.execute(USD_PRICE, [quote]).fetchone()[0]
            opposite = "sell" if side == "buy" else "buy"
            if cur.execute(RESTING[opposite], [market_pk, opposite, PAGE]).fetchall():
                raise BookNotEmpty(order.symbol)
            matches = _match(
                m,
                account=order.account,
                side=side,
                quantity=order.quantity,
                inventory=inventory,
                usd_price=usd_price,
                quantum=cat.quanta[quote],
            )
            _write(cur, cat, m, order, market_pk=market_pk, matches=matches)
    except psycopg.errors.CheckViolation as exc:
        if "ledger_account_balance_non_negative" not in str(exc):
            raise
        raise Refused("insufficient_liquidity") from exc


def _legs(cat: Catalogue, order: MarketOrder, x: Match, base: str, quote: str) -> list[tuple[int, str, Any, Decimal]]:
    """(ledger account, asset, customer account or None, amount) of one trade's entry: the taker's two legs, the
    house's two (it is the maker: it gives what the taker gets), the fee revenue."""
    account, sign = order.account, 1 if order.side == "buy" else -1
    taker_quote = -(x.taker_quote + x.taker_fee) if order.side == "buy" else x.taker_quote - x.taker_fee
    return [
        (cat.customer[(account, base)], base, account, sign * x.quantity),
        (cat.customer[(account, quote)], quote, account, taker_quote),
        (cat.house[("house_liquidity", base, order.shard)], base, None, -sign * x.quantity),
        (cat.house[("house_liquidity", quote, order.shard)], quote, None, sign * x.taker_quote),
        (cat.house[("fee_revenue", quote, order.shard)], quote, None, x.taker_fee),
    ]


def _write(
    cur: psycopg.Cursor[Any],
    cat: Catalogue,
    m: dict[str, Any],
    order: MarketOrder,
    *,
    market_pk: int,
    matches: list[Match],
) -> None:
    base, quote, symbol, side, account = m["base_asset_id"], m["quote_asset_id"], m["symbol"], order.side, order.account
    owner = cat.owners[account]
    filled = sum((x.quantity for x in matches), Decimal(0))
    filled_quote = sum((x.taker_quote for x in matches), Decimal(0))
    fee = sum((x.taker_fee for x in matches), Decimal(0))
    if side == "buy":
        customer_delta = {base: filled, quote: -(filled_quote + fee)}
    else:
        customer_delta = {base: -filled, quote: filled_quote - fee}
    # Level 3 of the lock order: the taker's balance rows, sorted; its balance is checked before any write.
    balances = dict(cur.execute(LOCK_BALANCES, [account, sorted((base, quote))]).fetchall())
    spent = quote if side == "buy" else base
    if balances[spent] + customer_delta[spent] < 0:
        raise Refused("insufficient_balance")
    now = datetime.now(UTC)
    assets = sorted(customer_delta)
    cur.execute(UPDATE_BALANCES, [now, assets, [customer_delta[a] for a in assets], account])
    taker_fee_bps = _or(m["taker_fee_bps"], DEFAULTS["taker_fee_bps"])
    order_id = uuid.uuid4()
    order_row = [order_id, account, market_pk, side, "filled", order.quantity, order.client_order_id]
    order_row += [order.quantity - filled, _or(m["maker_fee_bps"], DEFAULTS["maker_fee_bps"]), taker_fee_bps]
    order_row += [filled, filled_quote, average_price([(x.price, x.quantity) for x in matches]), fee, quote, ""]
    order_row += [owner, now, now, now, fingerprint(symbol, side, order.quantity)]
    order_pk = cur.execute(INSERT_ORDER, [*order_row, now, owner]).fetchone()[0]

    entries: list[Any] = []
    postings: list[Any] = []
    trades: list[Any] = []
    fills: list[Any] = []
    house: dict[int, Decimal] = {}
    for x in matches:
        entry_id = uuid.uuid4()
        metadata = {
            "trade_id": str(x.trade_id),
            "symbol": symbol,
            "price": f"{x.price:f}",
            "quantity": f"{x.quantity:f}",
            "taker_order_id": str(order_id),
            "maker_order_id": None,
            "order_by_account": {str(account): str(order_id)},
        }
        memo = f"{side} {x.quantity.normalize():f} {symbol} @ {x.price.normalize():f}"
        entries += [entry_id, str(x.trade_id), memo, json.dumps(metadata), now]
        for la, asset, acc, amount in _legs(cat, order, x, base, quote):
            if amount:  # a leg of zero is no posting, as in the service's journal batch
                postings += [entry_id, la, asset, acc, amount]
                if acc is None:
                    house[la] = house.get(la, Decimal(0)) + amount
        trades += [entry_id, x.trade_id, market_pk, x.price, x.quantity, side, order_pk, account, x.taker_quote]
        trades += [x.taker_fee, taker_fee_bps, x.maker_quote, x.maker_fee, Decimal(0), quote, m["reference_price"]]
        trades += [_or(m["spread_bps"], DEFAULTS["spread_bps"])]
        fills += [
            x.trade_id,
            order_pk,
            account,
            market_pk,
            side,
            x.price,
            x.quantity,
            x.taker_quote,
            x.taker_fee,
            quote,
        ]
    statement = _trade_statement(len(matches), len(postings) // 5)
    cur.execute(statement, [owner, *entries, now, *postings, now, *trades, now, *fills])
    prices = [x.price for x in matches]
    minute = now.replace(second=0, microsecond=0)
    candle = [prices[0], max(prices), min(prices), prices[-1], filled, filled_quote, len(matches)]
    cur.execute(CANDLE, [market_pk, minute, *candle])
    cur.execute(BOOK_SEQUENCE, [market_pk])
    # Level 4, last: the exchange's books, locked in id order.
    ids = sorted(pk for pk, delta in house.items() if delta)
    cur.execute(SETTLE_HOUSE, [ids, ids, [house[i] for i in ids]])


def run_sql_phase(
    *, name: str, dsn: str, account_ids: list[int], seconds: float, max_requests: int, hot: bool = False, seed: int = 0
) -> PhaseStats:
    """One thread and one connection per account; each fills until the deadline or the shared budget is spent."""
    with psycopg.connect(dsn) as conn:
        cat = load_catalogue(conn, account_ids)
    stats = PhaseStats(name=name, clients=len(account_ids))
    budget = [max_requests]
    guard = threading.Lock()
    connections = [psycopg.connect(dsn, autocommit=True) for _ in account_ids]  # transactions are explicit
    start_line = threading.Barrier(len(account_ids) + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        local = PhaseStats(name=name, clients=1)
        rng = random.Random(f"{seed}:{name}:{index}")
        conn, account = connections[index], account_ids[index]
        start_line.wait()
        n = 0
        while time.monotonic() < deadline[0]:
            with guard:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            symbol, side, quantity = random_order(rng)
            shard = 0 if hot else rng.randrange(cat.shards)
            n += 1
            started = time.perf_counter()
            try:
                fill(conn, cat, MarketOrder(account, symbol, side, quantity, f"{name}-{index}-{n}", shard))
                local.ok += 1
                local.ok_by_kind["market"] += 1
            except Refused as refused:
                local.rejections[refused.code] += 1
            except (psycopg.Error, BookNotEmpty) as exc:
                local.errors[f"{type(exc).__name__}: {getattr(exc, 'sqlstate', '') or exc}"] += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000
            local.latencies_ms.append(elapsed)
            local.latencies_by_kind["market"].append(elapsed)
        with guard:
            stats.add(local)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(account_ids))]
    for thread in threads:
        thread.start()
    cpu_before = sum(os.times()[:2])
    started = time.monotonic()
    deadline[0] = started + seconds
    start_line.wait()
    for thread in threads:
        thread.join()
    stats.duration_s = time.monotonic() - started
    stats.client_cpu_s = sum(os.times()[:2]) - cpu_before
    for conn in connections:
        conn.close()
    return stats

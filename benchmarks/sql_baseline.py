"""The database's ceiling: the service's fill as plain SQL, one transaction per fill, N concurrent connections.

Each fill does the row work ``orders.services._place`` and ``ledger.services.journal_post`` do (as of commit
e2b03b9), in the same order and with the same locks, one statement per round trip as the service sends them:

1. lock the customer's two balance rows (``SELECT ... FOR UPDATE``, ordered by account and asset) and check in
   Python that neither goes negative;
2. write them (one ``UPDATE ... FROM unnest(arrays)``);
3. insert the journal entry, its five postings (one statement), the order, the order's history row
   (django-simple-history writes one per save) and the trade;
4. last, settle the three house rows (liquidity given, liquidity taken, fee revenue: one random shard of eight,
   or always shard 0 in the "hot row" variant) in one statement that locks them in id order and adds the
   deltas; the CHECK constraint refuses a negative house balance (counted as a rejection, rolled back);
5. commit, which runs the ledger's deferred balance trigger and the deferred foreign-key checks.

What it leaves out is exactly what the service adds around that work: HTTP, Django and DRF, API-key
authentication, the reads that find the account, market and house shards, serializing the answer. The entries
are real and balanced, so ``manage.py reconcile`` checks them along with the service's.
"""

from __future__ import annotations

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

from benchmarks.load import PhaseStats
from benchmarks.workload import random_order
from markets.pricing import price_fill, quote_prices

DEFAULT_BPS = Decimal(10)  # markets created by the migration use the configured defaults (10 bps each)

LOCK_BALANCES = (
    "SELECT id, asset_id, available FROM accounts_balance WHERE account_id = %s AND asset_id = ANY(%s) "
    "ORDER BY account_id, asset_id FOR UPDATE"
)
UPDATE_BALANCES = (
    "UPDATE accounts_balance AS b SET available = d.available, updated_at = %s "
    "FROM unnest(%s::bigint[], %s::numeric[]) AS d(id, available) WHERE b.id = d.id"
)
SETTLE_BOOKS = (
    "WITH locked AS (SELECT id FROM ledger_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE) "
    "UPDATE ledger_ledgeraccount AS la SET balance = la.balance + d.delta "
    "FROM locked JOIN unnest(%s::bigint[], %s::numeric[]) AS d(id, delta) ON d.id = locked.id "
    "WHERE la.id = locked.id"
)
INSERT_ENTRY = (
    "INSERT INTO ledger_journalentry (entry_id, kind, reference_type, reference_id, idempotency_key, memo, metadata, "
    "created_at, actor_id) VALUES (%s, 'trade', 'trade', %s, NULL, %s, %s, %s, NULL) RETURNING id"
)
INSERT_POSTINGS = (
    "INSERT INTO ledger_posting (amount, created_at, account_id, asset_id, entry_id, ledger_account_id) VALUES "
    + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * 5)
)
_ORDER_COLUMNS = (
    "order_id, side, order_type, status, quantity, quote_quantity, price, client_order_id, filled_quantity, "
    "filled_quote, average_price, fee, reject_reason, reject_message, created_at, updated_at, filled_at, account_id, "
    "created_by_id, fee_asset_id, market_id"
)
_ORDER_VALUES = "%s, %s, 'market', 'filled', %s, NULL, NULL, NULL, %s, %s, %s, %s, '', '', %s, %s, %s, %s, NULL, %s, %s"
INSERT_ORDER = f"INSERT INTO orders_order ({_ORDER_COLUMNS}, request_hash) VALUES ({_ORDER_VALUES}, %s) RETURNING id"
INSERT_ORDER_HISTORY = (
    f"INSERT INTO orders_historicalorder (id, {_ORDER_COLUMNS}, history_date, history_change_reason, history_type, "
    f"history_user_id) VALUES (%s, {_ORDER_VALUES}, %s, NULL, '+', NULL)"
)
INSERT_TRADE = (
    "INSERT INTO orders_trade (trade_id, side, quantity, price, quote_amount, fee, liquidity, reference_price, "
    "spread_bps, fee_bps, created_at, account_id, fee_asset_id, journal_entry_id, market_id, order_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, 'taker', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@dataclass(frozen=True)
class MarketRow:
    id: int
    base: str
    quote: str
    reference_price: Decimal
    quote_quantum: Decimal


@dataclass(frozen=True)
class Catalogue:
    markets: dict[str, MarketRow]
    balance_ids: dict[tuple[int, str], int]  # (account pk, asset) -> accounts_balance.id
    available_ids: dict[tuple[int, str], int]  # (account pk, asset) -> customer_available ledger account id
    house_ids: dict[tuple[str, str, int], int]  # (kind, asset, shard) -> ledger account id
    shards: int


def load_catalogue(dsn: str, account_ids: list[int]) -> Catalogue:
    with psycopg.connect(dsn) as conn:
        decimals = dict(conn.execute("SELECT code, decimals FROM ledger_asset").fetchall())
        markets = {
            symbol: MarketRow(
                id=pk, base=base, quote=quote, reference_price=price, quote_quantum=Decimal(1).scaleb(-decimals[quote])
            )
            for pk, symbol, base, quote, price in conn.execute(
                "SELECT id, symbol, base_asset_id, quote_asset_id, reference_price FROM markets_market"
            )
        }
        balance_ids = {
            (acc, asset): pk
            for pk, acc, asset in conn.execute(
                "SELECT id, account_id, asset_id FROM accounts_balance WHERE account_id = ANY(%s)", [account_ids]
            )
        }
        available_ids = {
            (acc, asset): pk
            for pk, acc, asset in conn.execute(
                "SELECT id, account_id, asset_id FROM ledger_ledgeraccount "
                "WHERE kind = 'customer_available' AND account_id = ANY(%s)",
                [account_ids],
            )
        }
        house_ids = {
            (kind, asset, shard): pk
            for pk, kind, asset, shard in conn.execute(
                "SELECT id, kind, asset_id, shard FROM ledger_ledgeraccount "
                "WHERE kind IN ('house_liquidity', 'fee_revenue')"
            )
        }
    shards = 1 + max(shard for _, _, shard in house_ids)
    return Catalogue(markets, balance_ids, available_ids, house_ids, shards)


class _Refused(Exception):
    """A balance would go negative: rolled back and counted as a rejection, as the service would."""


def _fill(conn: psycopg.Connection[Any], cat: Catalogue, account: int, rng: random.Random, hot: bool) -> None:
    symbol, side, quantity = random_order(rng)
    market = cat.markets[symbol]
    bid, ask = quote_prices(
        reference=market.reference_price, spread_bps=DEFAULT_BPS, quote_quantum=market.quote_quantum
    )
    fill = price_fill(
        side=side,
        quantity=quantity,
        price=ask if side == "buy" else bid,
        fee_bps=DEFAULT_BPS,
        quote_quantum=market.quote_quantum,
    )
    base, quote = market.base, market.quote
    shard = 0 if hot else rng.randrange(cat.shards)
    base_change = fill.quantity if side == "buy" else -fill.quantity
    house_give, house_take = (
        ((base, -fill.quantity), (quote, fill.quote_amount))
        if side == "buy"
        else ((quote, -fill.quote_amount), (base, fill.quantity))
    )
    # (ledger account id, asset, customer account or None, amount): the entry's five postings.
    postings = [
        (cat.available_ids[(account, base)], base, account, base_change),
        (cat.available_ids[(account, quote)], quote, account, fill.customer_quote_change),
        (cat.house_ids[("house_liquidity", house_give[0], shard)], house_give[0], None, house_give[1]),
        (cat.house_ids[("house_liquidity", house_take[0], shard)], house_take[0], None, house_take[1]),
        (cat.house_ids[("fee_revenue", quote, shard)], quote, None, fill.fee),
    ]
    customer_delta = {base: base_change, quote: fill.customer_quote_change}
    book_delta = {p[0]: p[3] for p in postings[2:]}
    book_ids = sorted(book_delta)
    order_id, trade_id = uuid.uuid4(), uuid.uuid4()
    try:
        with conn.transaction():
            cur = conn.cursor()
            rows = cur.execute(LOCK_BALANCES, [account, sorted((base, quote))]).fetchall()
            new_available = {asset: available + customer_delta[asset] for _, asset, available in rows}
            if min(new_available.values()) < 0:
                raise _Refused
            ts = datetime.now(UTC)
            balance_ids = [cat.balance_ids[(account, asset)] for asset in new_available]
            cur.execute(UPDATE_BALANCES, [ts, balance_ids, list(new_available.values())])
            metadata = json.dumps(
                {
                    "order_id": str(order_id),
                    "trade_id": str(trade_id),
                    "symbol": symbol,
                    "side": side,
                    "quantity": f"{fill.quantity:f}",
                    "price": f"{fill.price:f}",
                    "quote_amount": f"{fill.quote_amount:f}",
                    "fee": f"{fill.fee:f}",
                }
            )
            memo = f"{side} {fill.quantity.normalize():f} {symbol} @ {fill.price.normalize():f}"
            entry_pk = cur.execute(INSERT_ENTRY, [uuid.uuid4(), str(trade_id), memo, metadata, ts]).fetchone()[0]
            cur.execute(
                INSERT_POSTINGS,
                [v for la, asset, acc, amount in postings for v in (amount, ts, acc, asset, entry_pk, la)],
            )
            order_values = [order_id, side, quantity, fill.quantity, fill.quote_amount, fill.price, fill.fee]
            order_values += [ts, ts, ts, account, quote, market.id]
            order_pk = cur.execute(INSERT_ORDER, [*order_values, uuid.uuid4().hex]).fetchone()[0]
            cur.execute(INSERT_ORDER_HISTORY, [order_pk, *order_values, ts])
            trade_values = [trade_id, side, fill.quantity, fill.price, fill.quote_amount, fill.fee]
            trade_values += [market.reference_price, DEFAULT_BPS, DEFAULT_BPS, ts, account, quote, entry_pk]
            cur.execute(INSERT_TRADE, [*trade_values, market.id, order_pk])
            cur.execute(SETTLE_BOOKS, [book_ids, book_ids, [book_delta[i] for i in book_ids]])
    except psycopg.errors.CheckViolation as exc:
        if "ledger_account_balance_non_negative" not in str(exc):
            raise
        raise _Refused from exc


def run_sql_phase(
    *, name: str, dsn: str, account_ids: list[int], seconds: float, max_requests: int, hot: bool = False, seed: int = 0
) -> PhaseStats:
    """One thread and one connection per account; each fills until the deadline or the shared budget is spent."""
    cat = load_catalogue(dsn, account_ids)
    stats = PhaseStats(name=name, clients=len(account_ids))
    budget = [max_requests]
    guard = threading.Lock()
    connections = [psycopg.connect(dsn, autocommit=True) for _ in account_ids]  # transactions are explicit
    start_line = threading.Barrier(len(account_ids) + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        local = PhaseStats(name=name, clients=1)
        rng = random.Random(seed * 1000 + index)
        conn, account = connections[index], account_ids[index]
        start_line.wait()
        while time.monotonic() < deadline[0]:
            with guard:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            started = time.perf_counter()
            try:
                _fill(conn, cat, account, rng, hot)
                local.ok += 1
            except _Refused:
                local.rejections["insufficient"] += 1
            except psycopg.Error as exc:
                local.errors[f"{type(exc).__name__}: {getattr(exc, 'sqlstate', '')}"] += 1
                continue
            local.latencies_ms.append((time.perf_counter() - started) * 1000)
        with guard:
            stats.ok += local.ok
            stats.rejections.update(local.rejections)
            stats.errors.update(local.errors)
            stats.latencies_ms.extend(local.latencies_ms)

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

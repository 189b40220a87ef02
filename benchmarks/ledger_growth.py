"""What one fill and one deposit cost as the ledger's history grows, without planner statistics.

    .venv/bin/python benchmarks/ledger_growth.py                 # 1k and 100k entries, 200 of each operation
    .venv/bin/python benchmarks/ledger_growth.py --old-index     # the same with the index set before 0006

One client, in process (no HTTP: this measures the database work of a commit, not the web stack). What it does:
1. creates a throw-away PostgreSQL database next to ``DATABASE_URL`` (default the local server), migrates it with
   autovacuum off on the ledger tables, so the planner never gets statistics during the run (this machine runs
   with autovacuum off anyway; a fresh production database has none until it is analyzed), and never ANALYZEs;
2. seeds house liquidity and one funded account through the services;
3. loads synthetic history up to each size: balanced entries of two postings (+1 and -1 smallest unit on one
   external account, spread over the four assets), inserted in bulk with triggers off for speed; they change no
   balance, so the books still reconcile;
4. after 20 untimed operations of each kind (warm-up), at each size, times ``--ops`` market orders
   (``order_place``) and ``--ops`` deposits (``deposit_create``), each its own transaction, and prints the median
   and p95 in ms;
5. reconciles the books and drops the database (also on failure).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

SIZES = (1_000, 100_000)


def _admin_url(base: str) -> tuple[str, str]:
    parts = urlsplit(base)
    name = f"exsim_ledger_growth_{uuid.uuid4().hex[:10]}"
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres")), urlunsplit(
        parts._replace(path=f"/{name}")
    )


def _load_history(cursor, target: int) -> int:
    """Insert synthetic balanced entries until the journal holds ``target`` entries; returns how many it holds."""
    cursor.execute("SELECT count(*) FROM ledger_journalentry")
    have = cursor.fetchone()[0]
    missing = target - have
    if missing <= 0:
        return have
    cursor.execute("SELECT id, asset_id FROM ledger_ledgeraccount WHERE kind = 'external' ORDER BY asset_id")
    externals = cursor.fetchall()
    cursor.execute("SELECT code, decimals FROM ledger_asset")
    decimals = dict(cursor.fetchall())
    cursor.execute("SET session_replication_role = replica")  # bulk load only: triggers off, rows still balanced
    cursor.execute("SELECT coalesce(max(id), 0) FROM ledger_journalentry")
    first = cursor.fetchone()[0] + 1
    cursor.execute(
        """
        INSERT INTO ledger_journalentry (id, entry_id, kind, memo, reference_type, reference_id, metadata,
                                         created_at)
        SELECT g, gen_random_uuid(), 'adjustment', 'synthetic history', 'benchmark', '', '{}'::jsonb, now()
          FROM generate_series(%s, %s) AS g
        """,
        [first, first + missing - 1],
    )
    for index, (ledger_account_id, asset) in enumerate(externals):
        unit = f"1e-{decimals[asset]}"
        cursor.execute(
            """
            INSERT INTO ledger_posting (entry_id, ledger_account_id, asset_id, account_id, amount, created_at)
            SELECT g, %s, %s, NULL, s * %s::numeric, now()
              FROM generate_series(%s, %s) AS g, (VALUES (1), (-1)) AS v(s)
             WHERE g %% %s = %s
            """,
            [ledger_account_id, asset, unit, first, first + missing - 1, len(externals), index],
        )
    cursor.execute("SET session_replication_role = origin")
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence('ledger_journalentry', 'id'), max(id)) FROM ledger_journalentry"
    )
    return target


def _timed(operation, count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        operation(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered):6.2f} ms   p95 {p95:6.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=200, help="fills and deposits timed at each size")
    parser.add_argument("--old-index", action="store_true", help="index postings by entry_id only (before 0006)")
    args = parser.parse_args()

    import psycopg

    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    admin, url = _admin_url(base)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{urlsplit(url).path[1:]}"')
    os.environ.update(
        DATABASE_URL=url, DJANGO_SETTINGS_MODULE="exchange.settings.local", CONFIG_SERVICE_URL="", LOG_LEVEL="WARNING"
    )
    try:
        import django

        django.setup()
        from decimal import Decimal

        from django.core.management import call_command
        from django.db import connection

        from accounts.services import deposit_create, house_fund
        from ledger.reconciliation import reconcile
        from markets.models import Market
        from orders.services import OrderRequest, order_place
        from tests.factories import UserFactory, make_account

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            for table in ("ledger_posting", "ledger_journalentry", "accounts_balance", "ledger_ledgeraccount"):
                cursor.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            if args.old_index:
                cursor.execute("DROP INDEX ledger_posting_entry_asset")
                cursor.execute("CREATE INDEX ledger_posting_entry_only ON ledger_posting (entry_id)")
        for asset, amount in {"BTC": "1000", "ETH": "10000", "USD": "100000000", "USDT": "100000000"}.items():
            house_fund(asset=asset, amount=amount)
        user = UserFactory(username="bench-trader")
        account = make_account(owner=user, funds={"USD": "10000000", "BTC": "100"})
        market = Market.objects.get(symbol="BTC-USD")

        def fill(i: int) -> None:
            side = "buy" if i % 2 == 0 else "sell"
            request = OrderRequest(
                account=account,
                market=market,
                side=side,
                order_type="market",
                quantity=Decimal("0.001"),
                quote_quantity=None,
            )
            placed, _ = order_place(request=request, actor=user)
            assert placed.order.status == "filled", placed.order.reject_reason

        def deposit(i: int) -> None:
            deposit_create(account=account, asset="USD", amount="1.00", actor=None, reason="benchmark")

        label = "entry_id only (before 0006)" if args.old_index else "(entry_id, asset_id) (0006)"
        print(f"posting index: {label}; no planner statistics; {args.ops} operations per row, one client")
        _timed(fill, 20), _timed(deposit, 20)  # warm up: process caches, prepared plans
        for size in SIZES:
            with connection.cursor() as cursor:
                held = _load_history(cursor, size)
                cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'ledger_posting'")
                reltuples = cursor.fetchone()[0]
            fills, deposits = _timed(fill, args.ops), _timed(deposit, args.ops)
            print(f"{held:>7} entries (reltuples {reltuples:g})  fill:    {_summary(fills)}")
            print(f"{'':>7}                          deposit: {_summary(deposits)}")
        report = reconcile()
        print("reconcile:", "ok" if report.ok else report.discrepancies)
        return 0 if report.ok else 1
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())

"""Seed the benchmark database through the services, and record what one request costs in SQL and CPU.

Run by ``benchmarks/run.py`` as a subprocess with ``DJANGO_SETTINGS_MODULE=benchmarks.bench_settings`` and the
benchmark's ``DATABASE_URL``; writes one JSON object to ``--out`` (stdout carries the service's log lines):

* ``clients``: one user, trade API key and funded account per HTTP client (no two clients share a balance row);
* ``sql_accounts``: funded accounts for the plain-SQL baseline (separate, so ``reconcile`` checks its writes too);
* ``probe``: the SQL statements (and round trips) of one market order, one resting limit order, one cancel and
  one trivial request, and the CPU time each kind of request costs, measured in-process with Django's test
  client (see ``_probe``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg import pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Per client, enough for either workload many times over: the largest order is about 70 USD or USDT, 0.001 BTC,
# 0.05 ETH, or 0.0027 BTC on ETH-BTC (benchmarks/workload.py). A client sends at most ~20 orders/s (the service
# places a few hundred a second in all), so even a minute of orders all on one side, every maker's reservation
# included, spends under 90,000 USD, 1.2 BTC (3.3 with ETH-BTC) and 60 ETH.
CLIENT_DEPOSITS = {"USD": "1000000", "USDT": "1000000", "BTC": "20", "ETH": "400"}
# The house: its ladder quotes 10 levels of 0.5 BTC or 5 ETH a side per market (markets/reference_data.py), bounded
# by its inventory; spread over 8 shards, each shard still holds far more than any run takes from it.
HOUSE_LIQUIDITY = {"BTC": "2000", "ETH": "40000", "USD": "200000000", "USDT": "200000000"}


def _seed(*, clients: int, sql_accounts: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from accounts.services import account_create, api_key_create, deposit_create, house_fund

    User = get_user_model()
    for asset, amount in HOUSE_LIQUIDITY.items():
        house_fund(asset=asset, amount=amount, reason="benchmark: house liquidity")
    out: dict[str, Any] = {"clients": [], "sql_accounts": []}
    for role, count in (("client", clients), ("sql", sql_accounts)):
        for i in range(count):
            with transaction.atomic():
                user = User.objects.create(username=f"bench-{role}-{i}")
                account = account_create(owner=user, label="bench")
                for asset, amount in CLIENT_DEPOSITS.items():
                    deposit_create(
                        account=account, asset=asset, amount=amount, actor=None, reason="benchmark: opening deposit"
                    )
                if role == "client":
                    _key, plain = api_key_create(user=user, name="bench", scopes=["trade"])
                    out["clients"].append({"key": plain, "account_id": str(account.account_id)})
                else:
                    out["sql_accounts"].append(account.pk)
    return out


@contextmanager
def traced(connection: Any) -> Iterator[dict[str, Any]]:
    """What this connection sends to PostgreSQL meanwhile, from libpq's protocol trace: every statement (a Query or
    Parse message; string literals and parameters elided, so no key prefix or payload is kept) and the round trips
    (one per ReadyForQuery answer). BEGIN and COMMIT are statements too: Django sends them around its transactions."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    out: dict[str, Any] = {"statements": [], "round_trips": 0}
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield out
        finally:
            pgconn.untrace()
        trace.seek(0)
        for line in trace:
            direction, _, kind, *rest = [*line.rstrip("\n").split("\t"), ""]
            if direction == "B" and kind == "ReadyForQuery":
                out["round_trips"] += 1
            elif direction == "F" and kind in ("Query", "Parse"):
                match = _STATEMENT[kind].match(rest[0])
                text = re.sub(r"'(?:[^']|'')*'", "'…'", match.group(1) if match else rest[0])
                text = re.sub(r'^SELECT ".*?" FROM ', "SELECT … FROM ", " ".join(text.split()))  # the ORM's columns
                out["statements"].append(text[:150])


_STATEMENT = {"Query": re.compile(r'^\s*"(.*)"\s*$'), "Parse": re.compile(r'^\s*"[^"]*" "(.*)" \d+')}


def _probe(client_spec: dict[str, str], repeat: int) -> dict[str, Any]:
    """Requests placed in-process with Django's test client, on a warm process and an idle machine:

    * the SQL of one market order (filled by the house), one limit order resting inside the spread, its cancel and
      one trivial request: each the second of its kind (the first warms per-process caches);
    * the CPU time per request (``time.process_time``, averaged over ``repeat`` requests) of the liveness check, the
      trivial authenticated view, a market order, a resting limit order and its cancel: the budget that bounds
      throughput on two cores.
    Every limit order the probe places is cancelled, so the book is the house's again afterwards.
    """
    from django.db import connection
    from django.test import Client

    from benchmarks.workload import MarketWorkload, Touch

    http = Client(HTTP_AUTHORIZATION=f"Api-Key {client_spec['key']}")
    account = client_spec["account_id"]
    market = MarketWorkload(accounts=[account], seed=7, tag="probe")
    book = http.get("/api/v1/markets/BTC-USD/book", {"depth": 1}).json()
    tick = Decimal(http.get("/api/v1/markets/BTC-USD").json()["price_tick"])
    touch = Touch(bid=Decimal(book["bids"][0][0]), ask=Decimal(book["asks"][0][0]), tick=tick)
    placed = [0]

    def post(url: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = http.post(url, body, content_type="application/json")
        if response.status_code != status:
            raise SystemExit(f"probe {url}: HTTP {response.status_code} {response.content[:300]!r}")
        return response.json()

    def market_order(symbol: str | None = None) -> Any:
        body = market.next(0).body or {}
        if symbol:  # a market order on a market quoted in USD: ETH-BTC adds a query (the order's USD value)
            body = {**body, "symbol": symbol, "quantity": "0.0001"}
        return post("/api/v1/orders", body)

    def limit_order() -> dict[str, Any]:
        placed[0] += 1
        body = {
            "account_id": account,
            "symbol": "BTC-USD",
            "side": "buy",
            "order_type": "limit",
            "price": f"{touch.maker_price('buy', 1):f}",
            "quantity": "0.0001",
            "client_order_id": f"probe-limit-{placed[0]}",
        }
        order = post("/api/v1/orders", body)
        if order["status"] != "open":
            raise SystemExit(f"probe: the limit order did not rest: {order['status']}")
        return order

    def cancel(order: dict[str, Any]) -> Any:
        response = http.delete(f"/api/v1/orders/{order['order_id']}")
        if response.status_code != 200:
            raise SystemExit(f"probe cancel: HTTP {response.status_code} {response.content[:300]!r}")
        return response

    requests: dict[str, Any] = {}
    for _ in range(2):  # the second of each kind is kept
        with traced(connection) as requests["market order"]:
            market_order("BTC-USD")
        with traced(connection) as requests["limit order (rests)"]:
            order = limit_order()
        with traced(connection) as requests["cancel"]:
            cancel(order)
        with traced(connection) as requests["trivial"]:
            post("/bench/echo", market.next(0).body or {})
    cpu: dict[str, float] = {
        "health (GET, no auth, no query)": 0.0,
        "trivial (POST, API key)": 0.0,
        "market order": 0.0,
        "limit order (rests)": 0.0,
        "cancel": 0.0,
    }
    calls = {
        "health (GET, no auth, no query)": lambda: http.get("/api/v1/health"),
        "trivial (POST, API key)": lambda: post("/bench/echo", market.next(0).body or {}),
        "market order": market_order,
    }
    for name, call in calls.items():
        for _ in range(10):
            call()
        started = time.process_time()
        for _ in range(repeat):
            call()
        cpu[name] = (time.process_time() - started) * 1000 / repeat
    for i in range(repeat + 10):
        started = time.process_time()
        order = limit_order()
        middle = time.process_time()
        cancel(order)
        if i >= 10:
            cpu["limit order (rests)"] += (middle - started) * 1000 / repeat
            cpu["cancel"] += (time.process_time() - middle) * 1000 / repeat
    return {"requests": requests, "cpu_ms_per_request": {k: round(v, 2) for k, v in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--sql-accounts", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--probe-repeat", type=int, default=150)
    args = parser.parse_args()

    import django

    django.setup()
    seeded = _seed(clients=args.clients, sql_accounts=args.sql_accounts)
    seeded["probe"] = _probe(seeded["clients"][0], repeat=args.probe_repeat)
    args.out.write_text(json.dumps(seeded))


if __name__ == "__main__":
    main()

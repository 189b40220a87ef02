"""Sixteen real HTTP clients trade the order book of a real service for at least twenty seconds.

The service is what production runs (``manage.py serve``: gunicorn, on a fresh PostgreSQL database, free loopback
ports, stopped by pid); it is set up only by the operator's ``seed_accounts`` and driven only over HTTP. Eight
traders hold one account each; two clients share each account. On BTC-USD, ETH-USD, BTC-USDT and ETH-BTC they rest limit
orders near the touch (some post-only), send limit orders that cross (GTC, IOC, FOK), market orders by quantity and
by quote amount, cancel their resting orders one by one or all at once; meanwhile the operator moves the reference
prices, so the house's quotes sweep the orders they cross. Every order carries a client_order_id; a 5xx or a lost
connection is retried with the same one.

Afterwards, from the service's database and API: no negative balance, no crossed book, every account's locked
balance equals what its open orders hold, every acknowledged order exists exactly once (and nothing else does), the
ledger is conserved per asset, and ``manage.py reconcile`` passes.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from decimal import ROUND_FLOOR
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import client, every, manage, seed_keys
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
# The end-to-end tests' service on its own fresh PostgreSQL database, with the options below.
pg_service_database_url, service = e2e.pg_service_database_url, e2e.service

CLIENTS = 16
SECONDS = 20.0
TRADERS = 8
# symbol -> (tick, quantity step used here, smallest and largest quantity in steps)
MARKETS = {
    "BTC-USD": (D("0.01"), D("0.001"), 1, 40),
    "ETH-USD": (D("0.01"), D("0.01"), 1, 40),
    "BTC-USDT": (D("0.01"), D("0.001"), 1, 40),
    "ETH-BTC": (D("0.00001"), D("0.01"), 1, 30),
}
WEIGHTS = [3, 3, 2, 1]
FUNDS = {"USD": "250000", "USDT": "250000", "BTC": "4", "ETH": "60"}
SEED = {
    "house": {"BTC": "150", "ETH": "2000", "USD": "12000000", "USDT": "12000000"},
    "users": [
        {"username": "desk-operator", "scopes": ["operator"]},
        *[
            {"username": f"trader-{i}", "scopes": ["read", "trade"], "accounts": [{"label": "book", "deposits": FUNDS}]}
            for i in range(TRADERS)
        ],
    ],
}
# What a business refusal may be here (money or book state at the moment of the order), never an input error.
EXPECTED_REJECTIONS = {"insufficient_balance", "insufficient_liquidity", "post_only_would_take"}


@pytest.fixture
def service_options() -> dict[str, Any]:
    # Most of an order's time under load is waiting for its market's lock: more workers than cores keep the other
    # markets busy meanwhile.
    return {"workers": 6, "env": {"LOG_LEVEL": "WARNING"}}


class Tally:
    """What the clients saw, shared by their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[str, tuple[str, str, str]] = {}  # client_order_id -> (account_id, order_id, status)
        self.sent: set[str] = set()
        self.responses: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.server_errors: Counter[int] = Counter()
        self.transport_errors = 0
        self.unexpected: list[str] = []

    def note(self, what: str, response: httpx.Response) -> None:
        with self.lock:
            self.responses[f"{what} {response.status_code}"] += 1
            if response.status_code >= 500:
                self.server_errors[response.status_code] += 1


def send(http: httpx.Client, tally: Tally, what: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
    """One request, retried (same body, same client_order_id) on a 5xx or a lost connection; None if it never
    got an answer."""
    for attempt in range(6):
        try:
            response = http.request(method, url, **kw)
        except httpx.TransportError:
            with tally.lock:
                tally.transport_errors += 1
            time.sleep(0.05 * (attempt + 1))
            continue
        tally.note(what, response)
        if response.status_code < 500:
            return response
        time.sleep(0.05 * (attempt + 1))
    return None


class Trader:
    """One client: its account, what it has resting, its own random stream of orders."""

    def __init__(self, n: int, http: httpx.Client, account_id: str, prices: dict[str, D], tally: Tally) -> None:
        self.n, self.http, self.account_id, self.prices, self.tally = n, http, account_id, prices, tally
        self.rng = random.Random(1000 + n)
        self.resting: list[str] = []
        self.count = 0

    def order(self, body: dict[str, Any]) -> None:
        self.count += 1
        coid = f"c{self.n}-{self.count}"
        body = {"account_id": self.account_id, "client_order_id": coid, **body}
        with self.tally.lock:
            self.tally.sent.add(coid)
        response = send(self.http, self.tally, "order", "POST", "/orders", json=body)
        if response is None:
            return
        if response.status_code in (200, 201):
            order = response.json()
        elif response.status_code == 422:
            error = response.json()["error"]
            order = error["details"]["order"]
            with self.tally.lock:
                self.tally.rejections[error["code"]] += 1
                if error["code"] not in EXPECTED_REJECTIONS:
                    self.tally.unexpected.append(f"{body}: {error['code']}")
        else:
            with self.tally.lock:
                self.tally.unexpected.append(f"{body}: {response.status_code} {response.text[:200]}")
            return
        with self.tally.lock:
            self.tally.acked[coid] = (self.account_id, order["order_id"], order["status"])
        if order["status"] in ("open", "partially_filled"):
            self.resting.append(order["order_id"])

    def price_near(self, symbol: str, side: str, *, through: bool) -> str:
        """A limit price around the touch: most often inside the house's spread or just behind it; ``through``
        puts it past the other side so that it crosses."""
        tick = MARKETS[symbol][0]
        ref = self.prices[symbol]
        bps = D(self.rng.randint(-4, 12)) if not through else D(self.rng.randint(6, 25))
        sign = -1 if (side == "buy") != through else 1
        raw = ref * (1 + sign * bps / 10000)
        return f"{(raw / tick).to_integral_value(rounding=ROUND_FLOOR) * tick:f}"

    def quantity(self, symbol: str) -> str:
        _, step, low, high = MARKETS[symbol]
        return f"{step * self.rng.randint(low, high):f}"

    def step(self) -> None:
        rng = self.rng
        symbol = rng.choices(list(MARKETS), weights=WEIGHTS)[0]
        side = rng.choice(["buy", "sell"])
        roll = rng.random()
        if roll < 0.56:
            # Resting near the touch (some post-only), or crossing with a time in force and a self-trade mode.
            through = roll >= 0.36
            body = {
                "symbol": symbol,
                "side": side,
                "order_type": "limit",
                "price": self.price_near(symbol, side, through=through),
                "quantity": self.quantity(symbol),
            }
            if through:
                body["time_in_force"] = rng.choice(["gtc", "ioc", "fok"])
                body["self_trade_prevention"] = rng.choice(["expire_taker", "expire_maker", "expire_both"])
            else:
                body["post_only"] = rng.random() < 0.25
            self.order(body)
        elif roll < 0.74:
            if symbol != "ETH-BTC" and rng.random() < 0.3:
                amount = {"quote_quantity": f"{rng.randint(20, 3000)}"}
            else:
                amount = {"quantity": self.quantity(symbol)}
            self.order({"symbol": symbol, "side": side, "order_type": "market", **amount})
        elif roll < 0.96 and self.resting:
            order_id = self.resting.pop(rng.randrange(len(self.resting)))
            response = send(self.http, self.tally, "cancel", "DELETE", f"/orders/{order_id}")
            if response is not None and response.status_code not in (200, 409):
                with self.tally.lock:
                    self.tally.unexpected.append(f"cancel {order_id}: {response.status_code} {response.text[:200]}")
        elif roll >= 0.96:
            params = {"account_id": self.account_id, **({"symbol": symbol} if rng.random() < 0.5 else {})}
            response = send(self.http, self.tally, "cancel_all", "DELETE", "/orders", params=params)
            if response is not None and response.status_code != 200:
                with self.tally.lock:
                    self.tally.unexpected.append(f"cancel-all: {response.status_code} {response.text[:200]}")
            self.resting.clear()


def api(service: ServiceProcess, key: str) -> httpx.Client:
    return client(service, key, timeout=30)


def test_sixteen_clients_trading_the_book_for_twenty_seconds_leave_it_consistent(
    service: ServiceProcess, tmp_path: Path
) -> None:
    keys = seed_keys(service, SEED, tmp_path)
    tally = Tally()
    with api(service, keys["desk-operator"]) as ops:
        prices = {s: D(ops.get(f"/markets/{s}").json()["price"]) for s in MARKETS}
        accounts = {}
        for i in range(TRADERS):
            with api(service, keys[f"trader-{i}"]) as trader:
                [account] = trader.get("/accounts").json()["accounts"]
                accounts[i] = account["account_id"]

        started = time.monotonic()
        deadline = started + SECONDS
        moves = Counter()

        def trade(n: int) -> None:
            try:
                with api(service, keys[f"trader-{n % TRADERS}"]) as http:
                    trader = Trader(n, http, accounts[n % TRADERS], prices, tally)
                    while time.monotonic() < deadline:
                        trader.step()
            except Exception as exc:  # a thread's exception would not fail the test by itself
                with tally.lock:
                    tally.unexpected.append(f"client {n}: {exc!r}")

        def operator() -> None:
            # The reference prices wander by a few basis points a second: the house's ladder sweeps what it crosses.
            rng = random.Random(5)
            with api(service, keys["desk-operator"]) as http:
                while time.monotonic() < deadline - 1:
                    time.sleep(0.7)
                    symbol = rng.choice(["BTC-USD", "ETH-USD"])
                    price = (prices[symbol] * (1 + D(rng.randint(-8, 8)) / 10000)).quantize(D("0.01"))
                    response = send(
                        http, tally, "price", "POST", f"/markets/{symbol}/price", json={"price": f"{price}"}
                    )
                    if response is None or response.status_code != 200:
                        with tally.lock:
                            tally.unexpected.append(f"price {symbol} {price}: {response and response.text[:200]}")
                        continue
                    prices[symbol] = price
                    moves[symbol] += 1

        threads = [threading.Thread(target=trade, args=(n,)) for n in range(CLIENTS)]
        threads.append(threading.Thread(target=operator))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=SECONDS + 60)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads)

        # --- What the clients saw --------------------------------------------------------------------------------
        assert elapsed >= SECONDS
        assert not tally.unexpected, tally.unexpected[:10]
        assert tally.server_errors.get(500, 0) == 0, service.output()[-4000:]
        assert set(tally.acked) == tally.sent  # every order got a definitive answer in the end
        statuses = Counter(status for _, _, status in tally.acked.values())
        assert statuses["filled"] and statuses["rejected"] and (statuses["open"] + statuses["partially_filled"])

        # --- The books, from the API ---------------------------------------------------------------------------
        for symbol in MARKETS:
            book = ops.get(f"/markets/{symbol}/book", params={"depth": 1}).json()
            assert D(book["bids"][0][0]) < D(book["asks"][0][0]), book
        for account_id in accounts.values():
            open_orders = every(ops, "/orders", "orders", account_id=account_id, status="open")
            held = Counter()
            for order in open_orders:
                held[order["reserved_asset"]] += D(order["reserved"])
            balances = ops.get(f"/accounts/{account_id}/balances").json()["balances"]
            assert {b["asset"]: D(b["locked"]) for b in balances} == {b["asset"]: held[b["asset"]] for b in balances}
            assert all(D(b["available"]) >= 0 for b in balances)
        report = ops.get("/reconciliation")
        assert report.status_code == 200 and report.json()["ok"] is True, report.text[:4000]

    # --- The service's database ------------------------------------------------------------------------------
    with psycopg.connect(service.env["DATABASE_URL"]) as db:
        rows = db.execute(
            "SELECT o.client_order_id, a.account_id::text, o.order_id::text, o.status "
            "FROM orders_order o JOIN accounts_account a ON a.id = o.account_id"
        ).fetchall()
        stored = Counter(coid for coid, _, _, _ in rows)
        assert set(stored) == set(tally.acked) and set(stored.values()) == {1}
        by_coid = {coid: (account, order_id, status) for coid, account, order_id, status in rows}
        for coid, (account, order_id, status) in tally.acked.items():
            assert by_coid[coid][:2] == (account, order_id), coid
            if status in ("filled", "cancelled", "expired", "rejected"):
                assert by_coid[coid][2] == status, coid  # a final state never changes
        assert db.execute("SELECT count(*) FROM accounts_balance WHERE available < 0 OR locked < 0").fetchone() == (0,)
        assert db.execute(
            "SELECT count(*) FROM ledger_ledgeraccount WHERE kind <> 'external' AND balance < 0"
        ).fetchone() == (0,)
        assert (
            db.execute("SELECT asset_id, sum(amount) FROM ledger_posting GROUP BY 1 HAVING sum(amount) <> 0").fetchall()
            == []
        )
        # Customers' balances, the house's books, fee revenue and custody: per asset, everything sums to zero.
        assert (
            db.execute(
                "SELECT asset, sum(v) FROM (SELECT asset_id AS asset, balance AS v FROM ledger_ledgeraccount "
                "WHERE account_id IS NULL UNION ALL SELECT asset_id, available + locked FROM accounts_balance) t "
                "GROUP BY 1 HAVING sum(v) <> 0"
            ).fetchall()
            == []
        )
        crossed = db.execute(
            "SELECT m.symbol, max(o.price) FILTER (WHERE o.side = 'buy'), min(o.price) FILTER (WHERE o.side = 'sell') "
            "FROM orders_order o JOIN markets_market m ON m.id = o.market_id "
            "WHERE o.status IN ('open', 'partially_filled') GROUP BY 1 "
            "HAVING max(o.price) FILTER (WHERE o.side = 'buy') >= min(o.price) FILTER (WHERE o.side = 'sell')"
        ).fetchall()
        assert crossed == []
        unheld = db.execute(
            "WITH held AS (SELECT o.account_id, CASE o.side WHEN 'buy' THEN m.quote_asset_id ELSE m.base_asset_id END "
            "AS asset, sum(o.locked) AS locked FROM orders_order o JOIN markets_market m ON m.id = o.market_id "
            "WHERE o.status IN ('open', 'partially_filled') GROUP BY 1, 2) "
            "SELECT b.account_id, b.asset_id, b.locked, h.locked FROM accounts_balance b "
            "LEFT JOIN held h ON h.account_id = b.account_id AND h.asset = b.asset_id "
            "WHERE b.locked <> coalesce(h.locked, 0)"
        ).fetchall()
        assert unheld == []
        trades, customer_trades, swept = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE taker_order_id IS NOT NULL AND maker_order_id IS NOT NULL), "
            "count(*) FILTER (WHERE taker_order_id IS NULL) FROM orders_trade"
        ).fetchone()
        cancelled = db.execute("SELECT count(*) FROM orders_order WHERE status = 'cancelled'").fetchone()[0]

    result = manage(service, "reconcile")
    assert "reconciliation OK" in result.stdout, result.stdout + result.stderr
    retries = service.output().count('"order_retry"')  # deadlock or serialization retries (warnings)
    print(
        f"\norder book under load: {CLIENTS} clients, {elapsed:.1f} s: {len(tally.acked)} orders "
        f"({dict(statuses)}), {trades} trades ({customer_trades} between customers, {swept} swept by the house), "
        f"{cancelled} cancelled orders, cancel answers {tally.responses['cancel 200']} ok / "
        f"{tally.responses['cancel 409']} too late, cancel-all {tally.responses['cancel_all 200']}, "
        f"rejections {dict(tally.rejections)}, price moves {dict(moves)}, "
        f"5xx {dict(tally.server_errors)}, lost connections {tally.transport_errors}, retries logged {retries}"
    )
    assert trades > 0 and customer_trades > 0 and cancelled > 0

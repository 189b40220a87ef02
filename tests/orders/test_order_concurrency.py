"""Sixteen real HTTP clients place random buys and sells on shared accounts against PostgreSQL.

The server is Django's live test server (threaded, one database connection per request thread); the clients are
threads with their own HTTP connections. Afterwards: no negative balance, every order answered 201 is stored
exactly once with its one trade, the ledger reconciles, and per asset customers + house + fees + external sum
to zero.
"""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal as D

import httpx
import pytest

from accounts import services as account_services
from accounts.models import Balance
from ledger.models import LedgerAccount
from ledger.reconciliation import reconcile
from orders.models import Order, Trade
from tests.factories import UserFactory, make_account, make_key

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 16
SECONDS = 4.0
MARKETS = [("BTC-USD", "0.001"), ("ETH-USD", "0.01"), ("BTC-USDT", "0.001"), ("ETH-BTC", "0.01")]


def test_sixteen_concurrent_clients_cannot_overdraw_or_lose_orders(postgres, live_server):
    operator = UserFactory(username="ops")
    for asset, amount in {"BTC": "50", "ETH": "500", "USD": "5000000", "USDT": "5000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator)
    trader = UserFactory(username="desk")
    key = make_key(user=trader, scopes=["trade"])
    # Four shared accounts with little money: many orders must be refused for insufficient balance.
    accounts = [
        make_account(
            owner=trader, label=f"shared-{i}", funds={"USD": "600", "USDT": "600", "BTC": "0.01", "ETH": "0.1"}
        )
        for i in range(4)
    ]

    answered: list[tuple[int, dict]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Api-Key {key}"}, timeout=30) as http:
            i = 0
            while time.monotonic() < deadline and i < 400:
                i += 1
                symbol, qty = rng.choice(MARKETS)
                body = {
                    "account_id": str(rng.choice(accounts).account_id),
                    "symbol": symbol,
                    "side": rng.choice(["buy", "sell"]),
                    "order_type": "market",
                    "quantity": str(D(qty) * rng.randint(1, 5)),
                    "client_order_id": f"c{n}-{i}",
                }
                response = http.post("/api/v1/orders", json=body)
                with lock:
                    answered.append((response.status_code, response.json()))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    statuses = {status for status, _ in answered}
    assert statuses <= {201, 422}, statuses  # never a 5xx, never a conflict
    filled = [body for status, body in answered if status == 201]
    rejected = [body["error"] for status, body in answered if status == 422]
    assert filled and rejected, (len(filled), len(rejected))
    assert {e["code"] for e in rejected} <= {"insufficient_balance", "insufficient_liquidity"}

    # Every 201 is in the database exactly once, filled, with exactly one trade.
    ids = [body["order_id"] for body in filled]
    assert len(ids) == len(set(ids))
    assert Order.objects.filter(order_id__in=ids, status="filled").count() == len(ids)
    assert Trade.objects.filter(taker_order__order_id__in=ids).count() == len(ids)
    assert Order.objects.count() == len(answered)
    assert not Trade.objects.exclude(taker_order__order_id__in=ids).exists()

    assert not Balance.objects.filter(available__lt=0).exists()
    assert not LedgerAccount.objects.filter(kind="house_liquidity", balance__lt=0).exists()
    report = reconcile()
    assert report.ok, report.discrepancies
    for asset, groups in report.totals.items():
        assert D(groups["sum"]) == 0, (asset, groups)


def test_racing_for_scarce_house_liquidity_never_overdraws_the_house(postgres):
    """20 buyers race for 0.01 BTC each while the house holds 0.08 BTC over 8 shards: the house never goes
    negative, every filled unit left the house, and the rest are rejected as insufficient_liquidity."""
    import threading

    from django.db import connections

    from markets.models import Market
    from orders.services import OrderRequest, order_place

    operator = UserFactory(username="ops")
    account_services.house_fund(asset="BTC", amount="0.08", actor=operator)
    account_services.house_fund(asset="USD", amount="1000", actor=operator)
    buyers = [make_account(owner=UserFactory(username=f"buyer{i}"), funds={"USD": "1000"}) for i in range(20)]
    market = Market.objects.get(symbol="BTC-USD")
    barrier = threading.Barrier(len(buyers))
    results: list[object] = [None] * len(buyers)

    def buy(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            placed, _ = order_place(
                request=OrderRequest(
                    account=buyers[i],
                    market=market,
                    side="buy",
                    order_type="market",
                    quantity=D("0.01"),
                    quote_quantity=None,
                ),
                actor=None,
            )
            results[i] = placed.order
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(len(buyers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert all(isinstance(r, Order) for r in results), results
    filled = [r for r in results if r.status == "filled"]
    rejected = [r for r in results if r.status == "rejected"]
    assert {r.reject_reason for r in rejected} <= {"insufficient_liquidity"}
    house = LedgerAccount.objects.filter(kind="house_liquidity", asset_id="BTC")
    assert all(row.balance >= 0 for row in house)
    assert sum(row.balance for row in house) == D("0.08") - D("0.01") * len(filled)
    assert len(filled) >= 6 and len(filled) + len(rejected) == 20
    report = reconcile()
    assert report.ok, report.discrepancies

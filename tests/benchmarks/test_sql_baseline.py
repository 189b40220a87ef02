"""The benchmark's plain-SQL ceiling is the service's market-order fill: the same orders, placed once through the
service and once through ``benchmarks/sql_baseline.py`` from the same start, write the same rows (compared as in
tests/orders/test_store_equivalence.py), and the books reconcile after it (tests/conftest.py)."""

from __future__ import annotations

import random
from decimal import Decimal as D
from typing import Any

import psycopg
import pytest
from django.db import connection

from accounts import services as account_services
from accounts.models import Account
from benchmarks import sql_baseline
from markets.models import Market
from orders import services
from tests.factories import UserFactory, make_account
from tests.orders.test_store_equivalence import _fresh, ordered, snapshot

ORDERS = [  # (account, symbol, side, quantity): both sides, every quote asset, a cross-asset (ETH-BTC) valuation
    ("alice", "BTC-USD", "buy", "0.001"),
    ("bob", "BTC-USD", "sell", "0.0005"),
    ("alice", "ETH-USDT", "sell", "0.02"),
    ("bob", "ETH-BTC", "buy", "0.05"),
    ("alice", "ETH-BTC", "sell", "0.005"),
    ("bob", "BTC-USDT", "buy", "0.00037"),
    ("alice", "BTC-USD", "buy", "0.7"),  # more than the best level: walks two levels of the house's ladder
]


def accounts() -> dict[str, Account]:
    for asset, amount in {"BTC": "40", "ETH": "400", "USD": "4000000", "USDT": "4000000"}.items():
        account_services.house_fund(asset=asset, amount=amount)
    funds = {"BTC": "2", "ETH": "10", "USD": "100000", "USDT": "100000"}
    return {name: make_account(owner=UserFactory(username=name), label=name, funds=funds) for name in ("alice", "bob")}


def comparable(rows: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Candles summed per market: the two sessions may straddle a minute differently."""
    totals: dict[Any, list[Any]] = {}
    for market, _open, high, low, _close, volume, quote_volume, trades in rows["candles"]:
        t = totals.setdefault(market, [high, low, D(0), D(0), 0])
        t[0], t[1] = max(t[0], high), min(t[1], low)
        t[2], t[3], t[4] = t[2] + volume, t[3] + quote_volume, t[4] + trades
    return {**rows, "candles": ordered((m, *t) for m, t in totals.items())}


@pytest.mark.postgres
def test_the_sql_baseline_writes_what_the_service_writes(transactional_db, postgres, monkeypatch):
    monkeypatch.setattr(random, "choice", lambda seq: seq[0])  # the service's house shard: shard 0, as sql_hot
    people = accounts()
    for n, (who, symbol, side, quantity) in enumerate(ORDERS):
        placed, _ = services.order_place(
            request=services.OrderRequest(
                account=people[who],
                market=Market.objects.get(symbol=symbol),
                side=side,
                order_type="market",
                quantity=D(quantity),
                client_order_id=f"o{n}",
            ),
            actor=people[who].owner,
        )
        assert placed.order.status == "filled", placed.order.reject_reason
    reference = comparable(snapshot())
    assert len(reference["trades"]) == len(ORDERS) + 1

    _fresh()
    people = accounts()
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"], password=db["PASSWORD"], autocommit=True
    ) as conn:
        catalogue = sql_baseline.load_catalogue(conn, [a.pk for a in people.values()])
        for n, (who, symbol, side, quantity) in enumerate(ORDERS):
            order = sql_baseline.MarketOrder(people[who].pk, symbol, side, D(quantity), f"o{n}", shard=0)
            sql_baseline.fill(conn, catalogue, order)
    candidate = comparable(snapshot())

    for table in reference:
        assert candidate[table] == reference[table], table


@pytest.mark.postgres
def test_the_sql_baseline_refuses_what_the_service_refuses_and_writes_nothing(transactional_db, postgres):
    poor = make_account(owner=UserFactory(username="poor"), label="poor", funds={"USD": "5"})
    account_services.house_fund(asset="BTC", amount="40")
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"], password=db["PASSWORD"], autocommit=True
    ) as conn:
        catalogue = sql_baseline.load_catalogue(conn, [poor.pk])
        for quantity, code in (("0.001", "insufficient_balance"), ("0.000015", "invalid_quantity_step")):
            order = sql_baseline.MarketOrder(poor.pk, "BTC-USD", "buy", D(quantity), "x", shard=0)
            with pytest.raises(sql_baseline.Refused) as refused:
                sql_baseline.fill(conn, catalogue, order)
            assert refused.value.code == code
        orders = conn.execute("SELECT count(*) FROM orders_order").fetchone()[0]
    assert orders == 0

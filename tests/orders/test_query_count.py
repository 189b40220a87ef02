"""Placing an order costs a fixed number of queries: the 53rd order costs exactly what the 2nd did, so the cost
of a fill does not grow with the account's or the exchange's history (no scans of past orders, trades or journal
lines, no per-row loops)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from tests.factories import make_account

pytestmark = pytest.mark.django_db

# Authentication, the account and market, the house books, the locked balances, the journal entry and its
# postings, the order, its history and its trade, with the savepoints around them: well below this.
QUERY_BOUND = 25
HISTORY = 50


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "USD": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


def queries_to_place(client: Any, body: dict[str, Any]) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return len(captured)


@pytest.mark.parametrize(
    ("funds", "order"),
    [
        ({"USD": "10000"}, {"side": "buy", "quantity": "0.001"}),
        ({"BTC": "1"}, {"side": "sell", "quote_quantity": "50"}),
    ],
    ids=["buy_by_quantity", "sell_by_quote_quantity"],
)
def test_placing_an_order_costs_the_same_queries_after_50_orders(alice, alice_client, house, funds, order):
    account = make_account(owner=alice, label="bot", funds=funds)
    body = {"account_id": str(account.account_id), "symbol": "BTC-USD", "order_type": "market", **order}
    # The account's first order warms the per-process caches (assets, configuration, its ledger accounts).
    alice_client.post("/api/v1/orders", {**body, "client_order_id": "warm-up"}, format="json")

    first = queries_to_place(alice_client, {**body, "client_order_id": "first"})
    for n in range(HISTORY):
        assert (
            alice_client.post("/api/v1/orders", {**body, "client_order_id": f"n-{n}"}, format="json").status_code == 201
        )
    later = queries_to_place(alice_client, {**body, "client_order_id": "later"})

    print(f"{order['side']} order: {first} queries for the 2nd, {later} for the {HISTORY + 3}rd")
    assert later == first
    assert first <= QUERY_BOUND

"""Self-trade prevention through the API, in its three modes, by value: an order never trades with a resting order of
its own account.

BTC-USD at 65,000.00: the house asks 65,032.50; alice's resting sell at 65,010.00 is the best ask. Taker fee 10 bps,
maker fee 5 bps.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from ledger.models import JournalEntry
from orders.models import Order, Trade
from tests.factories import make_account
from tests.helpers import balances_of, lines_of, money_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices(alice, house):
    return make_account(owner=alice, label="alice", funds={"BTC": "1", "USD": "50000"})


def place(client, account, **fields) -> dict:
    body = {"account_id": str(account.account_id), "symbol": "BTC-USD", **fields}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def own_ask(alice_client, alices):
    return place(alice_client, alices, side="sell", order_type="limit", price="65010.00", quantity="0.1")


def test_a_market_order_meeting_its_own_resting_order_first_expires_and_moves_nothing(alice_client, alices, own_ask):
    before = money_snapshot()

    body = place(alice_client, alices, side="buy", order_type="market", quantity="0.01")

    assert (body["status"], body["end_reason"], body["filled_quantity"], body["fills"]) == (
        "expired",
        "self_trade_prevention",
        "0.00000000",
        [],
    )
    assert money_snapshot()[0] == before[0]
    assert Order.objects.get(order_id=own_ask["order_id"]).status == "open"


def test_expire_maker_expires_the_own_resting_order_releasing_it_and_fills_against_the_next(
    alice_client, alices, own_ask
):
    body = place(
        alice_client,
        alices,
        side="buy",
        order_type="market",
        quantity="0.01",
        self_trade_prevention="expire_maker",
    )

    # Filled by the house at 65,032.50: 650.325 -> 650.33, fee 0.650 33 -> 0.66.
    assert (body["status"], body["filled_quote"], body["fee"]) == ("filled", "650.33", "0.66")
    assert [(f["price"], f["liquidity"]) for f in body["fills"]] == [("65032.50", "taker")]
    resting = alice_client.get(f"/api/v1/orders/{own_ask['order_id']}").json()
    assert (resting["status"], resting["end_reason"], resting["reserved"]) == (
        "expired",
        "self_trade_prevention",
        "0.00000000",
    )
    release = JournalEntry.objects.get(kind="release", reference_id=own_ask["order_id"])
    assert lines_of(release) == [
        ("customer_available", "BTC", "alice", D("0.1")),
        ("customer_locked", "BTC", "alice", D("-0.1")),
    ]
    assert balances_of(alices)["BTC"] == (D("1.01"), D("0"))
    assert balances_of(alices)["USD"] == (D("49349.01"), D("0"))


def test_expire_both_takes_what_comes_before_the_own_order_then_expires_both(
    alice_client, bob_client, bob, alices, own_ask
):
    bobs = make_account(owner=bob, label="bob", funds={"BTC": "1"})
    bobs_ask = place(bob_client, bobs, side="sell", order_type="limit", price="65000.00", quantity="0.005")

    body = place(
        alice_client,
        alices,
        side="buy",
        order_type="limit",
        price="65100.00",
        quantity="0.01",
        self_trade_prevention="expire_both",
    )

    # bob's 0.005 at 65,000.00 first (325.00, taker fee 0.325 -> 0.33); then alice's own ask: both expire.
    assert (body["status"], body["end_reason"], body["filled_quantity"], body["reserved"]) == (
        "expired",
        "self_trade_prevention",
        "0.00500000",
        "0.00",
    )
    assert [(f["price"], f["quantity"], f["fee"]) for f in body["fills"]] == [("65000.00", "0.00500000", "0.33")]
    assert Order.objects.get(order_id=own_ask["order_id"]).status == "expired"
    assert Order.objects.get(order_id=bobs_ask["order_id"]).status == "filled"
    assert balances_of(alices)["BTC"] == (D("1.005"), D("0"))
    assert balances_of(alices)["USD"] == (D("49674.67"), D("0"))
    # bob received 325.00 less 5 bps (0.1625 -> 0.17).
    assert balances_of(bobs)["USD"] == (D("324.83"), D("0"))
    assert Trade.objects.filter(maker_order__order_id=own_ask["order_id"]).count() == 0

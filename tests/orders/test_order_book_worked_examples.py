"""The order book by worked examples: alice rests orders, bob takes them; every balance and journal line by value.

BTC-USD: reference price 65,000.00, so the house's best quotes are 64,967.50 / 65,032.50 (10 bps spread); taker fee
10 bps, maker fee 5 bps (the configured defaults). alice's orders sit inside the house's spread, so they are the best
prices of the book and bob's orders meet them first.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts import services as account_services
from ledger.models import JournalEntry
from orders.models import Order, Trade
from tests.factories import make_account
from tests.helpers import balances_of, lines_of, money_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


@pytest.fixture
def alice_seller(alice, house):
    return make_account(owner=alice, label="alice", funds={"BTC": "0.5", "USD": "10000"})


@pytest.fixture
def bob_buyer(bob, house):
    return make_account(owner=bob, label="bob", funds={"USD": "20000"})


def place(client, account, **fields):
    body = {"account_id": str(account.account_id), "symbol": "BTC-USD", **fields}
    return client.post("/api/v1/orders", body, format="json")


def test_alice_rests_a_sell_and_bobs_market_buy_takes_part_of_it(alice_client, bob_client, alice_seller, bob_buyer):
    rest = place(alice_client, alice_seller, side="sell", order_type="limit", price="65010.00", quantity="0.5")

    assert rest.status_code == 201, rest.content
    resting = rest.json()
    assert (resting["status"], resting["time_in_force"], resting["remaining_quantity"]) == ("open", "gtc", "0.50000000")
    assert (resting["reserved"], resting["reserved_asset"]) == ("0.50000000", "BTC")
    # The reservation is a journal entry from alice's available BTC to her locked BTC.
    reservation = JournalEntry.objects.get(kind="reservation", reference_id=resting["order_id"])
    assert lines_of(reservation) == [
        ("customer_available", "BTC", "alice", D("-0.5")),
        ("customer_locked", "BTC", "alice", D("0.5")),
    ]
    assert balances_of(alice_seller)["BTC"] == (D("0"), D("0.5"))

    take = place(bob_client, bob_buyer, side="buy", order_type="market", quantity="0.2")

    assert take.status_code == 201, take.content
    bought = take.json()
    # 0.2 BTC at alice's 65,010.00 = 13,002.00 USD; bob's taker fee 10 bps = 13.002 -> 13.01.
    assert (bought["status"], bought["filled_quantity"], bought["average_price"]) == (
        "filled",
        "0.20000000",
        "65010.00",
    )
    assert (bought["filled_quote"], bought["fee"]) == ("13002.00", "13.01")
    [fill] = bought["fills"]
    assert (fill["liquidity"], fill["price"], fill["quantity"], fill["quote_amount"], fill["fee"]) == (
        "taker",
        "65010.00",
        "0.20000000",
        "13002.00",
        "13.01",
    )
    # alice's order is partially filled: 0.3 BTC left, still locked; her maker fee 5 bps of 13,002.00 = 6.501 -> 6.51.
    alice_order = alice_client.get(f"/api/v1/orders/{resting['order_id']}").json()
    assert (alice_order["status"], alice_order["filled_quantity"], alice_order["remaining_quantity"]) == (
        "partially_filled",
        "0.20000000",
        "0.30000000",
    )
    assert (alice_order["fee"], alice_order["reserved"]) == ("6.51", "0.30000000")
    [maker_fill] = alice_order["fills"]
    assert (maker_fill["liquidity"], maker_fill["side"], maker_fill["fee"]) == ("maker", "sell", "6.51")

    # Balances: bob paid 13,002.00 + 13.01; alice received 13,002.00 - 6.51 = 12,995.49 and has 0.3 BTC locked.
    assert balances_of(bob_buyer)["USD"] == (D("6984.99"), D("0"))
    assert balances_of(bob_buyer)["BTC"] == (D("0.2"), D("0"))
    assert balances_of(alice_seller)["USD"] == (D("22995.49"), D("0"))
    assert balances_of(alice_seller)["BTC"] == (D("0"), D("0.3"))

    # One entry settles both sides and both fees.
    trade = Trade.objects.get(trade_id=fill["trade_id"])
    assert trade.taker_order.order_id.hex == bought["order_id"].replace("-", "")
    assert trade.maker_order.order_id.hex == resting["order_id"].replace("-", "")
    assert (trade.taker_fee, trade.maker_fee, trade.taker_quote, trade.maker_quote) == (
        D("13.01"),
        D("6.51"),
        D("13002.00"),
        D("13002.00"),
    )
    lines = lines_of(trade.journal_entry)
    shard = next(owner for kind, _, owner, _ in lines if kind == "fee_revenue")
    assert lines == [
        ("customer_available", "BTC", "bob", D("0.2")),
        ("customer_available", "USD", "alice", D("12995.49")),
        ("customer_available", "USD", "bob", D("-13015.01")),
        ("customer_locked", "BTC", "alice", D("-0.2")),
        ("fee_revenue", "USD", shard, D("19.52")),
    ]

    # Each sees the trade in its own view.
    [bobs] = bob_client.get("/api/v1/trades").json()["trades"]
    [alices] = alice_client.get("/api/v1/trades").json()["trades"]
    assert (bobs["side"], bobs["liquidity"], bobs["fee"], bobs["order_id"]) == (
        "buy",
        "taker",
        "13.01",
        bought["order_id"],
    )
    assert (alices["side"], alices["liquidity"], alices["fee"], alices["order_id"]) == (
        "sell",
        "maker",
        "6.51",
        resting["order_id"],
    )
    assert bobs["trade_id"] == alices["trade_id"]


def test_a_fill_or_kill_that_cannot_fill_moves_nothing(alice_client, bob_client, alice_seller, bob_buyer):
    place(alice_client, alice_seller, side="sell", order_type="limit", price="65010.00", quantity="0.1")
    before = money_snapshot()

    # 0.15 BTC at 65,020.00 or better: only alice's 0.1 is that cheap (the house asks 65,032.50).
    response = place(
        bob_client, bob_buyer, side="buy", order_type="limit", price="65020.00", quantity="0.15", time_in_force="fok"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["end_reason"], body["filled_quantity"], body["fills"]) == (
        "expired",
        "fok_not_filled",
        "0.00000000",
        [],
    )
    assert money_snapshot() == before


def test_an_ioc_remainder_expires(alice_client, bob_client, alice_seller, bob_buyer):
    place(alice_client, alice_seller, side="sell", order_type="limit", price="65010.00", quantity="0.1")

    response = place(
        bob_client, bob_buyer, side="buy", order_type="limit", price="65020.00", quantity="0.15", time_in_force="ioc"
    )

    body = response.json()
    assert (body["status"], body["end_reason"], body["filled_quantity"], body["remaining_quantity"]) == (
        "expired",
        "ioc_remainder",
        "0.10000000",
        "0.05000000",
    )
    # It paid for what it got (6,501.00 + 6.51 fee) and keeps nothing locked for the part that expired.
    assert body["reserved"] == "0.00"
    assert balances_of(bob_buyer)["USD"] == (D("13492.49"), D("0"))


def test_a_post_only_order_that_would_take_is_rejected(alice_client, bob_client, alice_seller, bob_buyer):
    place(alice_client, alice_seller, side="sell", order_type="limit", price="65010.00", quantity="0.5")
    before = money_snapshot()

    response = place(
        bob_client, bob_buyer, side="buy", order_type="limit", price="65010.00", quantity="0.1", post_only=True
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "post_only_would_take"
    assert error["details"]["order"]["status"] == "rejected"
    assert money_snapshot()[0] == before[0]  # no balance moved (the rejected order is recorded, nothing else)


def test_a_self_trade_is_prevented(alice_client, alice_seller):
    sell = place(alice_client, alice_seller, side="sell", order_type="limit", price="65010.00", quantity="0.1").json()

    # alice's own buy at her own ask: by default the incoming order expires instead of trading with herself.
    response = place(alice_client, alice_seller, side="buy", order_type="limit", price="65010.00", quantity="0.1")

    body = response.json()
    assert (body["status"], body["end_reason"], body["fills"], body["reserved"]) == (
        "expired",
        "self_trade_prevention",
        [],
        "0.00",
    )
    assert Trade.objects.count() == 0
    assert Order.objects.get(order_id=sell["order_id"]).status == "open"
    assert balances_of(alice_seller)["USD"] == (D("10000.00"), D("0"))


def test_a_cancel_releases_exactly_the_reservation(alice_client, alice_seller):
    # A resting buy locks price x quantity plus the largest fee it may pay as a maker:
    # 0.1 x 64,000.00 = 6,400.00, plus 5 bps = 3.20 -> 6,403.20 USD.
    rest = place(alice_client, alice_seller, side="buy", order_type="limit", price="64000.00", quantity="0.1").json()
    assert (rest["status"], rest["reserved"], rest["reserved_asset"]) == ("open", "6403.20", "USD")
    assert balances_of(alice_seller)["USD"] == (D("3596.80"), D("6403.20"))

    cancelled = alice_client.delete(f"/api/v1/orders/{rest['order_id']}")

    assert cancelled.status_code == 200, cancelled.content
    assert (cancelled.json()["status"], cancelled.json()["reserved"]) == ("cancelled", "0.00")
    assert balances_of(alice_seller)["USD"] == (D("10000.00"), D("0"))
    release = JournalEntry.objects.get(kind="release", reference_id=rest["order_id"])
    assert lines_of(release) == [
        ("customer_available", "USD", "alice", D("6403.20")),
        ("customer_locked", "USD", "alice", D("-6403.20")),
    ]
    # Once final, it cannot be cancelled again.
    assert alice_client.delete(f"/api/v1/orders/{rest['order_id']}").json()["error"]["code"] == "order_not_cancelable"

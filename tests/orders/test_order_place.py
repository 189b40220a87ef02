"""Placing market orders, checked by value: balances, order, trade and every journal line.

Prices: BTC-USD reference 65,000.00, spread 10 bps (ask 65,032.50, bid 64,967.50), taker fee 10 bps (the
configured defaults; markets leave spread and fee empty to use them).
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts import services as account_services
from ledger.models import JournalEntry
from ledger.reconciliation import reconcile
from orders.models import Order, OrderStatus, Trade
from tests.factories import make_account
from tests.helpers import balances_of, lines_of, money_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


def order(client, account, **fields):
    body = {"account_id": str(account.account_id), "order_type": "market", **fields}
    return client.post("/api/v1/orders", body, format="json")


def test_market_buy_of_0_1_btc_with_10000_usd(alice_client, alice_account, house):
    response = order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1")

    assert response.status_code == 201, response.content
    body = response.json()
    # 0.1 BTC at the ask 65,032.50 costs 6,503.25 USD; the 10 bps fee on that is 6.50325, rounded up to 6.51.
    assert body["status"] == "filled" and body["side"] == "buy" and body["order_type"] == "market"
    assert body["quantity"] == "0.10000000" and body["filled_quantity"] == "0.10000000"
    assert body["average_price"] == "65032.50"
    assert (body["fee"], body["fee_asset"]) == ("6.51", "USD")
    assert body["reject_reason"] is None and body["filled_at"] is not None
    [fill] = body["fills"]
    assert (fill["quantity"], fill["price"], fill["quote_amount"], fill["fee"]) == (
        "0.10000000",
        "65032.50",
        "6503.25",
        "6.51",
    )
    assert fill["reference_price"] == "65000.00"

    # 10,000.00 - 6,503.25 - 6.51 = 3,490.24 USD left; 0.1 BTC received.
    assert balances_of(alice_account)["USD"] == (D("3490.24"), D("0"))
    assert balances_of(alice_account)["BTC"] == (D("0.1"), D("0"))

    trade = Trade.objects.get(trade_id=fill["trade_id"])
    entry = trade.journal_entry
    assert entry.kind == "trade" and entry.metadata["taker_order_id"] == body["order_id"]
    house_lines = [line for line in lines_of(entry) if line[0] != "customer_available"]
    customer_lines = [line for line in lines_of(entry) if line[0] == "customer_available"]
    assert customer_lines == [
        ("customer_available", "BTC", "main", D("0.1")),
        ("customer_available", "USD", "main", D("-6509.76")),
    ]
    # The house gives 0.1 BTC and takes the 6,503.25 cost; the 6.51 fee goes to fee revenue (one shard each).
    shard = house_lines[0][2]
    assert house_lines == [
        ("fee_revenue", "USD", shard, D("6.51")),
        ("house_liquidity", "BTC", shard, D("-0.1")),
        ("house_liquidity", "USD", shard, D("6503.25")),
    ]
    assert reconcile().ok


def test_market_sell_pays_the_bid_less_the_fee(alice_client, alice, house):
    account = make_account(owner=alice, label="seller", funds={"BTC": "0.5"})
    response = order(alice_client, account, symbol="BTC-USD", side="sell", quantity="0.2")

    assert response.status_code == 201, response.content
    body = response.json()
    # 0.2 BTC at the bid 64,967.50 = 12,993.50 USD; fee 12.9935 rounded up to 13.00; 12,980.50 received.
    assert body["average_price"] == "64967.50" and body["fee"] == "13.00"
    assert body["fills"][0]["quote_amount"] == "12993.50"
    assert balances_of(account)["BTC"] == (D("0.3"), D("0"))
    assert balances_of(account)["USD"] == (D("12980.50"), D("0"))
    entry = JournalEntry.objects.get(kind="trade")
    lines = lines_of(entry)
    shard = next(line[2] for line in lines if line[0] == "house_liquidity")
    assert lines == [
        ("customer_available", "BTC", "seller", D("-0.2")),
        ("customer_available", "USD", "seller", D("12980.50")),
        ("fee_revenue", "USD", shard, D("13.00")),
        ("house_liquidity", "BTC", shard, D("0.2")),
        ("house_liquidity", "USD", shard, D("-12993.50")),
    ]
    assert reconcile().ok


def test_buy_by_quote_quantity_spends_at_most_that_including_fee(alice_client, alice_account, house):
    response = order(alice_client, alice_account, symbol="BTC-USD", side="buy", quote_quantity="1000")
    assert response.status_code == 201, response.content
    body = response.json()
    # 1000 / (65,032.50 x 1.001) = 0.015361... -> 0.01536 on the 0.00001 step: cost 998.90, fee 1.00.
    assert body["filled_quantity"] == "0.01536000"
    assert body["fills"][0]["quote_amount"] == "998.90" and body["fee"] == "1.00"
    assert body["quote_quantity"] == "1000.00"
    assert balances_of(alice_account)["USD"] == (D("9000.10"), D("0"))


def test_cross_pair_eth_btc_settles_in_btc(alice_client, alice, house):
    account = make_account(owner=alice, label="cross", funds={"ETH": "2"})
    response = order(alice_client, account, symbol="ETH/BTC", side="sell", quantity="1")
    assert response.status_code == 201, response.content
    body = response.json()
    # The house's bid = 0.05384615 - 0.5 x 10 bps = 0.0538192269..., rounded down to the tick 0.00001: 0.05381 BTC;
    # fee 10 bps of 0.05381000 = 0.00005381.
    assert body["symbol"] == "ETH-BTC" and body["average_price"] == "0.05381000"
    assert body["fee"] == "0.00005381" and body["fee_asset"] == "BTC"
    assert balances_of(account)["BTC"] == (D("0.05375619"), D("0"))
    assert reconcile().ok


def test_idempotent_retry_returns_the_original_order_without_a_second_fill(alice_client, alice_account, house):
    first = order(
        alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.01", client_order_id="bot-1-0001"
    )
    again = order(
        alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.01", client_order_id="bot-1-0001"
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Trade.objects.count() == 1
    assert balances_of(alice_account)["BTC"] == (D("0.01"), D("0"))


def test_same_client_order_id_with_other_parameters_is_409(alice_client, alice_account, house):
    order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.01", client_order_id="x-1")
    before = money_snapshot()
    for change in ({"quantity": "0.02"}, {"side": "sell"}, {"symbol": "ETH-USD"}):
        fields = {"symbol": "BTC-USD", "side": "buy", "quantity": "0.01", "client_order_id": "x-1", **change}
        response = order(alice_client, alice_account, **fields)
        assert response.status_code == 409, change
        assert response.json()["error"]["code"] == "client_order_id_conflict"
    assert money_snapshot() == before


def test_client_order_id_is_unique_per_account_not_globally(alice_client, alice, house):
    one = make_account(owner=alice, label="one", funds={"USD": "1000"})
    two = make_account(owner=alice, label="two", funds={"USD": "1000"})
    a = order(alice_client, one, symbol="BTC-USD", side="buy", quantity="0.001", client_order_id="same")
    b = order(alice_client, two, symbol="BTC-USD", side="buy", quantity="0.001", client_order_id="same")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["order_id"] != b.json()["order_id"]


@pytest.mark.parametrize(
    ("setup", "fields", "reason"),
    [
        ("none", {"symbol": "BTC-USD", "side": "buy", "quantity": "1"}, "insufficient_balance"),
        ("none", {"symbol": "BTC-USD", "side": "sell", "quantity": "0.1"}, "insufficient_balance"),
        ("suspend", {"symbol": "BTC-USD", "side": "buy", "quantity": "0.01"}, "account_suspended"),
        ("halt", {"symbol": "BTC-USD", "side": "buy", "quantity": "0.01"}, "market_halted"),
        ("none", {"symbol": "BTC-USD", "side": "buy", "quantity": "0.000015"}, "invalid_quantity_step"),
        ("none", {"symbol": "ETH-BTC", "side": "buy", "quantity": "0.001"}, "below_min_notional"),
        ("none", {"symbol": "BTC-USD", "side": "buy", "quote_quantity": "0.50"}, "below_min_quantity"),
        ("none", {"symbol": "BTC-USD", "side": "buy", "quantity": "100"}, "above_max_notional"),
        ("no_house", {"symbol": "BTC-USD", "side": "buy", "quantity": "0.01"}, "insufficient_liquidity"),
    ],
)
def test_each_rejection_is_recorded_answered_422_and_moves_no_money(
    alice_client, alice_account, operator_user, setup, fields, reason
):
    from markets.models import Market
    from markets.services import market_set_status

    if setup != "no_house":
        for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
            account_services.house_fund(asset=asset, amount=amount, actor=operator_user)
    if setup == "suspend":
        account_services.account_suspend(account=alice_account, actor=operator_user)
    if setup == "halt":
        market_set_status(market=Market.objects.get(symbol="BTC-USD"), status="halted", actor=operator_user)
    before = money_snapshot()

    response = order(alice_client, alice_account, **fields)

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == reason
    stored = Order.objects.get(order_id=error["details"]["order_id"])
    assert stored.status == OrderStatus.REJECTED and stored.reject_reason == reason
    assert error["details"]["order"]["status"] == "rejected"
    assert error["details"]["order"]["reject_reason"] == reason
    assert not stored.fills.exists()
    assert money_snapshot() == before
    assert reconcile().ok


def test_rejected_order_retry_returns_the_same_rejection(alice_client, alice_account, house):
    first = order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="1", client_order_id="r-1")
    again = order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="1", client_order_id="r-1")
    assert first.status_code == again.status_code == 422
    assert first.json()["error"]["details"]["order_id"] == again.json()["error"]["details"]["order_id"]
    assert Order.objects.count() == 1


def test_large_buy_draws_on_several_house_shards(alice_client, alice, operator_user):
    # 8 shards of 0.5 BTC each: no single shard can give 1.2 BTC, together they can. The buy walks three levels of
    # the house's ladder (0.5 + 0.5 + 0.2 BTC), each a trade.
    account_services.house_fund(asset="BTC", amount="4", actor=operator_user)
    account_services.house_fund(asset="USD", amount="100", actor=operator_user)
    account = make_account(owner=alice, label="whale", funds={"USD": "100000"})
    response = order(alice_client, account, symbol="BTC-USD", side="buy", quantity="1.2")
    assert response.status_code == 201, response.content
    assert [f["quantity"] for f in response.json()["fills"]] == ["0.50000000", "0.50000000", "0.20000000"]
    btc_out = [
        line
        for entry in JournalEntry.objects.filter(kind="trade")
        for line in lines_of(entry)
        if line[0] == "house_liquidity" and line[1] == "BTC"
    ]
    assert len({line[2] for line in btc_out}) >= 3 and sum(line[3] for line in btc_out) == D("-1.2")
    assert reconcile().ok


def test_delete_of_a_filled_market_order_is_409(alice_client, alice_account, house):
    placed = order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.01").json()
    response = alice_client.delete(f"/api/v1/orders/{placed['order_id']}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_not_cancelable"
    assert Order.objects.get(order_id=placed["order_id"]).status == OrderStatus.FILLED

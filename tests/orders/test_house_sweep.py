"""The house's quotes move with the reference price; resting orders they now cross are filled against the house at
their own price, as makers, in the same transaction as the move; every balance and journal line by value.

BTC-USD starts at 65,000.00 with a 10 bps spread, ladder levels 5 bps apart and 0.5 BTC each; the maker fee is
5 bps. At 64,800.00 the house asks 64,832.40, 64,864.80, 64,897.20, 64,929.60 ...; at 65,200.00 it bids
65,167.40, 65,134.80 ...
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from ledger.models import JournalEntry
from ledger.reconciliation import reconcile
from markets.models import Market
from orders.models import Order, Trade
from tests.factories import make_account
from tests.helpers import balances_of, lines_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices(alice, house):
    return make_account(owner=alice, label="alice", funds={"BTC": "0.5", "USD": "10000"})


def place(client, account, **fields) -> dict:
    body = {"account_id": str(account.account_id), "symbol": "BTC-USD", "order_type": "limit", **fields}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def set_price(operator_client, price: str) -> None:
    response = operator_client.post("/api/v1/markets/BTC-USD/price", {"price": price}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["price"] == price


def house_lines(lines):
    """The shard a settlement used, as one name, so lines compare by value whichever shard it was."""
    shards = {owner for kind, _, owner, _ in lines if kind in ("house_liquidity", "fee_revenue")}
    assert len(shards) == 1, lines
    return [(kind, asset, "house" if owner in shards else owner, amount) for kind, asset, owner, amount in lines]


def test_a_resting_buy_the_lower_house_ask_crosses_is_filled_at_its_own_price(alice_client, operator_client, alices):
    # 0.1 x 64,900.00 = 6,490.00, plus 5 bps = 3.245 -> 3.25: 6,493.25 locked.
    rest = place(alice_client, alices, side="buy", price="64900.00", quantity="0.1")
    assert (rest["status"], rest["reserved"]) == ("open", "6493.25")

    set_price(operator_client, "64800.00")

    order = alice_client.get(f"/api/v1/orders/{rest['order_id']}").json()
    assert (order["status"], order["filled_quantity"], order["remaining_quantity"], order["reserved"]) == (
        "filled",
        "0.10000000",
        "0.00000000",
        "0.00",
    )
    [fill] = order["fills"]
    assert (fill["liquidity"], fill["side"], fill["price"], fill["quote_amount"], fill["fee"]) == (
        "maker",
        "buy",
        "64900.00",
        "6490.00",
        "3.25",
    )
    assert fill["reference_price"] == "64800.00"
    assert balances_of(alices)["USD"] == (D("3506.75"), D("0"))
    assert balances_of(alices)["BTC"] == (D("0.6"), D("0"))
    trade = Trade.objects.get(trade_id=fill["trade_id"])
    assert (trade.taker_order, trade.taker_account, trade.taker_side, trade.taker_fee, trade.maker_fee) == (
        None,
        None,
        "sell",
        D("0"),
        D("3.25"),
    )
    # One entry: alice's reservation pays 6,490.00 to the house and 3.25 to fee revenue; the house gives 0.1 BTC.
    assert house_lines(lines_of(trade.journal_entry)) == [
        ("customer_available", "BTC", "alice", D("0.1")),
        ("customer_locked", "USD", "alice", D("-6493.25")),
        ("fee_revenue", "USD", "house", D("3.25")),
        ("house_liquidity", "BTC", "house", D("-0.1")),
        ("house_liquidity", "USD", "house", D("6490.00")),
    ]


def test_a_resting_sell_the_higher_house_bid_crosses_is_filled_when_the_price_rises(
    alice_client, operator_client, alices
):
    rest = place(alice_client, alices, side="sell", price="65100.00", quantity="0.2")
    assert balances_of(alices)["BTC"] == (D("0.3"), D("0.2"))

    set_price(operator_client, "65200.00")

    order = Order.objects.get(order_id=rest["order_id"])
    assert (order.status, order.filled_quantity, order.filled_quote, order.fee, order.locked) == (
        "filled",
        D("0.2"),
        D("13020.00"),
        D("6.51"),
        D("0"),
    )
    # 0.2 x 65,100.00 = 13,020.00, less 5 bps (6.51): 13,013.49.
    assert balances_of(alices)["USD"] == (D("23013.49"), D("0"))
    assert balances_of(alices)["BTC"] == (D("0.3"), D("0"))
    trade = Trade.objects.get(maker_order=order)
    assert (trade.price, trade.taker_side, trade.reference_price) == (D("65100.00"), "buy", D("65200.00"))
    assert house_lines(lines_of(trade.journal_entry)) == [
        ("customer_available", "USD", "alice", D("13013.49")),
        ("customer_locked", "BTC", "alice", D("-0.2")),
        ("fee_revenue", "USD", "house", D("6.51")),
        ("house_liquidity", "BTC", "house", D("0.2")),
        ("house_liquidity", "USD", "house", D("-13020.00")),
    ]


def test_orders_the_new_quotes_do_not_cross_keep_resting_untouched(alice_client, operator_client, alices):
    buy = place(alice_client, alices, side="buy", price="64900.00", quantity="0.1")
    sell = place(alice_client, alices, side="sell", price="65300.00", quantity="0.1")

    set_price(operator_client, "64868.00")  # the house's best ask is 64,900.44: above alice's bid

    assert {o.status for o in Order.objects.filter(order_id__in=[buy["order_id"], sell["order_id"]])} == {"open"}
    assert Trade.objects.count() == 0
    assert balances_of(alices)["USD"] == (D("3506.75"), D("6493.25"))


def test_nothing_is_swept_while_the_market_is_halted_and_the_sweep_happens_on_resume(
    alice_client, operator_client, alices
):
    rest = place(alice_client, alices, side="buy", price="64900.00", quantity="0.1")
    assert operator_client.post("/api/v1/markets/BTC-USD/halt", {}, format="json").status_code == 200

    set_price(operator_client, "64800.00")

    assert Order.objects.get(order_id=rest["order_id"]).status == "open"
    assert Trade.objects.count() == 0
    assert balances_of(alices)["USD"] == (D("3506.75"), D("6493.25"))

    assert operator_client.post("/api/v1/markets/BTC-USD/resume", {}, format="json").status_code == 200

    order = Order.objects.get(order_id=rest["order_id"])
    assert (order.status, order.filled_quantity, order.fee) == ("filled", D("0.1"), D("3.25"))
    [trade] = Trade.objects.all()
    assert (trade.price, trade.reference_price, trade.maker_order_id, trade.taker_order_id) == (
        D("64900.00"),
        D("64800.00"),
        order.pk,
        None,
    )
    assert balances_of(alices)["USD"] == (D("3506.75"), D("0"))
    assert reconcile().ok


def test_a_resting_order_larger_than_the_crossing_quotes_is_filled_whole_as_the_house_requotes(
    alice, alice_client, operator_client, house
):
    rich = make_account(owner=alice, label="rich", funds={"USD": "200000"})
    # 2 x 64,900.00 = 129,800.00 plus 5 bps (64.90): 129,864.90 locked.
    rest = place(alice_client, rich, side="buy", price="64900.00", quantity="2")
    assert rest["reserved"] == "129864.90"

    # At 64,800.00 three house levels (1.5 BTC) are at or below 64,900.00; the house re-quotes at once, so it
    # goes on filling alice's bid, which would otherwise sit above its best ask.
    set_price(operator_client, "64800.00")

    order = Order.objects.get(order_id=rest["order_id"])
    assert (order.status, order.filled_quantity, order.filled_quote, order.fee, order.locked) == (
        "filled",
        D("2"),
        D("129800.00"),
        D("64.90"),
        D("0"),
    )
    trades = list(Trade.objects.filter(maker_order=order).order_by("id"))
    assert {t.price for t in trades} == {D("64900.00")}
    assert sum(t.quantity for t in trades) == D("2")
    assert balances_of(rich)["USD"] == (D("70135.10"), D("0"))
    assert balances_of(rich)["BTC"] == (D("2"), D("0"))
    report = reconcile()
    assert report.ok, report.discrepancies


def test_a_limit_order_that_walks_past_the_whole_ladder_does_not_rest_across_the_requoted_quotes(
    alice, alice_client, house
):
    rich = make_account(owner=alice, label="rich", funds={"USD": "500000"})

    # 6 BTC at up to 65,400.00: the ten asks of the ladder (65,032.50 ... 65,325.00) hold 5 BTC. The house
    # re-quotes them at once, below alice's limit: it fills her last BTC at her price as soon as it rests.
    placed = place(alice_client, rich, side="buy", price="65400.00", quantity="6")

    assert (placed["status"], placed["filled_quantity"], placed["remaining_quantity"], placed["reserved"]) == (
        "filled",
        "6.00000000",
        "0.00000000",
        "0.00",
    )
    takers = [f for f in placed["fills"] if f["liquidity"] == "taker"]
    makers = [f for f in placed["fills"] if f["liquidity"] == "maker"]
    assert [f["price"] for f in takers] == [f"{D('65000') * (1 + D(5 + 5 * i) / 10000):.2f}" for i in range(10)]
    assert {f["quantity"] for f in takers} == {"0.50000000"}
    assert {f["price"] for f in makers} == {"65400.00"}
    assert sum(D(f["quantity"]) for f in makers) == D("1")
    # As a taker 10 bps on each level; as a maker 5 bps of 65,400.00 = 32.70 over the last BTC.
    taker_cost = sum(D(f["quote_amount"]) + D(f["fee"]) for f in takers)
    assert sum(D(f["fee"]) for f in makers) == D("32.70")
    assert balances_of(rich)["USD"] == (D("500000") - taker_cost - D("65400.00") - D("32.70"), D("0"))
    assert balances_of(rich)["BTC"] == (D("6"), D("0"))
    # What the API answered is what is stored.
    assert alice_client.get(f"/api/v1/orders/{placed['order_id']}").json() == placed
    report = reconcile()
    assert report.ok, report.discrepancies


def test_if_the_crossed_orders_cannot_be_settled_the_price_does_not_move_either(alice_client, alices, monkeypatch):
    from orders import services

    rest = place(alice_client, alices, side="buy", price="64900.00", quantity="0.1")
    entries, versions = JournalEntry.objects.count(), Market.objects.get(symbol="BTC-USD").history.count()
    store = services.book_store

    class BrokenStore:
        """The order path's store (whichever the database uses), failing to write the settlement."""

        def __getattr__(self, name):
            return getattr(store(), name)

        def settle(self, settlement):
            raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "book_store", BrokenStore)
    with pytest.raises(RuntimeError):
        services.market_price_set(market=Market.objects.get(symbol="BTC-USD"), price="64800.00", actor=None)
    monkeypatch.undo()

    market = Market.objects.get(symbol="BTC-USD")
    assert (market.reference_price, market.history.count()) == (D("65000.00"), versions)
    assert Order.objects.get(order_id=rest["order_id"]).status == "open"
    assert JournalEntry.objects.count() == entries
    assert balances_of(alices)["USD"] == (D("3506.75"), D("6493.25"))

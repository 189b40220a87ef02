"""Reading orders and trades back: the dashboard's list shapes, filters and cursor pagination, one order with its
fills, who may see what, how trades show up in an account's transactions, and why a market order cannot be
cancelled.

The book used throughout (alice's ``main`` account holds 10,000 USD, her ``stack`` account 1 BTC; BTC-USD at
65,000.00 and ETH-USD at 3,500.00 with 10 bps spread and fee), each order placed an hour after the one before:

=========  =======  =======  ====  =========  ========  ============================================
name       account  symbol   side  size       status    why
=========  =======  =======  ====  =========  ========  ============================================
btc_buy    main     BTC-USD  buy   0.01       filled    650.33 at the ask 65,032.50, fee 0.66
eth_buy    main     ETH-USD  buy   0.1        filled    350.18 at the ask 3,501.75, fee 0.36
too_big    main     BTC-USD  buy   1          rejected  65,032.50 is more than the 8,998.47 USD left
btc_sell   stack    BTC-USD  sell  0.02       filled    1,299.35 at the bid 64,967.50, fee 1.30
=========  =======  =======  ====  =========  ========  ============================================
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from accounts import services as account_services
from markets.models import Market
from orders import services
from orders.models import Fill, Order, OrderStatus, Trade
from tests.factories import make_account

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, tzinfo=UTC)
ORDER_FIELDS = {
    "order_id",
    "symbol",
    "side",
    "order_type",
    "quantity",
    "price",
    "status",
    "filled_quantity",
    "average_price",
    "created_at",
    "updated_at",
    "client_order_id",
    "quote_quantity",
    "fee",
    "fee_asset",
    "reject_reason",
    "filled_at",
    "fills",
}


@dataclass
class Book:
    main: Any
    stack: Any
    ids: dict[str, str]  # name -> order_id

    def names(self, orders: list[dict[str, Any]]) -> list[str]:
        by_id = {order_id: name for name, order_id in self.ids.items()}
        return [by_id[o["order_id"]] for o in orders]

    def trade_names(self, trades: list[dict[str, Any]]) -> list[str]:
        by_id = {order_id: name for name, order_id in self.ids.items()}
        return [by_id[t["order_id"]] for t in trades]


def place(client, account, **fields) -> dict[str, Any]:
    """The stored order as the API answered it (a rejection answers 422 with the order in its details)."""
    response = client.post(
        "/api/v1/orders", {"account_id": str(account.account_id), "order_type": "market", **fields}, format="json"
    )
    assert response.status_code in (201, 422), response.content
    return response.json() if response.status_code == 201 else response.json()["error"]["details"]["order"]


@pytest.fixture
def book(alice, alice_client, alice_account, operator_user) -> Book:
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)
    stack = make_account(owner=alice, label="stack", funds={"BTC": "1"})
    placed = {
        "btc_buy": place(
            alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.01", client_order_id="dash-1"
        ),
        "eth_buy": place(alice_client, alice_account, symbol="ETH-USD", side="buy", quantity="0.1"),
        "too_big": place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="1"),
        "btc_sell": place(alice_client, stack, symbol="BTC-USD", side="sell", quantity="0.02"),
    }
    # Spread the orders an hour apart so that since/until select them by value.
    for hour, order in enumerate(placed.values()):
        at = START + timedelta(hours=hour)
        Order.objects.filter(order_id=order["order_id"]).update(created_at=at)
        Fill.objects.filter(order__order_id=order["order_id"]).update(created_at=at)
        Trade.objects.filter(taker_order__order_id=order["order_id"]).update(created_at=at)
    return Book(main=alice_account, stack=stack, ids={name: o["order_id"] for name, o in placed.items()})


# --- The order list ----------------------------------------------------------------------------------------
def test_order_list_is_wrapped_and_newest_first(alice_reader, book):
    response = alice_reader.get("/api/v1/orders")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"orders", "next", "previous"}
    assert book.names(body["orders"]) == ["btc_sell", "too_big", "eth_buy", "btc_buy"]
    assert body["next"] is None and body["previous"] is None


def test_order_list_pages_with_a_cursor(alice_reader, book):
    pages = []
    url, params = "/api/v1/orders", {"limit": 3}
    while url:
        body = alice_reader.get(url, params).json()
        pages.append(book.names(body["orders"]))
        url, params = body["next"], None

    assert pages == [["btc_sell", "too_big", "eth_buy"], ["btc_buy"]]


def test_a_page_followed_by_an_order_placed_meanwhile_neither_repeats_nor_skips(alice_client, alice_reader, book):
    first = alice_reader.get("/api/v1/orders", {"limit": 2}).json()
    place(alice_client, book.main, symbol="ETH-USD", side="buy", quantity="0.01")

    second = alice_reader.get(first["next"]).json()

    assert book.names(first["orders"]) == ["btc_sell", "too_big"]
    assert book.names(second["orders"]) == ["eth_buy", "btc_buy"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"account_id": "{stack}"}, ["btc_sell"]),
        ({"account_id": "{main}"}, ["too_big", "eth_buy", "btc_buy"]),
        ({"symbol": "BTC-USD"}, ["btc_sell", "too_big", "btc_buy"]),
        ({"symbol": "BTC/USD"}, ["btc_sell", "too_big", "btc_buy"]),
        ({"symbol": "eth_usd"}, ["eth_buy"]),
        ({"symbol": "ETH-BTC"}, []),
        ({"side": "sell"}, ["btc_sell"]),
        ({"side": "buy"}, ["too_big", "eth_buy", "btc_buy"]),
        ({"status": "filled"}, ["btc_sell", "eth_buy", "btc_buy"]),
        ({"status": "rejected"}, ["too_big"]),
        ({"status": "cancelled"}, []),
        # since is inclusive, until exclusive: [01:00, 03:00) holds the second and third orders.
        ({"since": "2026-01-01T01:00:00Z"}, ["btc_sell", "too_big", "eth_buy"]),
        ({"until": "2026-01-01T01:00:00Z"}, ["btc_buy"]),
        ({"since": "2026-01-01T01:00:00Z", "until": "2026-01-01T03:00:00Z"}, ["too_big", "eth_buy"]),
        ({"since": "2026-01-01T02:30:00+01:00"}, ["btc_sell", "too_big"]),
        ({"account_id": "{main}", "symbol": "BTC/USD", "side": "buy", "status": "filled"}, ["btc_buy"]),
    ],
)
def test_order_list_filters(alice_reader, book, filters, expected):
    params = {k: v.format(main=book.main.account_id, stack=book.stack.account_id) for k, v in filters.items()}

    response = alice_reader.get("/api/v1/orders", params)

    assert response.status_code == 200, response.content
    assert book.names(response.json()["orders"]) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"side": "hold"},
        {"side": "BUY"},
        {"status": "done"},
        {"status": "FILLED"},
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"account_id": "not-a-uuid"},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
    ],
)
def test_bad_order_filter_is_400_validation_error(alice_reader, book, params):
    response = alice_reader.get("/api/v1/orders", params)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]["fields"]) == set(params)


def test_malformed_symbol_filter_is_400_unknown_symbol(alice_reader, book):
    response = alice_reader.get("/api/v1/orders", {"symbol": "BTC-USD-X"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_symbol"


# --- One order -----------------------------------------------------------------------------------------------
def test_a_filled_order_shows_every_field_by_value(alice_reader, book):
    [order] = [o for o in alice_reader.get("/api/v1/orders").json()["orders"] if o["order_id"] == book.ids["btc_buy"]]

    assert ORDER_FIELDS <= set(order)
    # 0.01 BTC at the ask 65,032.50 costs 650.325, rounded up to 650.33; the fee 0.65033 rounds up to 0.66.
    assert {k: order[k] for k in ORDER_FIELDS - {"order_id", "created_at", "updated_at", "filled_at", "fills"}} == {
        "symbol": "BTC-USD",
        "side": "buy",
        "order_type": "market",
        "status": "filled",
        "client_order_id": "dash-1",
        "quantity": "0.01000000",
        "quote_quantity": None,
        "price": None,
        "filled_quantity": "0.01000000",
        "average_price": "65032.50",
        "fee": "0.66",
        "fee_asset": "USD",
        "reject_reason": None,
    }
    assert order["account_id"] == str(book.main.account_id)
    assert order["created_at"] == "2026-01-01T00:00:00Z"
    assert order["filled_at"] is not None and order["updated_at"] is not None
    [fill] = order["fills"]
    assert (fill["quantity"], fill["price"], fill["quote_amount"], fill["fee"], fill["reference_price"]) == (
        "0.01000000",
        "65032.50",
        "650.33",
        "0.66",
        "65000.00",
    )


def test_a_rejected_order_shows_its_reason_and_no_fill(alice_reader, book):
    order = alice_reader.get(f"/api/v1/orders/{book.ids['too_big']}").json()

    assert (order["status"], order["reject_reason"]) == ("rejected", "insufficient_balance")
    assert order["filled_quantity"] == "0.00000000" and order["average_price"] is None
    assert order["fee"] == "0.00" and order["fee_asset"] is None
    assert order["filled_at"] is None and order["fills"] == []


def test_order_detail_carries_its_fills(alice_reader, book):
    response = alice_reader.get(f"/api/v1/orders/{book.ids['btc_sell']}")

    assert response.status_code == 200
    order = response.json()
    assert (order["side"], order["status"], order["average_price"]) == ("sell", "filled", "64967.50")
    [fill] = order["fills"]
    trade = Trade.objects.get(taker_order__order_id=book.ids["btc_sell"])
    assert fill["trade_id"] == str(trade.trade_id)
    assert fill["journal_entry_id"] == str(trade.journal_entry.entry_id)
    # 0.02 BTC at the bid 64,967.50 is 1,299.35; the fee 1.29935 rounds up to 1.30.
    assert (fill["quantity"], fill["price"], fill["quote_amount"], fill["fee"], fill["fee_asset"]) == (
        "0.02000000",
        "64967.50",
        "1299.35",
        "1.30",
        "USD",
    )


def test_the_order_that_placement_returns_can_query_its_fills_like_any_other(alice_account, book):
    placed, created = services.order_place(
        request=services.OrderRequest(
            account=alice_account,
            market=Market.objects.get(symbol="ETH-USD"),
            side="buy",
            order_type="market",
            quantity=D("0.01"),
            quote_quantity=None,
        ),
        actor=alice_account.owner,
    )

    order = placed.order
    assert created and order.status == OrderStatus.FILLED
    assert order.fills.get() == Fill.objects.get(order=order)
    assert order.fills.exists() and order.fills.count() == 1
    assert list(order.fills.filter(side="buy")) == [Fill.objects.get(order=order)]
    assert placed.fills == [Fill.objects.get(order=order)]


def test_another_customer_cannot_tell_an_order_exists(bob_client, book):
    for order_id in (book.ids["btc_buy"], str(uuid.uuid4()), "not-a-uuid"):
        response = bob_client.get(f"/api/v1/orders/{order_id}")
        assert response.status_code == 404, order_id
        assert response.json()["error"]["code"] == "not_found"
    assert bob_client.get("/api/v1/orders").json()["orders"] == []
    assert bob_client.get("/api/v1/trades").json()["trades"] == []


def test_operator_sees_every_order(operator_client, bob, bob_client, book):
    bobs = make_account(owner=bob, label="bob", funds={"USD": "100"})
    place(bob_client, bobs, symbol="BTC-USD", side="buy", quantity="0.001")

    assert operator_client.get(f"/api/v1/orders/{book.ids['btc_buy']}").status_code == 200
    assert len(operator_client.get("/api/v1/orders").json()["orders"]) == 5
    only_bob = operator_client.get("/api/v1/orders", {"account_id": str(bobs.account_id)}).json()["orders"]
    assert [o["account_id"] for o in only_bob] == [str(bobs.account_id)]


def test_reading_orders_needs_an_api_key(anonymous_client, book):
    assert anonymous_client.get("/api/v1/orders").status_code == 401
    assert anonymous_client.get(f"/api/v1/orders/{book.ids['btc_buy']}").status_code == 401
    assert anonymous_client.get("/api/v1/trades").status_code == 401


# --- Trades --------------------------------------------------------------------------------------------------
def test_trade_list_is_wrapped_and_newest_first(alice_reader, book):
    response = alice_reader.get("/api/v1/trades")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"trades", "next", "previous"}
    # The rejected order has no trade.
    assert book.trade_names(body["trades"]) == ["btc_sell", "eth_buy", "btc_buy"]
    eth = body["trades"][1]
    # 0.1 ETH at the ask 3,501.75 is 350.175, rounded up to 350.18; the fee 0.35018 rounds up to 0.36.
    assert (eth["symbol"], eth["side"], eth["quantity"], eth["price"], eth["quote_amount"], eth["fee"]) == (
        "ETH-USD",
        "buy",
        "0.10000000",
        "3501.75",
        "350.18",
        "0.36",
    )
    assert eth["account_id"] == str(book.main.account_id) and eth["liquidity"] == "taker"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"account_id": "{stack}"}, ["btc_sell"]),
        ({"symbol": "BTC/USD"}, ["btc_sell", "btc_buy"]),
        ({"symbol": "ETH-USD"}, ["eth_buy"]),
        ({"side": "sell"}, ["btc_sell"]),
        ({"since": "2026-01-01T01:00:00Z"}, ["btc_sell", "eth_buy"]),
        ({"until": "2026-01-01T01:00:00Z"}, ["btc_buy"]),
        ({"order_id": "{eth_buy}"}, ["eth_buy"]),
        ({"order_id": "{too_big}"}, []),
    ],
)
def test_trade_list_filters(alice_reader, book, filters, expected):
    values = {"stack": book.stack.account_id, **book.ids}
    params = {k: v.format(**values) for k, v in filters.items()}

    response = alice_reader.get("/api/v1/trades", params)

    assert response.status_code == 200, response.content
    assert book.trade_names(response.json()["trades"]) == expected


@pytest.mark.parametrize("params", [{"order_id": "x"}, {"side": "short"}, {"since": "soon"}, {"limit": "-1"}])
def test_bad_trade_filter_is_400_validation_error(alice_reader, book, params):
    response = alice_reader.get("/api/v1/trades", params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_trade_list_pages_with_a_cursor(alice_reader, book):
    first = alice_reader.get("/api/v1/trades", {"limit": 2}).json()
    second = alice_reader.get(first["next"]).json()

    assert book.trade_names(first["trades"]) == ["btc_sell", "eth_buy"]
    assert book.trade_names(second["trades"]) == ["btc_buy"] and second["next"] is None


def test_each_trade_is_in_the_account_transactions_with_its_order_and_trade_ids(alice_reader, book):
    for account in (book.main, book.stack):
        trades = alice_reader.get("/api/v1/trades", {"account_id": str(account.account_id)}).json()["trades"]
        lines = alice_reader.get(f"/api/v1/accounts/{account.account_id}/transactions").json()["transactions"]
        trade_lines = [line for line in lines if line["kind"] == "trade"]

        # Every trade moves the customer's base and quote asset: two lines, both naming the order and the trade.
        assert sorted((line["trade_id"], line["order_id"]) for line in trade_lines) == sorted(
            (t["trade_id"], t["order_id"]) for t in trades for _ in range(2)
        )
        for trade in trades:
            own = {line["asset"]: line["amount"] for line in trade_lines if line["trade_id"] == trade["trade_id"]}
            assert {line["entry_id"] for line in trade_lines if line["trade_id"] == trade["trade_id"]} == {
                trade["journal_entry_id"]
            }
            if trade["order_id"] == book.ids["btc_buy"]:
                assert own == {"BTC": "0.01000000", "USD": "-650.99"}  # 650.33 + 0.66 fee
            if trade["order_id"] == book.ids["btc_sell"]:
                assert own == {"BTC": "-0.02000000", "USD": "1298.05"}  # 1,299.35 - 1.30 fee


# --- Cancelling --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "status"), [("btc_buy", "filled"), ("too_big", "rejected")])
def test_a_final_market_order_cannot_be_cancelled(alice_client, book, name, status):
    order = Order.objects.get(order_id=book.ids[name])
    versions = order.history.count()

    response = alice_client.delete(f"/api/v1/orders/{book.ids[name]}")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "order_not_cancelable"
    assert error["details"] == {"order_id": book.ids[name], "status": status}
    order.refresh_from_db()
    assert order.status == status and order.history.count() == versions


def test_cancelling_needs_the_trade_scope_and_ones_own_order(alice_reader, bob_client, operator_client, book):
    order_id = book.ids["btc_buy"]

    assert alice_reader.delete(f"/api/v1/orders/{order_id}").status_code == 403
    assert operator_client.delete(f"/api/v1/orders/{order_id}").status_code == 403
    assert bob_client.delete(f"/api/v1/orders/{order_id}").status_code == 404
    assert bob_client.delete("/api/v1/orders/not-a-uuid").status_code == 404
    assert Order.objects.get(order_id=order_id).status == OrderStatus.FILLED


# --- History -----------------------------------------------------------------------------------------------
def test_order_history_records_the_creation_with_the_acting_user(alice, book):
    filled = Order.objects.get(order_id=book.ids["btc_buy"])
    rejected = Order.objects.get(order_id=book.ids["too_big"])

    [created] = filled.history.all()
    assert (created.history_type, created.history_user, created.status) == ("+", alice, "filled")
    [refused] = rejected.history.all()
    assert (refused.history_type, refused.history_user, refused.status) == ("+", alice, "rejected")
    assert refused.history_change_reason == "rejected: insufficient_balance"
    # The request fingerprint is internal and stays out of the audit trail.
    assert not hasattr(created, "request_hash")

"""The Binance-compatible API in process: signed requests as Binance defines them (HMAC-SHA256 of the exact query
string and body with the key's signing secret, a timestamp inside recvWindow), and Binance's error codes."""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from accounts.services import api_key_create
from tests.factories import make_account


@pytest.fixture
def trader(alice: Any, house: None, settings: Any) -> dict[str, Any]:
    settings.KEY_LIMITS_ENABLED = True  # the key's weight and order limits (exchange/key_limits.py), as in production
    account = make_account(owner=alice, label="bot", funds={"USD": "10000"})
    key, plain = api_key_create(user=alice, name="bot", scopes=["trade"], account=account)
    return {"key": plain, "secret": key.signing_secret, "account": account}


def signed(secret: str, params: dict[str, Any], *, timestamp: int | None = None) -> str:
    query = urlencode({**params, "timestamp": timestamp if timestamp is not None else int(time.time() * 1000)})
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def call(method: str, path: str, trader: dict[str, Any], query: str = "", body: str = "") -> Any:
    client = Client(HTTP_X_MBX_APIKEY=trader["key"])
    url = f"/api/v3/{path}" + (f"?{query}" if query else "")
    return client.generic(method, url, data=body, content_type="application/x-www-form-urlencoded")


def test_a_signed_account_request_answers_balances_as_strings(trader):
    response = call("GET", "account", trader, signed(trader["secret"], {}))
    assert response.status_code == 200, response.content
    body = response.json()
    usd = next(b for b in body["balances"] if b["asset"] == "USD")
    assert usd == {"asset": "USD", "free": "10000.00", "locked": "0.00"}
    assert body["accountType"] == "SPOT" and body["canTrade"] is True
    assert int(response["X-MBX-USED-WEIGHT-1M"]) >= 20


def test_signature_over_query_string_and_body_together(trader):
    """totalParams is the query string followed by the body: a client may split its parameters between them."""
    query = "symbol=BTCUSD&side=BUY&type=LIMIT&timeInForce=GTC"
    body = f"quantity=0.01&price=60000&recvWindow=5000&timestamp={int(time.time() * 1000)}"
    signature = hmac.new(trader["secret"].encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    response = call("POST", "order", trader, query, body + f"&signature={signature}")
    assert response.status_code == 200, response.content
    order = response.json()
    assert order["status"] == "NEW" and order["price"] == "60000.00" and order["origQty"] == "0.01000000"
    assert isinstance(order["orderId"], int)
    assert response["X-MBX-ORDER-COUNT-10S"] == "1"


def test_a_wrong_signature_is_refused_with_1022_and_changes_nothing(trader):
    query = signed("not-the-secret", {"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    response = call("POST", "order", trader, body=query)
    assert response.status_code == 400
    assert response.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    assert not trader["account"].orders.exists()


def test_a_tampered_parameter_breaks_the_signature(trader):
    query = signed(trader["secret"], {"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    response = call("POST", "order", trader, body=query.replace("quantity=0.01", "quantity=0.02"))
    assert response.json()["code"] == -1022


@pytest.mark.parametrize(
    ("offset_ms", "recv_window", "message"),
    [
        (-6000, None, "Timestamp for this request is outside of the recvWindow."),
        (-20000, 10000, "Timestamp for this request is outside of the recvWindow."),
        (2000, None, "Timestamp for this request was 1000ms ahead of the server's time."),
    ],
)
def test_a_timestamp_outside_the_window_is_refused_with_1021(trader, offset_ms, recv_window, message):
    params = {"recvWindow": recv_window} if recv_window else {}
    query = signed(trader["secret"], params, timestamp=int(time.time() * 1000) + offset_ms)
    response = call("GET", "account", trader, query)
    assert response.status_code == 400
    assert response.json() == {"code": -1021, "msg": message}


def test_a_wider_recv_window_admits_an_older_timestamp_up_to_60000(trader):
    old = int(time.time() * 1000) - 20000
    assert (
        call("GET", "account", trader, signed(trader["secret"], {"recvWindow": 30000}, timestamp=old)).status_code
        == 200
    )
    too_wide = call("GET", "account", trader, signed(trader["secret"], {"recvWindow": 60001}))
    assert too_wide.json() == {"code": -1131, "msg": "recvWindow must be less than 60000"}


def test_missing_timestamp_or_signature_is_1102(trader):
    assert call("GET", "account", trader, "recvWindow=5000").json()["code"] == -1102
    assert call("GET", "account", trader, f"timestamp={int(time.time() * 1000)}").json()["code"] == -1102


def test_key_problems_are_2014_and_2015(trader, alice):
    query = signed(trader["secret"], {})
    bad_format = Client(HTTP_X_MBX_APIKEY="bad key!").get(f"/api/v3/account?{query}")
    assert bad_format.status_code == 401 and bad_format.json()["code"] == -2014
    unknown = Client(HTTP_X_MBX_APIKEY="abc.def").get(f"/api/v3/account?{query}")
    assert unknown.status_code == 401 and unknown.json()["code"] == -2015
    reader, plain = api_key_create(user=alice, name="reader", scopes=["read"], account=trader["account"])
    me = {"key": plain, "secret": reader.signing_secret}
    order = signed(me["secret"], {"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    assert call("POST", "order", me, body=order).json()["code"] == -2015, "a read key cannot trade"
    assert call("GET", "account", me, signed(me["secret"], {})).status_code == 200


def test_order_refusals_use_binance_codes_and_messages(trader):
    def place(**params: Any) -> dict[str, Any]:
        response = call("POST", "order", trader, body=signed(trader["secret"], {"symbol": "BTCUSD", **params}))
        assert response.status_code == 400, response.content
        return response.json()

    assert place(side="BUY", type="MARKET", quantity="1") == {
        "code": -2010,
        "msg": "Account has insufficient balance for requested action.",
    }
    assert place(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.000001", price="60000") == {
        "code": -1013,
        "msg": "Filter failure: LOT_SIZE",
    }
    assert place(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.000011", price="60000")["code"] == -1013
    assert place(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.000000001", price="60000") == {
        "code": -1111,
        "msg": "Parameter 'quantity' has too much precision.",
    }
    assert place(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="60000.015")["code"] == -1111
    assert place(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.00001", price="60000.001")["code"] == -1111
    assert place(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.00001", price="60000") == {
        "code": -1013,
        "msg": "Filter failure: NOTIONAL",
    }
    assert place(side="BUY", type="LIMIT", quantity="0.01", price="60000")["code"] == -1102
    assert place(side="BUY", type="MARKET", quantity="0.01", price="60000")["code"] == -1106
    assert place(side="BUY", type="STOP_LOSS", quantity="0.01")["code"] == -1116
    assert place(side="UP", type="MARKET", quantity="0.01")["code"] == -1117
    assert place(side="BUY", type="LIMIT_MAKER", quantity="0.01", price="70000") == {
        "code": -2010,
        "msg": "Order would immediately match and take.",
    }
    wrong = call("POST", "order", trader, body=signed(trader["secret"], {"symbol": "NOPE", "side": "BUY"}))
    assert wrong.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_get_and_cancel_by_order_id_and_client_order_id(trader):
    placed = call(
        "POST",
        "order",
        trader,
        body=signed(
            trader["secret"],
            {
                "symbol": "BTCUSD",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": "60000",
                "newClientOrderId": "my-1",
                "newOrderRespType": "ACK",
            },
        ),
    ).json()
    assert set(placed) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    got = call("GET", "order", trader, signed(trader["secret"], {"symbol": "BTCUSD", "orderId": placed["orderId"]}))
    assert got.json()["clientOrderId"] == "my-1" and got.json()["status"] == "NEW"
    balances = {b["asset"]: b for b in call("GET", "account", trader, signed(trader["secret"], {})).json()["balances"]}
    assert Decimal(balances["USD"]["locked"]) > Decimal("600")
    cancelled = call(
        "DELETE", "order", trader, body=signed(trader["secret"], {"symbol": "BTCUSD", "origClientOrderId": "my-1"})
    )
    assert cancelled.json()["status"] == "CANCELED" and cancelled.json()["origClientOrderId"] == "my-1"
    again = call(
        "DELETE", "order", trader, body=signed(trader["secret"], {"symbol": "BTCUSD", "orderId": placed["orderId"]})
    )
    assert again.json() == {"code": -2011, "msg": "Unknown order sent."}
    missing = call("GET", "order", trader, signed(trader["secret"], {"symbol": "BTCUSD", "orderId": 999999}))
    assert missing.json() == {"code": -2013, "msg": "Order does not exist."}
    balances = {b["asset"]: b for b in call("GET", "account", trader, signed(trader["secret"], {})).json()["balances"]}
    assert balances["USD"] == {"asset": "USD", "free": "10000.00", "locked": "0.00"}


def test_another_users_order_is_not_found(trader, bob):
    placed = call(
        "POST",
        "order",
        trader,
        body=signed(
            trader["secret"],
            {
                "symbol": "BTCUSD",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": "60000",
            },
        ),
    ).json()
    other_account = make_account(owner=bob, label="b")
    key, plain = api_key_create(user=bob, name="b", scopes=["trade"], account=other_account)
    bob_trader = {"key": plain, "secret": key.signing_secret}
    query = signed(bob_trader["secret"], {"symbol": "BTCUSD", "orderId": placed["orderId"]})
    assert call("GET", "order", bob_trader, query).json()["code"] == -2013
    assert call("DELETE", "order", bob_trader, body=query).json()["code"] == -2011


def test_the_listen_key_flow_open_keepalive_close(trader):
    from binance_api.selectors import listen_key_account

    client = Client(HTTP_X_MBX_APIKEY=trader["key"])
    opened = client.post("/api/v3/userDataStream")
    assert opened.status_code == 200, opened.content
    listen_key = opened.json()["listenKey"]
    assert len(listen_key) == 60
    assert client.post("/api/v3/userDataStream").json() == {"listenKey": listen_key}, "one live key per API key"
    assert listen_key_account(listen_key=listen_key) == trader["account"]

    form = "application/x-www-form-urlencoded"
    assert client.put("/api/v3/userDataStream", f"listenKey={listen_key}", content_type=form).json() == {}
    assert client.delete(f"/api/v3/userDataStream?listenKey={listen_key}").json() == {}
    assert listen_key_account(listen_key=listen_key) is None
    gone = client.put("/api/v3/userDataStream", f"listenKey={listen_key}", content_type=form)
    assert gone.json() == {"code": -1125, "msg": "This listenKey does not exist."}
    assert Client().post("/api/v3/userDataStream").json()["code"] == -2014, "the API key is required"


def test_a_market_buy_by_quote_amount_with_a_result_answer(trader):
    body = signed(
        trader["secret"],
        {"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quoteOrderQty": "100", "newOrderRespType": "RESULT"},
    )
    order = call("POST", "order", trader, body=body).json()
    assert order["status"] == "FILLED" and order["type"] == "MARKET" and "fills" not in order
    assert order["origQuoteOrderQty"] == "100.00"
    assert Decimal("99") < Decimal(order["cummulativeQuoteQty"]) <= Decimal("100")
    trades = call("GET", "myTrades", trader, signed(trader["secret"], {"symbol": "BTCUSD"})).json()
    assert {t["orderId"] for t in trades} == {order["orderId"]}
    assert sum(Decimal(t["qty"]) for t in trades) == Decimal(order["executedQty"])
    assert all(t["isBuyer"] and not t["isMaker"] and t["commissionAsset"] == "USD" for t in trades)


def test_cancel_all_open_orders_of_a_symbol_and_all_orders_history(trader):
    for price in ("50000", "51000"):
        params = {"symbol": "BTCUSD", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}
        assert (
            call("POST", "order", trader, body=signed(trader["secret"], {**params, "price": price})).status_code == 200
        )
    assert len(call("GET", "openOrders", trader, signed(trader["secret"], {"symbol": "BTCUSD"})).json()) == 2
    cancelled = call("DELETE", "openOrders", trader, body=signed(trader["secret"], {"symbol": "BTCUSD"})).json()
    assert [o["status"] for o in cancelled] == ["CANCELED", "CANCELED"]
    assert call("GET", "openOrders", trader, signed(trader["secret"], {})).json() == []
    history = call("GET", "allOrders", trader, signed(trader["secret"], {"symbol": "BTCUSD"})).json()
    assert [(o["price"], o["status"]) for o in history] == [("50000.00", "CANCELED"), ("51000.00", "CANCELED")]


def test_order_test_validates_without_placing(trader):
    params = {"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    assert call("POST", "order/test", trader, body=signed(trader["secret"], params)).json() == {}
    rates = call(
        "POST", "order/test", trader, body=signed(trader["secret"], {**params, "computeCommissionRates": "true"})
    )
    assert rates.json()["standardCommissionForOrder"] == {"maker": "0.00050000", "taker": "0.00100000"}
    bad = call("POST", "order/test", trader, body=signed(trader["secret"], {**params, "quantity": "0.000000001"}))
    assert bad.json()["code"] == -1111
    assert not trader["account"].orders.exists()


def test_exchange_info_filters_come_from_the_market_rules(db, settings):
    settings.KEY_LIMITS_ENABLED = True
    info = Client().get("/api/v3/exchangeInfo?symbol=ETHBTC").json()
    (symbol,) = info["symbols"]
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert (symbol["symbol"], symbol["baseAsset"], symbol["quoteAsset"]) == ("ETHBTC", "ETH", "BTC")
    assert filters["PRICE_FILTER"]["tickSize"] == "0.00001000"
    assert filters["LOT_SIZE"]["stepSize"] == filters["MARKET_LOT_SIZE"]["stepSize"]
    assert {"REQUEST_WEIGHT", "ORDERS"} == {limit["rateLimitType"] for limit in info["rateLimits"]}
    assert Client().get("/api/v3/exchangeInfo?symbol=ETH-BTC").json() == {"code": -1121, "msg": "Invalid symbol."}


def test_a_chaos_injection_tightening_the_keys_order_limit_answers_1015_with_retry_after(trader, alice, settings):
    """The rate limits of the chaos control (POST /chaos/tighten-rate-limits) apply to /api/v3 too."""
    from accounts.models import ApiKey
    from chaos.models import ChaosType
    from chaos.services import injection_create

    settings.KEY_LIMITS_ENABLED = False  # nothing in force but the injection
    key = ApiKey.objects.get(prefix=trader["key"].split(".")[0])
    injection_create(kind=ChaosType.RATE_LIMITS, params={"order_limit_10s": 1}, actor=alice, accounts=[key.pk])
    order = {"symbol": "BTCUSD", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}
    first = call("POST", "order", trader, body=signed(trader["secret"], {**order, "price": "50000"}))
    assert first.status_code == 200 and first["X-MBX-ORDER-COUNT-10S"] == "1"
    second = call("POST", "order", trader, body=signed(trader["secret"], {**order, "price": "50001"}))
    assert second.status_code == 429
    assert second.json() == {"code": -1015, "msg": "Too many new orders; current limit is 1 orders per 10 SECOND."}
    assert 0 < int(second["Retry-After"]) <= 10 and second["X-MBX-ORDER-COUNT-10S"] == "2"
    assert trader["account"].orders.count() == 1, "the refused order was never placed"

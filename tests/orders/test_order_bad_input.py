"""Bad order input answers 4xx with a stable code, stores nothing and moves no money."""

from __future__ import annotations

import uuid

import pytest

from orders.models import Order
from tests.factories import make_account
from tests.helpers import money_snapshot

pytestmark = pytest.mark.django_db

GOOD = {"symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "0.01"}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"symbol": "DOGE-USD"}, 400, "unknown_symbol"),
        ({"symbol": "BTCXYZ"}, 400, "unknown_symbol"),
        ({"symbol": "BTC-USD-X"}, 400, "unknown_symbol"),
        ({"symbol": 42}, 400, "unknown_symbol"),
        ({"side": "hold"}, 400, "validation_error"),
        ({"side": "BUY"}, 400, "validation_error"),
        ({"order_type": "limit"}, 400, "validation_error"),  # a limit order needs a price
        ({"order_type": "stop"}, 400, "unsupported_order_type"),
        ({"order_type": "stop_limit", "price": "65000.00"}, 400, "unsupported_order_type"),
        ({"price": "65000.00"}, 400, "parameter_not_allowed"),
        ({"time_in_force": "gtc"}, 400, "parameter_not_allowed"),
        ({"post_only": True}, 400, "parameter_not_allowed"),
        (
            {"order_type": "limit", "price": "65000.00", "quantity": None, "quote_quantity": "100"},
            400,
            "parameter_not_allowed",
        ),
        ({"order_type": "limit", "price": "65000.001"}, 400, "invalid_amount"),
        ({"order_type": "limit", "price": "0"}, 400, "invalid_amount"),
        ({"order_type": "limit", "price": "-65000"}, 400, "invalid_amount"),
        ({"order_type": "limit", "price": "1e40"}, 400, "invalid_amount"),
        ({"order_type": "limit", "price": 65000.001}, 400, "invalid_amount"),  # a JSON number, read exactly
        ({"order_type": "limit", "price": "65000.00", "time_in_force": "gtd"}, 400, "validation_error"),
        ({"order_type": "limit", "price": "65000.00", "post_only": "yes"}, 400, "validation_error"),
        ({"order_type": "limit", "price": "65000.00", "post_only": 1}, 400, "validation_error"),
        (
            {"order_type": "limit", "price": "65000.00", "post_only": True, "time_in_force": "ioc"},
            400,
            "parameter_not_allowed",
        ),
        ({"self_trade_prevention": "none"}, 400, "validation_error"),
        ({"quantity": None}, 400, "validation_error"),
        ({"quote_quantity": "100"}, 400, "validation_error"),
        ({"quantity": "0"}, 400, "invalid_amount"),
        ({"quantity": "-0.01"}, 400, "invalid_amount"),
        ({"quantity": "0.000000001"}, 400, "invalid_amount"),
        ({"quantity": "1e40"}, 400, "invalid_amount"),
        ({"quantity": 10**40}, 400, "invalid_amount"),
        ({"quantity": "lots"}, 400, "validation_error"),
        ({"quantity": True}, 400, "validation_error"),
        ({"quantity": "NaN"}, 400, "validation_error"),
        ({"quantity": None, "quote_quantity": "10.001"}, 400, "invalid_amount"),
        ({"account_id": "not-a-uuid"}, 400, "validation_error"),
        ({"account_id": str(uuid.uuid4())}, 404, "not_found"),
        ({"client_order_id": "has spaces"}, 400, "validation_error"),
        ({"client_order_id": "x" * 65}, 400, "validation_error"),
    ],
)
def test_bad_order_is_refused_and_changes_nothing(alice_client, alice_account, change, status, code):
    body = {"account_id": str(alice_account.account_id), **GOOD, **change}
    before, orders = money_snapshot(), Order.objects.count()
    response = alice_client.post("/api/v1/orders", body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert money_snapshot() == before and Order.objects.count() == orders


def test_missing_fields_are_named(alice_client):
    response = alice_client.post("/api/v1/orders", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]["fields"]) >= {"account_id", "symbol", "side", "order_type"}


def test_malformed_json_order_is_400(alice_client):
    response = alice_client.generic("POST", "/api/v1/orders", '{"symbol": "BTC-USD",', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_order_on_another_users_account_is_404(bob_client, alice_account):
    before = money_snapshot()
    response = bob_client.post("/api/v1/orders", {"account_id": str(alice_account.account_id), **GOOD}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert money_snapshot() == before and Order.objects.count() == 0


def test_read_key_cannot_place_orders(alice_reader, alice_account):
    response = alice_reader.post("/api/v1/orders", {"account_id": str(alice_account.account_id), **GOOD}, format="json")
    assert response.status_code == 403
    assert Order.objects.count() == 0


def test_operator_key_cannot_trade_on_customer_accounts(operator_client, alice_account):
    """Operators run the books; they do not place orders on customers' behalf."""
    response = operator_client.post(
        "/api/v1/orders", {"account_id": str(alice_account.account_id), **GOOD}, format="json"
    )
    assert response.status_code == 403
    assert Order.objects.count() == 0


def test_a_huge_quote_quantity_is_refused(alice_client, alice):
    account = make_account(owner=alice)
    body = {"account_id": str(account.account_id), **GOOD, "quantity": None, "quote_quantity": "9" * 40}
    body.pop("quantity")
    response = alice_client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_amount"

"""What the schema refuses, the service refuses: the cases the contract test found, written down as examples."""

from __future__ import annotations

import pytest

from tests.helpers import money_snapshot

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", ["halt", "resume", "price"])
@pytest.mark.parametrize("method", ["post", "get"])
def test_a_market_action_without_a_quote_asset_is_404_with_the_envelope(operator_client, action, method):
    response = getattr(operator_client, method)(f"/api/v1/markets/BTC/{action}", {}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_slash_spelling_of_a_symbol_still_reaches_the_market(alice_reader):
    assert alice_reader.get("/api/v1/markets/BTC/USD").json()["symbol"] == "BTC-USD"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders?account_id=",
        "/api/v1/trades?account_id=",
        "/api/v1/positions?account_id=",
        "/api/v1/orders?symbol=",
        "/api/v1/trades?order_id=",
        "/api/v1/orders?account_id=00000000-0000-0000-0000-000000000000&account_id=00000000-0000-0000-0000-000000000001",
        "/api/v1/orders?since=2026-01-31",
        "/api/v1/orders?since=2026-01-31T12:00:00",
        "/api/v1/orders?limit=10.0",
        "/api/v1/orders?cursor=",
    ],
)
def test_an_empty_repeated_or_loosely_spelled_query_parameter_is_400_not_ignored(alice_reader, path):
    response = alice_reader.get(path)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


def test_a_cursor_this_service_did_not_hand_out_is_404(alice_reader):
    response = alice_reader.get("/api/v1/orders?cursor=cD1hYmM=")  # base64 of "p=abc"

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"asset": "USD", "amount": "1", "reason": 5}, "validation_error"),
        ({"asset": "USD", "amount": "1", "idempotency_key": 12345}, "validation_error"),
        ({"asset": "USD", "amount": "1", "reason": "   "}, "validation_error"),
        ({"asset": "XBT", "amount": "1"}, "unknown_asset"),
        ({"asset": "USD", "amount": " 1"}, "invalid_amount"),
        ({"asset": "USD", "amount": "01"}, "invalid_amount"),
        ({"asset": "USD", "amount": "1e2"}, "invalid_amount"),
        ({"asset": "USD", "amount": "1", "reason": "nul\u0000"}, "validation_error"),
    ],
)
def test_a_wrongly_typed_or_spelled_body_field_is_400(operator_client, alice_account, body, code):
    before = money_snapshot()

    response = operator_client.post(f"/api/v1/accounts/{alice_account.account_id}/adjustments", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert money_snapshot() == before


def test_an_order_with_a_number_for_a_string_field_is_400(alice_client, alice_account):
    body = {"account_id": str(alice_account.account_id), "symbol": "BTC-USD", "side": "buy", "quantity": "0.01"}

    for change in ({"order_type": 1}, {"client_order_id": 42}, {"account_id": 1}):
        response = alice_client.post("/api/v1/orders", {**body, "order_type": "market", **change}, format="json")
        assert response.status_code == 400, (change, response.content)


def test_an_unknown_owner_is_404(operator_client):
    response = operator_client.post("/api/v1/accounts", {"label": "x", "owner": "nobody"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"owner": "nobody"}


def test_a_json_number_amount_is_still_read_exactly(operator_client, alice_account):
    response = operator_client.post(
        f"/api/v1/accounts/{alice_account.account_id}/deposits",
        '{"asset": "USD", "amount": 0.10}',
        content_type="application/json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["transaction"]["amount"] == "0.10"


def test_a_time_with_an_offset_postgresql_has_no_name_for_is_read_in_utc(alice_reader, alice_account):
    # RFC 3339 allows any offset up to 23:59; PostgreSQL only to 15:59. Found by the conformance test (a 500).
    url = f"/api/v1/accounts/{alice_account.account_id}/transactions"
    response = alice_reader.get(url, {"until": "0057-03-18T12:41:30.558522-18:40"})
    assert response.status_code == 200, response.content
    assert alice_reader.get(url, {"until": "0001-01-01T00:00:00+05:00"}).status_code == 400  # before year 1 in UTC

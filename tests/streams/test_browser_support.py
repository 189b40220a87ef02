"""What a browser client needs from the REST API: CORS with preflight for configured origins, the opt-in number
format, and stream tokens for EventSource (which cannot send headers)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from streams import numbers
from streams.services import stream_token_check
from tests.factories import make_account

ORIGIN = "http://dashboard.test:3002"


def test_amount_strings_become_json_numbers_with_the_same_digits_and_nothing_else_changes():
    body = {
        "order_id": "123",
        "client_order_id": "42",
        "quantity": "0.50000000",
        "price": "65032.50",
        "average_price": None,
        "fills": [{"fee": "-0.01", "trade_id": "9"}],
        "bids": [["64967.50", "0.50000000"]],
        "memo": "100",
        "sequence": 7,
    }
    text = numbers.dumps(body, numbers=True)
    assert '"quantity":0.50000000' in text and '"price":65032.50' in text and '"fee":-0.01' in text
    assert '"bids":[[64967.50,0.50000000]]' in text
    parsed = json.loads(text)
    assert parsed["order_id"] == "123" and parsed["client_order_id"] == "42" and parsed["memo"] == "100"
    assert parsed["average_price"] is None and parsed["sequence"] == 7 and parsed["fills"][0]["trade_id"] == "9"
    assert numbers.dumps(body, numbers=False) == json.dumps(body, separators=(",", ":"))


@pytest.mark.django_db
def test_the_rest_api_renders_numbers_only_when_asked(alice, alice_client):
    make_account(owner=alice, funds={"USD": "1500.25", "BTC": "0.5"})
    default = alice_client.get("/api/v1/accounts").json()["accounts"][0]["balances"]
    assert {b["asset"]: b["available"] for b in default}["USD"] == "1500.25"
    for response in (
        alice_client.get("/api/v1/accounts", {"amounts": "number"}),
        alice_client.get("/api/v1/accounts", HTTP_ACCEPT="application/json; amounts=number"),
    ):
        assert response.status_code == 200
        assert b'"available":1500.25' in response.content
        account = response.json()["accounts"][0]
        assert {b["asset"]: b["available"] for b in account["balances"]}["BTC"] == 0.5
        assert isinstance(account["account_id"], str)
    # The views still refuse parameters they do not take.
    assert alice_client.get("/api/v1/accounts", {"amount": "number"}).status_code == 400


@pytest.mark.django_db
@override_settings(CORS_ALLOWED_ORIGINS=[ORIGIN])
def test_a_preflight_from_a_configured_origin_is_allowed_and_another_origin_is_not(client):
    preflight = client.options(
        "/api/v1/positions",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, authorization",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == ORIGIN
    assert "content-type" in preflight["Access-Control-Allow-Headers"]
    other = client.options(
        "/api/v1/positions", HTTP_ORIGIN="http://evil.test", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.django_db
def test_a_stream_token_stands_for_its_key_until_it_expires_or_the_key_is_revoked(alice, alice_reader):
    from accounts.models import ApiKey
    from accounts.services import api_key_revoke

    response = alice_reader.post("/api/v1/stream/token")
    assert response.status_code == 201
    body = response.json()
    assert body["expires_in"] == 300
    user, key = stream_token_check(token=body["token"])
    assert user == alice and key.has_scope("read")
    assert stream_token_check(token=body["token"] + "x") is None
    with override_settings(STREAM_TOKEN_TTL=-1):
        assert stream_token_check(token=body["token"]) is None  # expired
    api_key_revoke(key=ApiKey.objects.get(pk=key.pk))
    assert stream_token_check(token=body["token"]) is None
    assert (
        timezone.now()
        < timezone.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        < (timezone.now() + timedelta(minutes=6))
    )


@pytest.mark.django_db
def test_a_stream_token_needs_an_api_key(anonymous_client):
    assert anonymous_client.post("/api/v1/stream/token").status_code == 401

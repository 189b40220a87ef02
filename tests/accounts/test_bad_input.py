"""Bad input answers 4xx with a stable error code and changes nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import make_account
from tests.helpers import money_snapshot

pytestmark = pytest.mark.django_db


def _url(account, action: str = "deposits") -> str:
    return f"/api/v1/accounts/{account.account_id}/{action}"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"asset": "USD", "amount": "-5"}, 400, "invalid_amount"),
        ({"asset": "USD", "amount": "0"}, 400, "invalid_amount"),
        ({"asset": "USD", "amount": "0.00"}, 400, "invalid_amount"),
        ({"asset": "USD", "amount": "1.001"}, 400, "invalid_amount"),
        ({"asset": "BTC", "amount": "0.000000001"}, 400, "invalid_amount"),
        ({"asset": "USD", "amount": "1e40"}, 400, "invalid_amount"),
        ({"asset": "USD", "amount": 10**40}, 400, "invalid_amount"),
        ({"asset": "USD", "amount": "NaN"}, 400, "validation_error"),
        ({"asset": "USD", "amount": "Infinity"}, 400, "validation_error"),
        ({"asset": "USD", "amount": "ten"}, 400, "validation_error"),
        ({"asset": "USD", "amount": True}, 400, "validation_error"),
        ({"asset": "USD", "amount": None}, 400, "validation_error"),
        ({"asset": "USD", "amount": ["1"]}, 400, "validation_error"),
        ({"asset": "USD", "amount": {"value": "1"}}, 400, "validation_error"),
        ({"asset": "DOGE", "amount": "1"}, 400, "unknown_asset"),
        ({"asset": 7, "amount": "1"}, 400, "unknown_asset"),
        ({"asset": "USD"}, 400, "validation_error"),
        ({"amount": "1"}, 400, "validation_error"),
        ([], 400, "validation_error"),
        ("just a string", 400, "validation_error"),
    ],
)
def test_bad_deposit_is_refused_and_changes_nothing(operator_client, alice_account, body, status, code):
    before = money_snapshot()
    response = operator_client.post(_url(alice_account), body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert money_snapshot() == before


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        ('{"asset": "USD", "amount": "1"', "application/json", 400, "malformed_json"),
        ("{'asset': 'USD'}", "application/json", 400, "malformed_json"),
        ('{"asset": "USD", "amount": NaN}', "application/json", 400, "malformed_json"),
        ("asset=USD&amount=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_malformed_body_is_refused(operator_client, alice_account, raw, content_type, status, code):
    before = money_snapshot()
    response = operator_client.generic("POST", _url(alice_account), raw, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert money_snapshot() == before


def test_a_json_number_amount_is_read_exactly(operator_client, alice_account):
    """0.1 as a JSON number is 0.1 (Decimal), not 0.1000000000000000055511151231257827 (float)."""
    response = operator_client.post(
        _url(alice_account), '{"asset": "USD", "amount": 0.1}', content_type="application/json"
    )
    assert response.status_code == 201, response.content
    usd = next(b for b in response.json()["balances"] if b["asset"] == "USD")
    assert usd["available"] == "10000.10"


@pytest.mark.parametrize("account_id", ["not-a-uuid", str(uuid.uuid4()), "1", "'; DROP TABLE x; --"])
def test_unknown_account_id_answers_404(operator_client, account_id):
    response = operator_client.post(
        f"/api/v1/accounts/{account_id}/deposits", {"asset": "USD", "amount": "1"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_foreign_account_id_answers_404_and_changes_nothing(bob_client, alice_account):
    before = money_snapshot()
    for path in ("", "/balances", "/transactions", "/audit"):
        response = bob_client.get(f"/api/v1/accounts/{alice_account.account_id}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert money_snapshot() == before


def test_withdrawal_beyond_available_is_422_and_changes_nothing(operator_client, alice_account):
    before = money_snapshot()
    response = operator_client.post(
        _url(alice_account, "withdrawals"), {"asset": "USD", "amount": "10000.01"}, format="json"
    )
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "insufficient_balance"
    assert body["details"] == {"asset": "USD", "available": "10000.00", "required": "10000.01"}
    assert money_snapshot() == before


def test_transactions_filter_with_bad_values_is_400(alice_client, alice_account):
    for query in ("kind=teleport", "since=yesterday", "limit=0", "limit=abc"):
        response = alice_client.get(f"/api/v1/accounts/{alice_account.account_id}/transactions?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "validation_error"


def test_account_label_too_long_is_refused(alice_client):
    response = alice_client.post("/api/v1/accounts", {"label": "x" * 101}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["label"]


def test_mixing_up_accounts_of_other_users_cannot_be_done_by_uuid_guessing(bob_client, alice):
    account = make_account(owner=alice)
    response = bob_client.post(f"/api/v1/accounts/{account.account_id}/suspend", {}, format="json")
    # bob has no operator scope: refused before the account is even looked up.
    assert response.status_code == 403

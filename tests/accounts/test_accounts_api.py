"""The accounts API as alice (owner), bob (another customer) and the operator see it."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts import services
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def test_alice_opens_an_account_and_sees_every_asset_at_zero(alice_client):
    response = alice_client.post("/api/v1/accounts", {"label": "desk-1"}, format="json")
    assert response.status_code == 201
    account = response.json()
    assert account["label"] == "desk-1" and account["owner"] == "alice"
    assert account["account_type"] == "spot" and account["status"] == "active"
    assert account["balances"] == [
        {"asset": "BTC", "available": "0.00000000", "locked": "0.00000000", "total": "0.00000000"},
        {"asset": "ETH", "available": "0.00000000", "locked": "0.00000000", "total": "0.00000000"},
        {"asset": "USD", "available": "0.00", "locked": "0.00", "total": "0.00"},
        {"asset": "USDT", "available": "0.000000", "locked": "0.000000", "total": "0.000000"},
    ]
    balances = alice_client.get(f"/api/v1/accounts/{account['account_id']}/balances").json()
    assert balances == {"account_id": account["account_id"], "balances": account["balances"]}


def test_list_is_wrapped_and_shows_only_own_accounts(alice_client, bob_client, alice, bob):
    make_account(owner=alice, label="a1")
    make_account(owner=alice, label="a2")
    make_account(owner=bob, label="b1")
    body = alice_client.get("/api/v1/accounts").json()
    assert sorted(a["label"] for a in body["accounts"]) == ["a1", "a2"]
    assert set(body) == {"accounts", "next", "previous"}
    assert [a["label"] for a in bob_client.get("/api/v1/accounts").json()["accounts"]] == ["b1"]


def test_list_is_cursor_paginated_newest_first(alice_client, alice):
    for i in range(5):
        make_account(owner=alice, label=f"acc{i}")
    first = alice_client.get("/api/v1/accounts?limit=2").json()
    assert [a["label"] for a in first["accounts"]] == ["acc4", "acc3"]
    second = alice_client.get(first["next"]).json()
    assert [a["label"] for a in second["accounts"]] == ["acc2", "acc1"]


def test_operator_sees_all_accounts_and_opens_one_for_a_user(operator_client, alice, bob):
    make_account(owner=alice)
    make_account(owner=bob)
    assert len(operator_client.get("/api/v1/accounts").json()["accounts"]) == 2
    response = operator_client.post("/api/v1/accounts", {"label": "for-bob", "owner": "bob"}, format="json")
    assert response.status_code == 201 and response.json()["owner"] == "bob"


def test_customer_cannot_open_an_account_for_someone_else(alice_client, bob):
    response = alice_client.post("/api/v1/accounts", {"owner": "bob"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_operator_funds_withdraws_suspends_reactivates_and_closes(operator_client, alice_client, alice_account):
    url = f"/api/v1/accounts/{alice_account.account_id}"
    deposit = operator_client.post(
        f"{url}/deposits", {"asset": "BTC", "amount": "0.25", "reason": "wire"}, format="json"
    )
    assert deposit.status_code == 201
    assert deposit.json()["transaction"]["amount"] == "0.25000000"
    withdrawal = operator_client.post(f"{url}/withdrawals", {"asset": "BTC", "amount": "0.05"}, format="json")
    assert withdrawal.json()["transaction"]["amount"] == "-0.05000000"
    btc = next(b for b in withdrawal.json()["balances"] if b["asset"] == "BTC")
    assert btc == {"asset": "BTC", "available": "0.20000000", "locked": "0.00000000", "total": "0.20000000"}

    assert operator_client.post(f"{url}/suspend", {"reason": "kyc"}, format="json").json()["status"] == "suspended"
    refused = operator_client.post(f"{url}/withdrawals", {"asset": "BTC", "amount": "0.01"}, format="json")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "account_suspended"
    again = operator_client.post(f"{url}/suspend", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state_transition"
    assert operator_client.post(f"{url}/reactivate", {}, format="json").json()["status"] == "active"

    not_empty = operator_client.post(f"{url}/close", {}, format="json")
    assert not_empty.status_code == 409 and not_empty.json()["error"]["code"] == "account_not_empty"
    operator_client.post(f"{url}/withdrawals", {"asset": "BTC", "amount": "0.2"}, format="json")
    operator_client.post(f"{url}/withdrawals", {"asset": "USD", "amount": "10000"}, format="json")
    assert operator_client.post(f"{url}/close", {}, format="json").json()["status"] == "closed"
    # alice still sees her closed account.
    assert alice_client.get(url).json()["status"] == "closed"


@pytest.mark.parametrize("action", ["deposits", "withdrawals", "adjustments", "suspend", "reactivate", "close"])
def test_owner_keys_cannot_use_operator_actions(alice_client, alice_reader, alice_account, action):
    for client in (alice_client, alice_reader):
        response = client.post(
            f"/api/v1/accounts/{alice_account.account_id}/{action}",
            {"asset": "USD", "amount": "1", "reason": "x"},
            format="json",
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert alice_account.balances.get(asset_id="USD").available == D("10000")


def test_read_key_cannot_open_accounts_but_can_read(alice_reader, alice_account):
    assert alice_reader.get(f"/api/v1/accounts/{alice_account.account_id}").status_code == 200
    # Opening an account is not money-moving, but a read key is for reading only.
    response = alice_reader.post("/api/v1/accounts", {"label": "x"}, format="json")
    assert response.status_code == 403


def test_no_key_is_401_with_the_envelope(anonymous_client):
    response = anonymous_client.get("/api/v1/accounts")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_transactions_are_newest_first_and_filterable(alice_client, alice_account, operator_user):
    services.deposit_create(account=alice_account, asset="BTC", amount="1", actor=operator_user)
    services.withdrawal_create(account=alice_account, asset="USD", amount="25", actor=operator_user)
    url = f"/api/v1/accounts/{alice_account.account_id}/transactions"
    lines = alice_client.get(url).json()["transactions"]
    assert [(t["kind"], t["asset"], t["amount"]) for t in lines] == [
        ("withdrawal", "USD", "-25.00"),
        ("deposit", "BTC", "1.00000000"),
        ("deposit", "USD", "10000.00"),
    ]
    assert all(t["bucket"] == "available" for t in lines)
    only_usd = alice_client.get(f"{url}?asset=usd&kind=deposit").json()["transactions"]
    assert [(t["kind"], t["amount"]) for t in only_usd] == [("deposit", "10000.00")]
    future = alice_client.get(f"{url}?since=2999-01-01T00:00:00Z").json()["transactions"]
    assert future == []


def test_total_equity_is_null_until_markets_price_it(alice_client, alice_account):
    body = alice_client.get(f"/api/v1/accounts/{alice_account.account_id}").json()
    assert "total_equity_usd" in body

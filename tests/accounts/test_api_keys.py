"""API keys: stored only as a hash, shown once, checked on every request, and limited by their scopes."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Account, ApiKey, Balance
from accounts.signing import signing_secret_decrypt
from exchange import errors
from ledger.models import JournalEntry, Posting
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _client(**headers: str) -> APIClient:
    client = APIClient()
    client.credentials(**headers)
    return client


def _rows(table: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        return cursor.fetchall()


def _money() -> tuple[Any, ...]:
    """Everything a money movement or a status change would touch."""
    return (
        sorted(Balance.objects.values_list("account_id", "asset_id", "available", "locked")),
        sorted(Account.objects.values_list("id", "status")),
        JournalEntry.objects.count(),
        Posting.objects.count(),
    )


# --- Storage ---------------------------------------------------------------------------------------------
def test_plain_key_is_in_no_column_of_the_key_table_or_its_history(alice):
    key, plain = services.api_key_create(user=alice, name="bot", scopes=["read", "trade"])
    _prefix, _, secret = plain.partition(".")
    assert secret

    rows = _rows(ApiKey._meta.db_table) + _rows(ApiKey.history.model._meta.db_table)
    assert len(rows) == 2  # the key and its creation in history
    for row in rows:
        for value in row:
            assert plain not in str(value)
            assert secret not in str(value)
    # What is stored is a hash the key can be checked against.
    key.refresh_from_db()
    assert key.hashed_key and key.is_valid(plain)
    assert not key.is_valid(plain + "x")


# --- create_api_key ----------------------------------------------------------------------------------------
def test_create_api_key_prints_the_key_once_and_it_authenticates():
    out, err = StringIO(), StringIO()
    call_command("create_api_key", user="carol", scopes="read,trade", create_user=True, stdout=out, stderr=err)

    lines = out.getvalue().splitlines()
    assert len(lines) == 2, "stdout carries the key and its signing secret and nothing else, for scripts"
    plain, secret = lines
    key = ApiKey.objects.get(user__username="carol")
    assert plain.startswith(key.prefix + ".")
    assert key.scopes == ["read", "trade"]
    assert plain not in err.getvalue() and secret not in err.getvalue()
    # The signing secret is stored encrypted, never in the clear, and decrypts to what was shown.
    assert len(secret) == 64 and secret not in key.signing_secret_encrypted
    assert signing_secret_decrypt(key.signing_secret_encrypted) == secret
    assert "shown once" in err.getvalue()

    response = _client(HTTP_AUTHORIZATION=f"Api-Key {plain}").get("/api/v1/accounts")
    assert response.status_code == 200, response.content
    assert response.json()["accounts"] == []


def test_create_api_key_refuses_an_unknown_scope_and_creates_nothing(alice):
    with pytest.raises(CommandError, match="admin"):
        call_command("create_api_key", user="alice", scopes="read,admin", stdout=StringIO(), stderr=StringIO())
    assert not ApiKey.objects.filter(user=alice).exists()

    with pytest.raises(errors.ValidationFailed):
        services.api_key_create(user=alice, name="bot", scopes=["superuser"])
    with pytest.raises(errors.ValidationFailed):
        services.api_key_create(user=alice, name="bot", scopes=[])
    assert not ApiKey.objects.filter(user=alice).exists()


def test_create_api_key_refuses_an_unknown_user_without_create_user():
    with pytest.raises(CommandError, match="no user"):
        call_command("create_api_key", user="nobody", scopes="read", stdout=StringIO(), stderr=StringIO())
    assert not ApiKey.objects.exists()


# --- Authentication ----------------------------------------------------------------------------------------
def _assert_not_authenticated(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "not_authenticated"


def test_revoked_key_answers_401_not_authenticated(alice):
    key, plain = services.api_key_create(user=alice, name="bot", scopes=["trade"])
    client = _client(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/accounts").status_code == 200

    services.api_key_revoke(key=key, actor=alice)

    _assert_not_authenticated(client.get("/api/v1/accounts"))


def test_unknown_key_answers_401(alice):
    _key, plain = services.api_key_create(user=alice, name="bot", scopes=["trade"])
    prefix, _, secret = plain.partition(".")

    _assert_not_authenticated(_client(HTTP_AUTHORIZATION="Api-Key abcdefgh.notakey").get("/api/v1/accounts"))
    # The right prefix with a wrong secret is just as unknown.
    wrong = f"{prefix}.{secret[::-1]}"
    _assert_not_authenticated(_client(HTTP_AUTHORIZATION=f"Api-Key {wrong}").get("/api/v1/accounts"))
    _assert_not_authenticated(_client(HTTP_AUTHORIZATION="Api-Key no-dot-here").get("/api/v1/accounts"))


def test_no_key_answers_401(anonymous_client, db):
    _assert_not_authenticated(anonymous_client.get("/api/v1/accounts"))


def test_bearer_scheme_is_not_accepted(alice):
    _key, plain = services.api_key_create(user=alice, name="bot", scopes=["trade"])

    response = _client(HTTP_AUTHORIZATION=f"Bearer {plain}").get("/api/v1/accounts")

    _assert_not_authenticated(response)
    assert response["WWW-Authenticate"] == "Api-Key"


def test_x_api_key_header_authenticates(alice, alice_account):
    _key, plain = services.api_key_create(user=alice, name="bot", scopes=["read"])

    response = _client(HTTP_X_API_KEY=plain).get("/api/v1/accounts")

    assert response.status_code == 200, response.content
    assert [a["account_id"] for a in response.json()["accounts"]] == [str(alice_account.account_id)]


def test_key_of_a_deactivated_user_answers_401(alice):
    _key, plain = services.api_key_create(user=alice, name="bot", scopes=["trade"])
    alice.is_active = False
    alice.save()

    _assert_not_authenticated(_client(HTTP_AUTHORIZATION=f"Api-Key {plain}").get("/api/v1/accounts"))


def test_last_used_at_is_set_when_the_key_is_used(alice):
    key, plain = services.api_key_create(user=alice, name="bot", scopes=["read"])
    assert key.last_used_at is None

    _client(HTTP_AUTHORIZATION=f"Api-Key {plain}").get("/api/v1/accounts")

    key.refresh_from_db()
    assert key.last_used_at is not None
    # A failed request with another key does not touch it.
    first_use = key.last_used_at
    _client(HTTP_AUTHORIZATION="Api-Key abcdefgh.notakey").get("/api/v1/accounts")
    key.refresh_from_db()
    assert key.last_used_at == first_use


# --- Scopes ------------------------------------------------------------------------------------------------
MONEY_AND_STATUS_ACTIONS = [
    ("deposits", {"asset": "USD", "amount": "5", "reason": "try"}),
    ("withdrawals", {"asset": "USD", "amount": "5", "reason": "try"}),
    ("adjustments", {"asset": "USD", "amount": "5", "reason": "try"}),
    ("suspend", {"reason": "try"}),
    ("close", {"reason": "try"}),
]


@pytest.mark.parametrize(("action", "body"), MONEY_AND_STATUS_ACTIONS, ids=[a for a, _ in MONEY_AND_STATUS_ACTIONS])
def test_read_key_cannot_move_money_or_change_status(alice_reader, alice_account, action, body):
    before = _money()

    response = alice_reader.post(f"/api/v1/accounts/{alice_account.account_id}/{action}", body, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert _money() == before
    assert Balance.objects.get(account=alice_account, asset_id="USD").available == Decimal("10000")


def test_read_key_cannot_open_an_account(alice_reader, alice_account):
    response = alice_reader.post("/api/v1/accounts", {"label": "second"}, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert Account.objects.count() == 1


def test_read_key_can_read_its_owners_account(alice_reader, alice_account):
    response = alice_reader.get(f"/api/v1/accounts/{alice_account.account_id}/balances")

    assert response.status_code == 200
    usd = next(b for b in response.json()["balances"] if b["asset"] == "USD")
    assert usd["available"] == "10000.00"


@pytest.mark.parametrize(("action", "body"), MONEY_AND_STATUS_ACTIONS, ids=[a for a, _ in MONEY_AND_STATUS_ACTIONS])
def test_trade_key_cannot_do_operator_actions_even_on_its_own_account(alice_client, alice_account, action, body):
    before = _money()

    response = alice_client.post(f"/api/v1/accounts/{alice_account.account_id}/{action}", body, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert _money() == before


def test_trade_key_cannot_reactivate_a_suspended_account(alice_client, alice_account, operator_user):
    services.account_suspend(account=alice_account, actor=operator_user, reason="kyc")

    response = alice_client.post(f"/api/v1/accounts/{alice_account.account_id}/reactivate", {}, format="json")

    assert response.status_code == 403
    alice_account.refresh_from_db()
    assert alice_account.status == "suspended"


def test_operator_key_can_deposit(operator_client, alice_account):
    response = operator_client.post(
        f"/api/v1/accounts/{alice_account.account_id}/deposits",
        {"asset": "USD", "amount": "5", "reason": "wire"},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert Balance.objects.get(account=alice_account, asset_id="USD").available == Decimal("10005")


def test_trade_key_of_another_user_sees_no_account(bob_client, alice_account):
    response = bob_client.get(f"/api/v1/accounts/{alice_account.account_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_scopes_grant_what_they_name():
    user = UserFactory(username="dave")
    read, _ = services.api_key_create(user=user, name="r", scopes=["read"])
    trade, _ = services.api_key_create(user=user, name="t", scopes=["trade"])
    operator, _ = services.api_key_create(user=user, name="o", scopes=["operator"])
    monitor, _ = services.api_key_create(user=user, name="m", scopes=["monitor"])

    assert read.granted() == {"read"}
    assert trade.granted() == {"read", "trade"}
    # Operators act on the books, not on behalf of customers: no trade scope. They read what monitors read.
    assert operator.granted() == {"read", "monitor", "operator"}
    assert monitor.granted() == {"read", "monitor"}


def test_create_api_key_binds_the_key_to_one_of_the_users_accounts(alice):
    account = services.account_create(owner=alice, label="bot")
    out = StringIO()
    call_command(
        "create_api_key", user="alice", scopes="trade", account=str(account.account_id), stdout=out, stderr=StringIO()
    )
    key = ApiKey.objects.get(user=alice)
    assert key.account == account
    assert len(out.getvalue().splitlines()) == 2


def test_create_api_key_refuses_another_users_account(alice):
    from django.contrib.auth.models import User

    bob = User.objects.create_user(username="bob")
    account = services.account_create(owner=bob)
    with pytest.raises(CommandError):
        call_command(
            "create_api_key",
            user="alice",
            scopes="trade",
            account=str(account.account_id),
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert not ApiKey.objects.filter(user=alice).exists()


# --- POST /api/v1/api-keys ---------------------------------------------------------------------------------------
def test_an_operator_issues_a_key_and_its_signing_secret_over_the_api(operator_client, alice):
    account = services.account_create(owner=alice, label="bot")
    response = operator_client.post(
        "/api/v1/api-keys",
        {"user": "alice", "scopes": ["read", "trade"], "name": "bot", "account_id": str(account.account_id)},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    key = ApiKey.objects.get(prefix=body["prefix"])
    assert (key.user, key.account, key.scopes) == (alice, account, ["read", "trade"])
    assert body["account_id"] == str(account.account_id) and body["user"] == "alice"
    assert key.is_valid(body["key"]) and signing_secret_decrypt(key.signing_secret_encrypted) == body["signing_secret"]
    assert _client(HTTP_AUTHORIZATION=f"Api-Key {body['key']}").get("/api/v1/accounts").status_code == 200


def test_issuing_keys_is_for_operators_and_for_the_users_own_accounts(operator_client, alice_client, alice, bob):
    bobs = services.account_create(owner=bob, label="b")
    refused = alice_client.post("/api/v1/api-keys", {"user": "alice", "scopes": ["trade"]}, format="json")
    assert refused.status_code == 403
    wrong_account = operator_client.post(
        "/api/v1/api-keys", {"user": "alice", "scopes": ["trade"], "account_id": str(bobs.account_id)}, format="json"
    )
    assert wrong_account.status_code == 404
    unknown = operator_client.post("/api/v1/api-keys", {"user": "nobody", "scopes": ["read"]}, format="json")
    assert unknown.status_code == 404
    without_account = operator_client.post("/api/v1/api-keys", {"user": "alice", "scopes": ["read"]}, format="json")
    assert without_account.status_code == 201 and without_account.json()["account_id"] is None
    assert ApiKey.objects.filter(user=alice, name="alice-key").count() == 1

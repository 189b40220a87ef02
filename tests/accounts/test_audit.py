"""Who changed what: account history records the acting user, the audit endpoint tells the account's story in
time order, and history cannot be used to undo anything from the admin."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Account, ApiKey
from accounts.selectors import account_audit
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def _change_form(account: Account, **changes: Any) -> dict[str, Any]:
    """The POST body of the account change page (the balances inline is read-only: no forms in it)."""
    return {
        "owner": account.owner_id,
        "label": account.label,
        "balances-TOTAL_FORMS": "0",
        "balances-INITIAL_FORMS": "0",
        "balances-MIN_NUM_FORMS": "0",
        "balances-MAX_NUM_FORMS": "0",
        "_save": "Save",
        **changes,
    }


# --- Who changed an account --------------------------------------------------------------------------------
def test_suspend_through_the_api_is_recorded_with_the_operator_as_the_actor(
    operator_client, operator_user, alice_account
):
    response = operator_client.post(
        f"/api/v1/accounts/{alice_account.account_id}/suspend", {"reason": "kyc review"}, format="json"
    )
    assert response.status_code == 200, response.content

    latest = alice_account.history.latest("history_id")
    assert latest.status == "suspended"
    assert latest.history_type == "~"
    assert latest.history_user == operator_user
    assert latest.history_change_reason == "kyc review"
    # The creation is the owner's own doing (make_account opens it without an operator).
    assert alice_account.history.earliest("history_id").history_user.username == "alice"


def test_admin_change_is_recorded_with_the_admin_as_the_actor(admin_client, admin_user, alice_account):
    url = reverse("admin:accounts_account_change", args=[alice_account.pk])

    response = admin_client.post(url, _change_form(alice_account, label="savings"))

    assert response.status_code == 302, response.content
    alice_account.refresh_from_db()
    assert alice_account.label == "savings"
    latest = alice_account.history.latest("history_id")
    assert (latest.label, latest.history_user) == ("savings", admin_user)


def test_admin_suspend_action_is_recorded_with_the_admin_as_the_actor(admin_client, admin_user, alice_account):
    response = admin_client.post(
        reverse("admin:accounts_account_changelist"),
        {"action": "suspend", "_selected_action": [alice_account.pk]},
    )

    assert response.status_code == 302
    latest = alice_account.history.latest("history_id")
    assert (latest.status, latest.history_user, latest.history_change_reason) == (
        "suspended",
        admin_user,
        "admin: suspended",
    )


# --- The audit endpoint ------------------------------------------------------------------------------------
def test_audit_tells_the_accounts_story_in_time_order_with_actor_names(alice_client, operator_client):
    # alice opens an account; the operator funds it, suspends it, lets it go again, and pays some out.
    created = alice_client.post("/api/v1/accounts", {"label": "main"}, format="json")
    assert created.status_code == 201, created.content
    account_id = created.json()["account_id"]
    base = f"/api/v1/accounts/{account_id}"
    steps = [
        ("deposits", {"asset": "USD", "amount": "100.00", "reason": "wire 1"}),
        ("suspend", {"reason": "kyc"}),
        ("reactivate", {"reason": "kyc ok"}),
        ("withdrawals", {"asset": "USD", "amount": "40.00", "reason": "payout"}),
        ("deposits", {"asset": "BTC", "amount": "0.5", "reason": "on-chain"}),
    ]
    for action, body in steps:
        response = operator_client.post(f"{base}/{action}", body, format="json")
        assert response.status_code in (200, 201), (action, response.content)

    response = alice_client.get(f"{base}/audit")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account_id"] == account_id
    events = body["events"]
    story = [
        (
            e["type"],
            e.get("change") or e["kind"],
            e["actor"],
            e.get("status") or e.get("asset"),
            e.get("reason") or e.get("memo"),
        )
        for e in events
    ]
    assert story == [
        ("account_change", "created", "alice", "active", None),
        ("journal_entry", "deposit", "operator", "USD", "wire 1"),
        ("account_change", "changed", "operator", "suspended", "kyc"),
        ("account_change", "changed", "operator", "active", "kyc ok"),
        ("journal_entry", "withdrawal", "operator", "USD", "payout"),
        ("journal_entry", "deposit", "operator", "BTC", "on-chain"),
    ]
    amounts = [(e["asset"], e["bucket"], Decimal(e["amount"])) for e in events if e["type"] == "journal_entry"]
    assert amounts == [
        ("USD", "available", Decimal("100")),
        ("USD", "available", Decimal("-40")),
        ("BTC", "available", Decimal("0.5")),
    ]
    timestamps = [datetime.fromisoformat(e["at"]) for e in events]
    assert timestamps == sorted(timestamps)


def test_audit_of_another_users_account_is_not_found(bob_client, alice_account):
    response = bob_client.get(f"/api/v1/accounts/{alice_account.account_id}/audit")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_operator_reads_any_accounts_audit(operator_client, alice_account):
    response = operator_client.get(f"/api/v1/accounts/{alice_account.account_id}/audit")

    assert response.status_code == 200
    kinds = [e.get("change") or e.get("kind") for e in response.json()["events"]]
    assert kinds == ["created", "deposit"]


# --- History cannot undo anything --------------------------------------------------------------------------
def test_history_revert_is_disabled_in_the_admin(admin_client, alice_account):
    assert settings.SIMPLE_HISTORY_REVERT_DISABLED is True
    created = alice_account.history.earliest("history_id")
    admin_client.post(
        reverse("admin:accounts_account_change", args=[alice_account.pk]), _change_form(alice_account, label="renamed")
    )
    url = reverse("admin:accounts_account_simple_history", args=[alice_account.pk, created.history_id])

    page = admin_client.get(url)
    assert page.status_code == 200
    assert b'value="Revert"' not in page.content

    # Posting the old version anyway (the button is only hidden) must not bring it back.
    response = admin_client.post(url, _change_form(alice_account, label="main"))

    assert response.status_code == 403
    alice_account.refresh_from_db()
    assert alice_account.label == "renamed"


def test_a_revoked_key_cannot_be_revived_from_its_history_in_the_admin(admin_client, alice):
    key, plain = services.api_key_create(user=alice, name="bot", scopes=["trade"])
    created = key.history.earliest("history_id")
    services.api_key_revoke(key=key, actor=alice)
    url = reverse("admin:accounts_apikey_simple_history", args=[key.pk, created.history_id])

    response = admin_client.post(url, {"user": alice.pk, "name": "bot", "scopes": '["trade"]', "_save": "Revert"})

    assert response.status_code == 403
    key.refresh_from_db()
    assert key.revoked is True
    assert key.is_valid(plain)  # the hash was not touched either


def test_api_key_changes_are_in_history_without_the_hashed_key(alice, operator_user):
    key, _plain = services.api_key_create(user=alice, name="bot", scopes=["read"], actor=operator_user)
    services.api_key_revoke(key=key, actor=operator_user)

    history_fields = {f.name for f in ApiKey.history.model._meta.get_fields()}
    assert "hashed_key" not in history_fields
    assert {"prefix", "name", "scopes", "revoked", "user"} <= history_fields
    records = list(key.history.order_by("history_id").values("history_type", "revoked", "history_user__username"))
    assert records == [
        {"history_type": "+", "revoked": False, "history_user__username": "operator"},
        {"history_type": "~", "revoked": True, "history_user__username": "operator"},
    ]
    # Not under another name either (the library's default id is "<prefix>.<hashed key>").
    digest = key.hashed_key.split("$")[-1]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(ApiKey.history.model._meta.db_table)}")
        history_rows = cursor.fetchall()
    assert len(history_rows) == 2
    assert not [value for row in history_rows for value in row if digest in str(value)]
    assert key.pk == key.prefix
    # Using a key (last_used_at) is not a change worth a history row.
    key2, plain2 = services.api_key_create(user=alice, name="bot2", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain2}")
    assert client.get("/api/v1/accounts").status_code == 200
    assert key2.history.count() == 1


def test_deposits_made_by_a_service_without_an_actor_show_no_actor(alice):
    account = make_account(owner=alice, funds={"USD": "5"})

    events = account_audit(account=account).events

    assert [(e["type"], e["actor"]) for e in events] == [("account_change", "alice"), ("journal_entry", None)]


# --- Paging: bounded responses however long the history ------------------------------------------------------
def test_audit_is_read_a_page_at_a_time_in_time_order(alice_client, operator_user, alice):
    account = make_account(owner=alice)
    for i in range(7):
        services.deposit_create(account=account, asset="USD", amount=f"{i + 1}.00", actor=operator_user)
        if i == 3:
            services.account_suspend(account=account, actor=operator_user, reason="review")
            services.account_reactivate(account=account, actor=operator_user, reason="cleared")
    url = f"/api/v1/accounts/{account.account_id}/audit?limit=3"

    pages, next_url = [], url
    while next_url:
        body = alice_client.get(next_url).json()
        assert len(body["events"]) <= 3
        pages.append(body)
        next_url = body["next"]

    events = [e for page in pages for e in page["events"]]
    assert [e.get("amount") or e["change"] for e in events] == [
        "created", "1.00", "2.00", "3.00", "4.00", "changed", "changed", "5.00", "6.00", "7.00",
    ]  # fmt: skip
    assert len(pages) == 4 and pages[0]["previous"] is None
    # Walking back from the last page gives the same pages.
    back = alice_client.get(pages[-1]["previous"]).json()
    assert back["events"] == pages[-2]["events"]
    assert alice_client.get(back["previous"]).json()["events"] == pages[-3]["events"]


def test_audit_pages_are_bounded_and_a_forged_cursor_is_refused(alice_client, alice_account):
    base = f"/api/v1/accounts/{alice_account.account_id}/audit"

    assert alice_client.get(f"{base}?limit=501").json()["error"]["code"] == "validation_error"
    # A cursor this service did not hand out names no page, as for every list.
    assert alice_client.get(f"{base}?cursor=not-ours").json()["error"]["code"] == "not_found"
    body = alice_client.get(base).json()
    assert set(body) == {"account_id", "events", "next", "previous"}
    assert body["next"] is None and body["previous"] is None

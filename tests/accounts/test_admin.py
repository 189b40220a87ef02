"""The operator's admin: list pages cost a fixed number of queries, money moves only through the services, the
ledger can be read but never edited, and a new API key is shown once and stored as a hash."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Account, ApiKey, Balance
from accounts.signing import signing_secret_decrypt
from ledger.models import EntryKind, JournalEntry, LedgerAccount, Posting
from tests.factories import UserFactory, make_account

pytestmark = pytest.mark.django_db

# Session, user, the page's own queries and the count for the paginator: far below this whatever the rows.
QUERY_BOUND = 15

CHANGELISTS = [
    "admin:accounts_account_changelist",
    "admin:accounts_apikey_changelist",
    "admin:ledger_journalentry_changelist",
    "admin:ledger_posting_changelist",
    "admin:ledger_ledgeraccount_changelist",
]


def _populate(count: int, *, operator: Any) -> None:
    """``count`` customers, each with an account, a deposit by the operator and an API key."""
    start = Account.objects.count()
    for n in range(start, start + count):
        user = UserFactory(username=f"customer{n}")
        account = make_account(owner=user, label=f"acct{n}")
        services.deposit_create(account=account, asset="USD", amount=f"{n + 1}.25", actor=operator, reason="wire")
        services.api_key_create(user=user, name=f"bot{n}", scopes=["trade"])


def _queries_for(client: Any, url: str, bound: int, django_assert_max_num_queries: Any) -> int:
    with django_assert_max_num_queries(bound) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(captured)


@pytest.mark.parametrize("url_name", CHANGELISTS)
def test_changelist_costs_the_same_queries_for_3_rows_as_for_30(
    admin_client, admin_user, url_name, django_assert_max_num_queries
):
    url = reverse(url_name)
    _populate(3, operator=admin_user)
    admin_client.get(url)  # warm the per-process caches (content types) so both measurements are alike

    with_3 = _queries_for(admin_client, url, QUERY_BOUND, django_assert_max_num_queries)
    _populate(27, operator=admin_user)
    with_30 = _queries_for(admin_client, url, QUERY_BOUND, django_assert_max_num_queries)

    assert with_30 == with_3


def test_account_changelist_shows_holdings(admin_client, alice_account):
    response = admin_client.get(reverse("admin:accounts_account_changelist"))

    assert b"10,000.00 USD" in response.content


# --- The account page ----------------------------------------------------------------------------------
def test_account_change_page_shows_balances_inline_and_read_only(admin_client, alice_account):
    response = admin_client.get(reverse("admin:accounts_account_change", args=[alice_account.pk]))

    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    assert inline.opts.model is Balance
    assert set(inline.readonly_fields) >= {"asset", "available", "locked"}
    assert not inline.has_add_permission
    assert inline.formset.can_delete is False
    html = response.content.decode()
    for asset in ("BTC", "ETH", "USD", "USDT"):
        assert asset in html
    assert "10000" in html
    # No form field through which a balance could be typed in.
    assert not re.search(r'name="balances-\d+-(available|locked)"', html)
    # Status changes only through the actions (services), never by editing the field.
    assert 'name="status"' not in html


def test_account_change_cannot_touch_balances(admin_client, alice_account):
    url = reverse("admin:accounts_account_change", args=[alice_account.pk])
    body = {
        "owner": alice_account.owner_id,
        "label": "main",
        "status": "closed",
        "balances-TOTAL_FORMS": "1",
        "balances-INITIAL_FORMS": "1",
        "balances-MIN_NUM_FORMS": "0",
        "balances-MAX_NUM_FORMS": "1000",
        "balances-0-id": Balance.objects.get(account=alice_account, asset_id="USD").pk,
        "balances-0-account": alice_account.pk,
        "balances-0-available": "99999999",
    }

    admin_client.post(url, body)

    alice_account.refresh_from_db()
    assert alice_account.status == "active"
    assert Balance.objects.get(account=alice_account, asset_id="USD").available == Decimal("10000")


def test_accounts_cannot_be_deleted_in_the_admin(admin_client, alice_account):
    response = admin_client.post(reverse("admin:accounts_account_delete", args=[alice_account.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert Account.objects.filter(pk=alice_account.pk).exists()


def test_creating_an_account_in_the_admin_opens_it_through_the_service(admin_client, admin_user, alice):
    response = admin_client.post(
        reverse("admin:accounts_account_add"),
        {
            "owner": alice.pk,
            "label": " desk ",
            "balances-TOTAL_FORMS": "0",
            "balances-INITIAL_FORMS": "0",
            "balances-MIN_NUM_FORMS": "0",
            "balances-MAX_NUM_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    account = Account.objects.get(owner=alice)
    assert account.label == "desk"  # stripped by the service
    assert sorted(Balance.objects.filter(account=account).values_list("asset_id", "available", "locked")) == [
        ("BTC", 0, 0),
        ("ETH", 0, 0),
        ("USD", 0, 0),
        ("USDT", 0, 0),
    ]
    assert LedgerAccount.objects.filter(account=account).count() == 8  # available and locked per asset
    assert account.history.get().history_user == admin_user
    assert response["Location"] in (
        reverse("admin:accounts_account_changelist"),
        reverse("admin:accounts_account_change", args=[account.pk]),
    )


# --- Actions -----------------------------------------------------------------------------------------------
def _action_url(account: Account, action: str) -> str:
    return reverse(f"admin:accounts_account_{action}", args=[account.pk])


def _form_key(response: Any) -> str:
    return re.search(rb'name="idempotency_key" value="([^"]+)"', response.content).group(1).decode()


def test_the_account_page_offers_every_action_and_links_its_activity(admin_client, alice_account):
    response = admin_client.get(reverse("admin:accounts_account_change", args=[alice_account.pk]))

    html = response.content.decode()
    assert f"Account {alice_account.account_id}" in html
    for action in ("deposit", "withdraw", "adjust", "suspend", "reactivate", "close", "cancel-orders"):
        assert _action_url(alice_account, action) in html
    for link in (
        f"/admin/orders/order/?account__id__exact={alice_account.pk}&amp;status__in=open,partially_filled",
        f"/admin/orders/fill/?account__id__exact={alice_account.pk}",
        f"/admin/ledger/posting/?account__id__exact={alice_account.pk}",
    ):
        assert link in html
        assert admin_client.get(link.replace("&amp;", "&")).status_code == 200
    assert "10,000.00 USD" in html and "0.00000000 BTC" in html


def test_a_deposit_is_confirmed_then_recorded_once_however_often_it_is_submitted(
    admin_client, admin_user, alice_account
):
    url = _action_url(alice_account, "deposit")
    key = _form_key(admin_client.get(url))
    typed = {"asset": "BTC", "amount": "0.25", "reason": "cold wallet top-up", "idempotency_key": key}

    confirmation = admin_client.post(url, typed)

    assert b"Please confirm" in confirmation.content and key.encode() in confirmation.content
    assert Balance.objects.get(account=alice_account, asset_id="BTC").available == 0
    done = admin_client.post(url, {**typed, "confirm": "1"})
    assert done.status_code == 302
    # Back and submit again, or a double click: the same key, the entry already made.
    again = admin_client.post(url, {**typed, "confirm": "1"}, follow=True)
    assert "Already done" in again.content.decode()
    assert Balance.objects.get(account=alice_account, asset_id="BTC").available == Decimal("0.25")
    [entry] = JournalEntry.objects.filter(kind=EntryKind.DEPOSIT, metadata__asset="BTC")
    assert (entry.actor, entry.memo, entry.idempotency_key) == (admin_user, "cold wallet top-up", key)
    assert sorted(entry.postings.values_list("ledger_account__kind", "amount")) == [
        ("customer_available", Decimal("0.25")),
        ("external", Decimal("-0.25")),
    ]


def test_a_refused_withdrawal_shows_only_its_error_and_keeps_what_was_typed(admin_client, alice_account):
    url = _action_url(alice_account, "withdraw")
    key = _form_key(admin_client.get(url))
    entries = JournalEntry.objects.count()

    response = admin_client.post(
        url, {"asset": "USD", "amount": "20000.00", "reason": "too much", "idempotency_key": key, "confirm": "1"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, flags=re.S) == [
        "<li>Insufficient available balance.</li>"
    ]
    assert 'value="20000.00"' in html and 'value="too much"' in html and key in html
    assert JournalEntry.objects.count() == entries
    assert Balance.objects.get(account=alice_account, asset_id="USD").available == Decimal("10000")


def test_an_amount_finer_than_the_asset_is_refused_with_the_reason(admin_client, alice_account):
    url = _action_url(alice_account, "deposit")
    body = {"asset": "USD", "amount": "0.001", "reason": "dust", "idempotency_key": "admin:x", "confirm": "1"}

    response = admin_client.post(url, body)

    assert "USD amounts have at most 2 decimal places." in response.content.decode()
    assert Balance.objects.get(account=alice_account, asset_id="USD").available == Decimal("10000")


def test_an_adjustment_may_be_negative(admin_client, alice_account):
    url = _action_url(alice_account, "adjust")
    body = {"asset": "USD", "amount": "-0.50", "reason": "fee refund reversed", "idempotency_key": "admin:adj-1"}

    assert admin_client.post(url, {**body, "confirm": "1"}).status_code == 302
    assert Balance.objects.get(account=alice_account, asset_id="USD").available == Decimal("9999.50")


def test_suspend_reactivate_and_close_from_the_account_page(admin_client, alice, alice_account):
    for action, status in (("suspend", "suspended"), ("reactivate", "active")):
        response = admin_client.post(
            _action_url(alice_account, action), {"reason": "desk call", "idempotency_key": "k", "confirm": "1"}
        )
        assert response.status_code == 302
        alice_account.refresh_from_db()
        assert alice_account.status == status
    # Submitted again: nothing changes, and the operator is told so.
    again = admin_client.post(
        _action_url(alice_account, "reactivate"), {"idempotency_key": "k", "confirm": "1"}, follow=True
    )
    assert "already active" in again.content.decode()
    # Close refuses while money is held, and says why.
    refused = admin_client.post(_action_url(alice_account, "close"), {"idempotency_key": "k", "confirm": "1"})
    assert "withdraw them before closing" in refused.content.decode()
    empty = make_account(owner=alice, label="empty")
    assert admin_client.post(_action_url(empty, "close"), {"idempotency_key": "k", "confirm": "1"}).status_code == 302
    empty.refresh_from_db()
    assert empty.status == "closed"


def test_cancel_open_orders_goes_through_the_order_service(admin_client, alice_account):
    from markets.models import Market
    from orders.services import OrderRequest, order_place

    # A resting buy of 0.1 BTC at 60,000.00 locks 6,000.00 + 3.00 maker fee of alice's 10,000.00 USD.
    placed, _ = order_place(
        request=OrderRequest(
            account=alice_account,
            market=Market.objects.get(symbol="BTC-USD"),
            side="buy",
            order_type="limit",
            price=Decimal("60000.00"),
            quantity=Decimal("0.1"),
        ),
        actor=alice_account.owner,
    )
    assert placed.order.status == "open" and placed.order.locked == Decimal("6003.00")

    response = admin_client.post(
        _action_url(alice_account, "cancel-orders"), {"idempotency_key": "k", "confirm": "1"}, follow=True
    )

    assert "1 open order(s) cancelled, their reservations released." in response.content.decode()
    placed.order.refresh_from_db()
    assert (placed.order.status, placed.order.locked) == ("cancelled", Decimal(0))
    usd = alice_account.balances.get(asset_id="USD")
    assert (usd.available, usd.locked) == (Decimal("10000.00"), Decimal(0))


def test_customer_ledger_accounts_show_the_real_balance(admin_client, alice_account):
    response = admin_client.get(reverse("admin:ledger_ledgeraccount_changelist") + f"?q={alice_account.account_id}")

    html = response.content.decode()
    assert "10,000.00 USD" in html


def test_suspend_and_reactivate_actions_go_through_the_services(admin_client, admin_user, alice_account):
    url = reverse("admin:accounts_account_changelist")

    admin_client.post(url, {"action": "suspend", "_selected_action": [alice_account.pk]})
    alice_account.refresh_from_db()
    assert alice_account.status == "suspended"

    # Suspending twice is an invalid transition: reported, nothing recorded.
    records = alice_account.history.count()
    response = admin_client.post(url, {"action": "suspend", "_selected_action": [alice_account.pk]})
    assert any("cannot become suspended" in str(m) for m in get_messages(response.wsgi_request))
    assert alice_account.history.count() == records

    admin_client.post(url, {"action": "reactivate", "_selected_action": [alice_account.pk]})
    alice_account.refresh_from_db()
    assert alice_account.status == "active"
    changes = list(
        alice_account.history.order_by("history_id").values_list(
            "status", "history_user__username", "history_change_reason"
        )
    )
    assert changes[1:] == [("suspended", "admin", "admin: suspended"), ("active", "admin", "admin: reactivated")]


# --- Ledger screens are read-only --------------------------------------------------------------------------
def _ledger_objects(account: Account) -> dict[str, Any]:
    entry = JournalEntry.objects.filter(reference_id=str(account.account_id)).first()
    return {
        "journalentry": entry,
        "posting": entry.postings.first(),
        "ledgeraccount": LedgerAccount.objects.filter(account=account).first(),
    }


@pytest.mark.parametrize("model", ["journalentry", "posting", "ledgeraccount", "asset"])
def test_ledger_screens_refuse_add(admin_client, model):
    assert admin_client.get(reverse(f"admin:ledger_{model}_add")).status_code == 403
    assert admin_client.post(reverse(f"admin:ledger_{model}_add"), {}).status_code == 403


@pytest.mark.parametrize("model", ["journalentry", "posting", "ledgeraccount"])
def test_ledger_screens_can_be_read_but_not_changed_or_deleted(admin_client, alice_account, model):
    obj = _ledger_objects(alice_account)[model]
    change_url = reverse(f"admin:ledger_{model}_change", args=[obj.pk])
    before = {
        "journalentry": lambda: list(JournalEntry.objects.values_list("memo", "kind", "actor_id")),
        "posting": lambda: list(Posting.objects.values_list("amount", "ledger_account_id")),
        "ledgeraccount": lambda: list(LedgerAccount.objects.values_list("balance", "kind")),
    }[model]
    snapshot = before()

    assert admin_client.get(change_url).status_code == 200
    changed = admin_client.post(change_url, {"memo": "rewritten", "amount": "1", "balance": "1", "kind": "fee"})
    deleted = admin_client.post(reverse(f"admin:ledger_{model}_delete", args=[obj.pk]), {"post": "yes"})

    assert changed.status_code == 403
    assert deleted.status_code == 403
    assert before() == snapshot


def test_journal_entry_page_shows_its_postings(admin_client, alice_account):
    entry = _ledger_objects(alice_account)["journalentry"]

    response = admin_client.get(reverse("admin:ledger_journalentry_change", args=[entry.pk]))

    (inline,) = response.context["inline_admin_formsets"]
    assert inline.opts.model is Posting
    assert len(list(inline)) == 2


# --- API keys ----------------------------------------------------------------------------------------------
def test_creating_an_api_key_in_the_admin_shows_it_once_and_stores_only_the_hash(admin_client, admin_user, alice):
    response = admin_client.post(
        reverse("admin:accounts_apikey_add"),
        {"user": alice.pk, "name": "desk bot", "scopes": '["read", "trade"]', "expiry_date_0": "", "expiry_date_1": ""},
        follow=True,
    )

    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"] if "you will not be able to see it again" in str(m)]
    assert len(shown) == 1
    plain = re.search(r"is: (\S+)\. Please", shown[0]).group(1)
    key = ApiKey.objects.get(user=alice)
    assert (key.name, key.scopes, key.prefix) == ("desk bot", ["read", "trade"], plain.split(".")[0])
    assert key.history.get().history_user == admin_user

    # Only the hash is kept: the key is in no column of the key table or its history ...
    with connection.cursor() as cursor:
        for table in (ApiKey._meta.db_table, ApiKey.history.model._meta.db_table):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            assert not [v for row in cursor.fetchall() for v in row if plain in str(v)]
    # ... and not on its page afterwards; but it works.
    page = admin_client.get(reverse("admin:accounts_apikey_change", args=[key.pk]))
    assert plain.encode() not in page.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/accounts").status_code == 200

    # Its signing secret (Binance-compatible API) is shown once too, stored only encrypted, never on its page.
    (secret_message,) = [str(m) for m in response.context["messages"] if "signing secret" in str(m)]
    secret = re.search(r"is: (\S+)\. It cannot", secret_message).group(1)
    assert signing_secret_decrypt(key.signing_secret_encrypted) == secret
    assert secret not in key.signing_secret_encrypted and secret.encode() not in page.content


def test_api_key_changelist_never_shows_hashes(admin_client, alice):
    key, _plain = services.api_key_create(user=alice, name="bot", scopes=["read"])

    response = admin_client.get(reverse("admin:accounts_apikey_changelist"))

    assert key.prefix.encode() in response.content
    assert key.hashed_key.split("$")[-1].encode() not in response.content

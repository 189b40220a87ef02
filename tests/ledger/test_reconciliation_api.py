"""GET /api/v1/reconciliation: operators run the reconcile proof over the API. The answer is 200 either way; a
failed reconciliation is ok=false with the discrepancies (it is a finding about the books, not a failed request)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts import services as account_services
from orders.models import Trade

pytestmark = pytest.mark.django_db

URL = "/api/v1/reconciliation"


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "USD": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


@pytest.fixture
def bought(alice_client, alice_account, house) -> dict:
    body = {
        "account_id": str(alice_account.account_id),
        "symbol": "BTC-USD",
        "side": "buy",
        "order_type": "market",
        "quantity": "0.1",
    }
    response = alice_client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_operator_gets_an_ok_report_with_checks_and_totals(operator_client, bought):
    response = operator_client.get(URL)

    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True and report["discrepancies"] == []
    assert report["checks"]["trades"] == 1 and report["checks"]["orders_settled"] == 1
    assert report["checks"]["entries"] >= 4  # two house fundings, the deposit, the fill
    assert report["totals"]["BTC"] == {"customers": "0.1", "external": "-80", "house": "79.9", "sum": "0"}
    assert report["totals"]["USD"]["fees"] == "6.51" and report["totals"]["USD"]["sum"] == "0"


@pytest.mark.corrupts_ledger
def test_a_broken_settlement_answers_200_with_ok_false_naming_the_trade(operator_client, bought):
    trade_id = bought["fills"][0]["trade_id"]
    Trade.objects.filter(trade_id=trade_id).update(quantity=D("0.2"))

    response = operator_client.get(URL)

    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is False
    named = [d for d in report["discrepancies"] if d.get("trade_id") == trade_id]
    assert {d["check"] for d in named} >= {"trade_postings_mismatch", "trade_pricing_mismatch"}
    assert all(d.get("taker_order_id", d.get("order_id")) == bought["order_id"] for d in named)
    assert {"check", "trade_id", "entry_id", "taker_order_id"} <= set(named[0])


def test_reconciliation_is_for_operators_only(alice_client, alice_reader, bob_client, anonymous_client, db):
    for client in (alice_client, alice_reader, bob_client):
        response = client.get(URL)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert anonymous_client.get(URL).status_code == 401


def test_reconciliation_is_read_only(operator_client, db):
    assert operator_client.post(URL, {}, format="json").status_code == 405

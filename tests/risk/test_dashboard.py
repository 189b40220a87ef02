"""The operators' dashboard in the admin, and the market actions: what an operator sees after trading, and the
reconciliation button."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from markets.models import Market
from risk.monitoring import risk_summary

pytestmark = pytest.mark.django_db


def place(client, account, **fields):
    body = {"account_id": str(account.account_id), "order_type": "market", "symbol": "BTC-USD", **fields}
    return client.post("/api/v1/orders", body, format="json")


def test_the_index_links_the_dashboard(admin_client):
    assert reverse("admin:dashboard").encode() in admin_client.get(reverse("admin:index")).content


def test_dashboard_shows_the_risk_figures_order_flow_and_rejections(
    admin_client, alice_client, alice_account, house, settings
):
    assert place(alice_client, alice_account, side="buy", quantity="0.1").status_code == 201
    assert place(alice_client, alice_account, side="buy", quantity="10").status_code == 422  # insufficient_balance
    settings.RISK_HOUSE_INVENTORY_LOW_USD = "7000000"  # 99.9 BTC x 65,000 = 6,493,500: below

    html = admin_client.get(reverse("admin:dashboard")).content.decode()

    summary = risk_summary()
    for total in ("house_inventory_usd", "net_exposure_usd", "customer_liabilities_usd", "fees_earned_usd"):
        assert f">{summary['totals'][total]}<" in html, total
    assert "99.90000000 BTC" in html  # the house's BTC after selling 0.1
    assert "2 orders in the last hour, 1 rejected" in html
    assert html.count('<rect class="orders"') == 1 and html.count('<rect class="rejections"') == 1
    assert '<td>insufficient_balance</td><td class="num">1</td>' in html
    assert "house_inventory_low (BTC): 6493500.00 against the threshold 7000000" in html
    assert "Not run from this session yet." in html


def test_the_reconciliation_button_runs_it_and_shows_the_result(admin_client, alice_account):
    response = admin_client.post(reverse("admin:dashboard"), {"run_reconciliation": "1"}, follow=True)

    html = response.content.decode()
    assert "Reconciliation: the books reconcile." in html
    assert "the books reconcile</span>" in html


def test_set_price_halt_and_resume_from_the_market_page(admin_client):
    market = Market.objects.get(symbol="BTC-USD")
    page = admin_client.get(reverse("admin:markets_market_change", args=[market.pk])).content.decode()
    for action in ("set-price", "halt", "resume"):
        assert reverse(f"admin:markets_market_{action}", args=[market.pk]) in page

    body = {"price": "66000.00", "reason": "desk", "idempotency_key": "k", "confirm": "1"}
    assert admin_client.post(reverse("admin:markets_market_set-price", args=[market.pk]), body).status_code == 302
    refused = admin_client.post(reverse("admin:markets_market_set-price", args=[market.pk]), {**body, "price": "1.001"})
    assert "USD amounts have at most 2 decimal places." in refused.content.decode()
    halt = admin_client.post(
        reverse("admin:markets_market_halt", args=[market.pk]), {"idempotency_key": "k", "confirm": "1"}
    )
    assert halt.status_code == 302
    market.refresh_from_db()
    assert (market.reference_price, market.status) == (Decimal("66000.00"), "halted")
    admin_client.post(
        reverse("admin:markets_market_resume", args=[market.pk]), {"idempotency_key": "k", "confirm": "1"}
    )
    market.refresh_from_db()
    assert market.status == "trading"

"""Risk monitoring: the summary's figures move with trading, thresholds from configuration raise an alert and a
gauge, the per-account view, who may read them, and the gauges' behaviour across gunicorn workers.

House funding in these tests: 80 BTC, 800 ETH, 8,000,000 USD and 8,000,000 USDT. BTC-USD 65,000.00 (ask 65,032.50).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from decimal import Decimal as D
from typing import Any

import pytest
from prometheus_client import REGISTRY

from accounts import services as account_services
from tests.factories import make_account
from tests.support.commands import child_env
from tests.support.processes import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


@pytest.fixture
def warnings_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    return caplog


def log_events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [
        {**record.msg, "level": record.levelname.lower()}
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == event
    ]


def place(client, account, **fields):
    body = {"account_id": str(account.account_id), "order_type": "market", **fields}
    return client.post("/api/v1/orders", body, format="json")


def summary(client) -> dict[str, Any]:
    response = client.get("/api/v1/risk/summary")
    assert response.status_code == 200, response.content
    return response.json()


def asset_rows(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["asset"]: row for row in body["assets"]}


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_summary_figures_move_as_trades_happen(operator_client, alice_client, alice_account, house):
    before = summary(operator_client)
    btc, usd = asset_rows(before)["BTC"], asset_rows(before)["USD"]
    assert (btc["house_inventory"], btc["house_funding"], btc["net_exposure"]) == (
        "80.00000000",
        "80.00000000",
        "0.00000000",
    )
    assert btc["house_inventory_usd"] == "5200000.00" and btc["price_usd"] == "65000.00"
    assert usd["customer_liabilities"] == "10000.00" and usd["fees_earned"] == "0.00"
    assert before["order_flow"][0] == {
        "minutes": 1,
        "orders": 0,
        "rejections": 0,
        "orders_per_minute": "0.00",
        "rejections_per_minute": "0.00",
    }
    assert before["alerts"] == []

    assert place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1").status_code == 201
    refused = place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="1")  # 65,032.50 > 3,490.24
    assert refused.status_code == 422

    after = summary(operator_client)
    btc, usd = asset_rows(after)["BTC"], asset_rows(after)["USD"]
    # The house gave 0.1 BTC and took 6,503.25 USD; the 6.51 fee went to fee revenue.
    assert (btc["house_inventory"], btc["net_exposure"], btc["customer_liabilities"]) == (
        "79.90000000",
        "-0.10000000",
        "0.10000000",
    )
    assert btc["house_inventory_usd"] == "5193500.00" and btc["net_exposure_usd"] == "-6500.00"
    assert (usd["house_inventory"], usd["net_exposure"], usd["fees_earned"]) == ("8006503.25", "6503.25", "6.51")
    assert usd["customer_liabilities"] == "3490.24"
    # Every USD the customer paid is now with the house or in fees: liabilities + inventory + fees are unchanged.
    assert D(usd["customer_liabilities"]) + D(usd["house_inventory"]) + D(usd["fees_earned"]) == D("8010000.00")
    assert after["totals"]["fees_earned_usd"] == "6.51"
    assert after["totals"]["net_exposure_usd"] == "3.25"  # +6,503.25 USD - 0.1 BTC at 65,000: the half spread
    for window in after["order_flow"]:
        assert (window["orders"], window["rejections"]) == (2, 1)
    assert [w["rejections_per_minute"] for w in after["order_flow"]] == ["1.00", "0.20", "0.07"]
    [nearest] = after["accounts_nearest_limits"]
    # 0.1 BTC = 6,500.00 of 9,990.24 equity: 65.06% in one asset, 3,490.24 cash left.
    assert nearest == {
        "account_id": str(alice_account.account_id),
        "equity_usd": "9990.24",
        "largest_asset": "BTC",
        "concentration": "0.6506",
        "cash_available_usd": "3490.24",
    }
    # The gauges followed.
    assert gauge("exchange_house_inventory_usd", asset="BTC") == pytest.approx(5193500.0)
    assert gauge("exchange_net_exposure_usd", asset="USD") == pytest.approx(6503.25)
    assert gauge("exchange_fees_earned_usd", asset="USD") == pytest.approx(6.51)
    assert gauge("exchange_rejections_per_minute", window="1m") == pytest.approx(1.0)
    assert gauge("exchange_orders_per_minute", window="5m") == pytest.approx(0.4)


def test_accounts_nearest_limits_rank_by_concentration(operator_client, alice, bob, house):
    make_account(owner=alice, label="cash", funds={"USD": "5000"})
    mostly_btc = make_account(owner=alice, label="btc", funds={"BTC": "1", "USD": "100"})
    half = make_account(owner=bob, label="half", funds={"ETH": "1", "USDT": "3500"})
    all_eth = make_account(owner=bob, label="eth", funds={"ETH": "2"})

    ranked = summary(operator_client)["accounts_nearest_limits"]

    assert [row["account_id"] for row in ranked[:3]] == [str(a.account_id) for a in (all_eth, mostly_btc, half)]
    assert [row["concentration"] for row in ranked] == ["1.0000", "0.9985", "0.5000", "0.0000"]
    assert ranked[1]["cash_available_usd"] == "100.00" and ranked[2]["cash_available_usd"] == "3500.00"


def test_low_house_inventory_raises_the_alert_and_its_gauge_and_a_read_logs_nothing(
    operator_client, house, settings, warnings_log
):
    settings.RISK_HOUSE_INVENTORY_LOW_USD = "6000000"  # the local default of risk.house_inventory_low_usd

    body = summary(operator_client)

    # BTC: 80 x 65,000 = 5,200,000 < 6,000,000; ETH: 800 x 3,500 = 2,800,000 < 6,000,000; USD and USDT: 8,000,000.
    low = {alert["asset"]: alert for alert in body["alerts"] if alert["alert"] == "house_inventory_low"}
    assert sorted(low) == ["BTC", "ETH"]
    assert low["BTC"] == {"alert": "house_inventory_low", "asset": "BTC", "value": "5200000.00", "threshold": "6000000"}
    assert body["thresholds"]["house_inventory_low_usd"] == "6000000"
    # Reading the summary only reports: the risk monitor logs an alert when it starts and ends (test_risk_monitor).
    assert log_events(warnings_log, "risk_alert_started") == []
    assert gauge("exchange_risk_alert", alert="house_inventory_low", asset="BTC") == 1.0
    assert gauge("exchange_risk_alert", alert="house_inventory_low", asset="USD") == 0.0

    # Raised funding clears it: the gauge drops back.
    account_services.house_fund(asset="BTC", amount="20", actor=None)  # 100 BTC = 6,500,000
    body = summary(operator_client)
    assert sorted(a["asset"] for a in body["alerts"]) == ["ETH"]
    assert gauge("exchange_risk_alert", alert="house_inventory_low", asset="BTC") == 0.0


def test_high_rejection_rate_alerts_while_trading_goes_on(
    operator_client, alice_client, alice_account, house, settings, warnings_log
):
    settings.RISK_REJECTION_RATE_HIGH_PER_MIN = "2"
    for _ in range(3):
        assert place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="1").status_code == 422

    body = summary(operator_client)

    assert body["alerts"] == [{"alert": "rejection_rate_high", "asset": None, "value": "3", "threshold": "2"}]
    assert gauge("exchange_risk_alert", alert="rejection_rate_high", asset="") == 1.0
    assert gauge("exchange_rejections_per_minute", window="1m") == 3.0
    # The alert is a signal, not a brake: orders keep filling.
    assert place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.01").status_code == 201

    settings.RISK_REJECTION_RATE_HIGH_PER_MIN = "60"
    assert summary(operator_client)["alerts"] == []
    assert gauge("exchange_risk_alert", alert="rejection_rate_high", asset="") == 0.0


def test_risk_summary_is_for_operators_only(alice_client, alice_reader, anonymous_client):
    for client in (alice_client, alice_reader):
        response = client.get("/api/v1/risk/summary")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert anonymous_client.get("/api/v1/risk/summary").status_code == 401


def test_account_risk_shows_equity_concentration_and_recent_rejections(
    alice_client, alice_reader, bob_client, operator_client, alice_account, house
):
    assert place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1").status_code == 201
    refused = place(alice_client, alice_account, symbol="ETH-USD", side="buy", quantity="2")  # 7,007 > 3,490.24
    assert refused.status_code == 422
    path = f"/api/v1/accounts/{alice_account.account_id}/risk"

    response = alice_reader.get(path)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account_id"] == str(alice_account.account_id) and body["status"] == "active"
    assert (body["equity_usd"], body["cash_available_usd"]) == ("9990.24", "3490.24")
    assert (body["largest_asset"], body["concentration"]) == ("BTC", "0.6506")
    by_asset = {row["asset"]: row for row in body["assets"]}
    assert by_asset["BTC"] == {
        "asset": "BTC",
        "total": "0.10000000",
        "available": "0.10000000",
        "price_usd": "65000.00",
        "value_usd": "6500.00",
        "share_of_equity": "0.6506",
        "cash": False,
    }
    assert by_asset["USD"]["share_of_equity"] == "0.3494" and by_asset["USD"]["cash"] is True
    assert by_asset["ETH"]["value_usd"] == "0.00"
    [rejection] = body["recent_rejections"]
    assert rejection["order_id"] == refused.json()["error"]["details"]["order_id"]
    assert (rejection["symbol"], rejection["side"], rejection["reason"]) == ("ETH-USD", "buy", "insufficient_balance")
    assert body["order_flow"][0]["orders"] == 2 and body["order_flow"][0]["rejections"] == 1

    assert operator_client.get(path).status_code == 200
    other = bob_client.get(path)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_gauges_report_the_most_recent_value_across_gunicorn_workers(tmp_path):
    """Under gunicorn each worker writes its own samples (PROMETHEUS_MULTIPROC_DIR); a scrape must show one value
    per series, the latest, not one stale series per worker."""
    script = textwrap.dedent(
        """
        import sys, django
        django.setup()
        from risk import monitoring as risk
        risk.HOUSE_INVENTORY_USD.labels(asset="BTC").set(float(sys.argv[1]))
        risk.RISK_ALERT.labels(alert="house_inventory_low", asset="BTC").set(float(sys.argv[2]))
        """
    )
    env = child_env({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    for value, alert in (("5200000", "1"), ("6500000", "0")):  # two workers, one after the other
        done = subprocess.run(
            [sys.executable, "-c", script, value, alert], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-2000:]

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    samples = [s for metric in registry.collect() for s in metric.samples]
    inventory = [s for s in samples if s.name == "exchange_house_inventory_usd"]
    alerts = [s for s in samples if s.name == "exchange_risk_alert"]
    assert [(s.labels, s.value) for s in inventory] == [({"asset": "BTC"}, 6500000.0)]
    assert [(s.labels, s.value) for s in alerts] == [({"alert": "house_inventory_low", "asset": "BTC"}, 0.0)]

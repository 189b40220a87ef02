"""The chaos API in process: what it accepts (tolerant, as the ecosystem is), what it answers, and each fault's
effect on the order path, the ladder and the request path, observed through the REST API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chaos.models import Injection
from orders.models import Order

pytestmark = pytest.mark.django_db
D = Decimal


def inject(client, path, body):
    response = client.post(f"/chaos/{path}", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def buy(client, account, **extra):
    body = {"account_id": str(account.account_id), "symbol": "BTC-USD", "side": "buy", "order_type": "market"}
    body.update(extra or {"quantity": "0.01"})
    return client.post("/api/v1/orders", body, format="json")


def test_an_injection_in_the_go_clients_spelling_is_stored_with_its_scope_seed_and_end(operator_client, alice_account):
    body = inject(
        operator_client,
        "inject-latency",
        {"DelayMS": 250, "Operations": ["submit_order", "get_order"], "Duration": "20m", "Accounts": ["main"]},
    )

    assert body["chaos_id"].startswith("chaos_")
    assert (body["type"], body["status"], body["params"]["delay_ms"]) == ("latency", "active", 250)
    assert body["scope"] == {"operations": ["get_order", "place_order"], "accounts": ["main"], "markets": []}
    assert 1190 < body["remaining_s"] <= 1200
    assert isinstance(body["seed"], int)
    status = operator_client.get("/chaos/status").json()
    assert [i["chaos_id"] for i in status["active"]] == [body["chaos_id"]]


def test_symbols_in_any_spelling_become_the_listed_markets(operator_client):
    body = inject(
        operator_client, "manipulate-spreads", {"multiplier": 2.0, "symbols": ["BTC/USD", "eth_usd", "USDT-BTC"]}
    )

    assert body["scope"]["markets"] == ["BTC-USD", "BTC-USDT", "ETH-USD"]


def test_limits_are_enforced_and_bad_input_is_400(operator_client, settings):
    settings.CHAOS_MAX_DURATION = 60
    too_long = operator_client.post("/chaos/reject-orders", {"duration": "2m"}, format="json")
    body = {"multiplier": 2, "symbols": ["DOGE-USD"]}
    unknown = operator_client.post("/chaos/manipulate-spreads", body, format="json")

    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "validation_error")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "validation_error"), unknown.content
    assert "Unknown market symbol" in str(unknown.json()["error"]["details"]["fields"]["symbols"])
    assert Injection.objects.count() == 0


def test_chaos_is_for_operators_and_404_when_disabled(alice_client, operator_client, settings):
    assert alice_client.get("/chaos/status").status_code == 403
    settings.CHAOS_ENABLED = False
    assert operator_client.get("/chaos/status").status_code == 404


def test_rejections_are_recorded_with_the_reason_and_the_chaos_id(operator_client, alice_client, alice_account, house):
    chaos = inject(operator_client, "reject-orders", {"rejection_rate": 1, "reason": "insufficient_balance"})

    response = buy(alice_client, alice_account)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "insufficient_balance"
    order = Order.objects.get(order_id=response.json()["error"]["details"]["order_id"])
    assert (order.status, order.chaos_id) == ("rejected", chaos["chaos_id"])
    assert order.history.first().chaos_id == chaos["chaos_id"]
    detail = alice_client.get(f"/api/v1/orders/{order.order_id}").json()
    assert detail["chaos_id"] == chaos["chaos_id"]

    cleared = operator_client.delete(f"/chaos/{chaos['chaos_id']}")
    assert (cleared.status_code, cleared.json()["status"]) == (200, "cleared")
    again = buy(alice_client, alice_account)
    assert again.status_code == 201, again.content
    assert again.json()["chaos_id"] is None


def test_partial_fills_cap_a_market_order_and_the_rest_expires(operator_client, alice_client, alice_account, house):
    chaos = inject(operator_client, "partial-fills", {"max_fill_fraction": 0.25})

    order = buy(alice_client, alice_account, quantity="0.04").json()

    assert D(order["filled_quantity"]) == D("0.01")
    assert (order["status"], order["end_reason"]) == ("expired", "market_remainder")
    assert order["chaos_id"] == chaos["chaos_id"]


def test_a_wider_spread_moves_the_house_quotes_and_clearing_brings_them_back(operator_client, alice_client, house):
    def spread():
        book = alice_client.get("/api/v1/markets/BTC-USD/book").json()
        return D(book["asks"][0][0]) - D(book["bids"][0][0])

    before = spread()
    chaos = inject(operator_client, "manipulate-spreads", {"multiplier": 10, "symbols": ["BTC-USD"]})
    wide = spread()
    operator_client.delete("/chaos/clear-all")

    assert wide > 8 * before
    assert spread() == before
    assert Injection.objects.get(chaos_id=chaos["chaos_id"]).cleared_reason == "clear-all"


def test_downtime_answers_503_with_retry_after_and_readiness_fails(operator_client, alice_client, anonymous_client):
    inject(operator_client, "simulate-downtime", {"duration_s": 30, "error_message": "exchange_maintenance"})

    response = alice_client.get("/api/v1/markets")
    ready = anonymous_client.get("/api/v1/ready")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "exchange_maintenance"
    assert 1 <= int(response["Retry-After"]) <= 30
    assert ready.status_code == 503 and ready.json()["checks"]["maintenance"] == "fail"
    assert operator_client.get("/chaos/status").status_code == 200
    operator_client.delete("/chaos/clear-all")
    assert alice_client.get("/api/v1/markets").status_code == 200
    assert anonymous_client.get("/api/v1/ready").status_code == 200

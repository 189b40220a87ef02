"""Rate limits per API key (exchange/key_limits.py): the function the REST API and the Binance-style facade call,
and the REST API over its limits, in process (memory counters; the service test runs them on Redis)."""

from __future__ import annotations

import pytest

from exchange import errors, key_limits

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.KEY_LIMITS_ENABLED = True
    settings.KEY_WEIGHT_LIMIT_1M = 5
    settings.KEY_ORDER_LIMIT_10S = 2
    settings.KEY_ORDER_LIMIT_1D = 100
    return settings


def test_charge_counts_weight_and_orders_and_refuses_over_a_limit_with_retry_after(limits):
    first = key_limits.charge("key-a", weight=2, orders=1)
    second = key_limits.charge("key-a", weight=1, orders=1)

    assert first == {"X-MBX-USED-WEIGHT-1M": "2", "X-MBX-ORDER-COUNT-10S": "1", "X-MBX-ORDER-COUNT-1D": "1"}
    assert second["X-MBX-ORDER-COUNT-10S"] == "2"
    with pytest.raises(errors.RateLimited) as refused:
        key_limits.charge("key-a", weight=1, orders=1)
    assert refused.value.details["limit"] == "orders_10s"
    assert 1 <= refused.value.retry_after <= 10
    assert refused.value.headers["X-MBX-ORDER-COUNT-10S"] == "3"
    # Another key has its own counters; peek counts nothing.
    assert key_limits.peek("key-b")["X-MBX-USED-WEIGHT-1M"] == "0"
    assert key_limits.charge("key-b", weight=5)["X-MBX-USED-WEIGHT-1M"] == "5"
    with pytest.raises(errors.RateLimited) as heavy:
        key_limits.charge("key-b")
    assert heavy.value.details == {"limit": "weight_1m", "used": 6, "allowed": 5}


def test_off_by_default_no_headers_and_no_refusal(settings):
    settings.KEY_LIMITS_ENABLED = False

    assert key_limits.charge("key-c", weight=10_000, orders=10_000) == {}


def test_the_rest_api_answers_429_with_the_headers_over_the_limit(limits, alice_reader):
    answers = [alice_reader.get("/api/v1/markets") for _ in range(6)]

    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert [r["X-MBX-USED-WEIGHT-1M"] for r in answers] == ["1", "2", "3", "4", "5", "6"]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60


def test_a_chaos_action_tightens_the_limits_while_it_is_in_force(settings, operator_client, alice_reader):
    settings.KEY_LIMITS_ENABLED = False
    chaos = operator_client.post("/chaos/tighten-rate-limits", {"weight_limit_1m": 2}, format="json").json()

    answers = [alice_reader.get("/api/v1/markets").status_code for _ in range(3)]
    status = operator_client.get("/chaos/status").json()
    operator_client.delete(f"/chaos/{chaos['chaos_id']}")

    assert answers == [200, 200, 429]
    assert status["rate_limits"] == {"weight_1m": 2}
    assert alice_reader.get("/api/v1/markets").status_code == 200

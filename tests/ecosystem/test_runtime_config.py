"""The configuration client against a real HTTP server on 127.0.0.1: both reply shapes, 404, timeouts, garbage,
outages, type conversion, caching and the circuit breaker."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pybreaker
import pytest

from exchange.runtime_config import (
    KEYS,
    ConfigClient,
    ConfigKey,
    InvalidConfigValue,
    UnknownConfigKey,
    convert,
    get_config,
)
from tests.ecosystem.conftest import ConfigServer, Reply, log_events, wait_until

FEE = "trading.default_taker_fee_bps"
SPREAD = "trading.default_spread_bps"
TEST_KEYS = {
    **KEYS,
    "test.flag": ConfigKey("test.flag", "boolean", lambda: False),
    "test.name": ConfigKey("test.name", "string", lambda: "local"),
    "test.blob": ConfigKey("test.blob", "json", lambda: {}),
}


def client_for(server: ConfigServer, **overrides: Any) -> ConfigClient:
    options: dict[str, Any] = {
        "base_url": server.url,
        "service_name": "exchange-simulator",
        "environment": "test",
        "timeout": 0.3,
        "cache_ttl": 60.0,
        "fail_max": 5,
        "reset_timeout": 30.0,
        "keys": TEST_KEYS,
    }
    options.update(overrides)
    return ConfigClient(**options)


def envelope(key: str, value: Any, **fields: Any) -> dict[str, Any]:
    item = {"key": key, "value": value, "environment": "test", "service": "exchange-simulator"}
    item["updated_at"] = "2030-01-01T00:00:00Z"
    item.update(fields)
    return {"success": True, "data": [item]}


# --- Reply shapes ---------------------------------------------------------------------------------------------
def test_envelope_reply_gives_a_decimal_and_sends_the_service_name(config_server):
    config_server.set_json(FEE, envelope(FEE, "12.5"))

    value = client_for(config_server).get(FEE)

    assert value == Decimal("12.5") and isinstance(value, Decimal)
    key, headers = config_server.requests[0]
    assert key == FEE
    assert headers["X-Service-Name"] == "exchange-simulator"


def test_envelope_entry_for_our_service_and_environment_wins(config_server):
    config_server.set_json(
        FEE,
        {
            "success": True,
            "data": [
                {"key": FEE, "value": 30, "environment": "production", "service": "exchange-simulator"},
                {"key": FEE, "value": 20, "environment": "test", "service": "exchange-simulator"},
                {"key": FEE, "value": 40, "environment": "test", "service": "trading-engine"},
            ],
        },
    )

    assert client_for(config_server).get(FEE) == Decimal(20)


def test_flat_reply_with_a_json_number_keeps_every_digit(config_server):
    config_server.replies[FEE] = Reply(200, b'{"key": "%s", "value": 0.1, "type": "number"}' % FEE.encode())

    value = client_for(config_server).get(FEE)

    assert value == Decimal("0.1")  # parsed as Decimal, never through a float


@pytest.mark.parametrize(
    ("key", "payload", "expected"),
    [
        ("test.flag", {"value": "yes", "type": "boolean"}, True),
        ("test.flag", {"value": "on", "type": "boolean"}, True),
        ("test.flag", {"value": "1", "type": "boolean"}, True),
        ("test.flag", {"value": True, "type": "boolean"}, True),
        ("test.flag", {"value": "off", "type": "boolean"}, False),
        ("test.name", {"value": "remote", "type": "string"}, "remote"),
        (
            "test.blob",
            {"value": '{"pairs": ["BTC-USD"], "limit": 2.5}', "type": "json"},
            {
                "pairs": ["BTC-USD"],
                "limit": Decimal("2.5"),
            },
        ),
        (SPREAD, {"value": "7", "type": "number"}, Decimal(7)),
    ],
)
def test_flat_reply_values_are_converted_by_type(config_server, key, payload, expected):
    config_server.set_json(key, {"key": key, **payload})

    assert client_for(config_server).get(key) == expected


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("10", "number", Decimal(10)),
        (10, "number", Decimal(10)),
        (" 2.50 ", "number", Decimal("2.50")),
        ("TRUE", "boolean", True),
        ("no", "boolean", False),
        (0, "boolean", False),
        ("[1]", "json", [1]),
    ],
)
def test_convert(value, kind, expected):
    assert convert(value, kind) == expected


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, "number"),
        ("ten", "number"),
        ("NaN", "number"),
        ("Infinity", "number"),
        ("maybe", "boolean"),
        ({}, "string"),
        ("{", "json"),
    ],
)
def test_convert_rejects_values_of_the_wrong_type(value, kind):
    with pytest.raises(InvalidConfigValue):
        convert(value, kind)


# --- Missing keys and local defaults ---------------------------------------------------------------------------
def test_404_means_the_key_is_not_configured_and_the_local_default_applies(config_server, settings, info_logs):
    settings.DEFAULT_TAKER_FEE_BPS = Decimal("7.5")
    client = client_for(config_server)

    assert client.get(FEE) == Decimal("7.5")
    assert client.get(FEE) == Decimal("7.5")

    assert config_server.requests_for(FEE) == 1  # the answer "not configured" is cached too
    assert log_events(info_logs, "config_fallback") == []


def test_an_empty_data_list_is_also_not_configured(config_server):
    config_server.set_json(FEE, {"success": True, "data": []})

    assert client_for(config_server).get(FEE) == Decimal(10)


def test_every_registered_key_has_a_decimal_default_from_settings(settings):
    settings.CONFIG_SERVICE_URL = ""

    assert {key: get_config(key) for key in KEYS} == {
        "trading.default_taker_fee_bps": Decimal(10),
        "trading.default_maker_fee_bps": Decimal(5),
        "market_making.levels": Decimal(10),
        "market_making.step_bps": Decimal(5),
        "market_making.size_factor": Decimal(1),
        "trading.default_spread_bps": Decimal(10),
        "trading.max_order_notional_usd": Decimal(1000000),
        "risk.house_inventory_low_usd": Decimal(100000),
        "risk.rejection_rate_high_per_min": Decimal(60),
    }


def test_unknown_keys_are_refused_instead_of_silently_defaulted():
    with pytest.raises(UnknownConfigKey):
        get_config("trading.default_taker_fee_bsp")


def test_empty_config_service_url_never_calls_out(settings, config_server):
    settings.CONFIG_SERVICE_URL = ""
    config_server.set_json(FEE, {"value": 99})

    assert get_config(FEE) == Decimal(10)
    assert config_server.requests == []


def test_get_config_follows_the_configured_service(settings, config_server):
    settings.CONFIG_SERVICE_URL = config_server.url
    config_server.set_json(FEE, {"key": FEE, "value": "3", "type": "number"})

    assert get_config(FEE) == Decimal(3)


# --- Caching ---------------------------------------------------------------------------------------------------
def test_values_are_cached_for_cache_ttl(config_server):
    config_server.set_json(FEE, {"value": 11})
    client = client_for(config_server, cache_ttl=0.3)

    assert [client.get(FEE) for _ in range(50)] == [Decimal(11)] * 50
    assert config_server.requests_for(FEE) == 1

    config_server.set_json(FEE, {"value": 12})
    time.sleep(0.35)
    assert client.get(FEE) == Decimal(12)
    assert config_server.requests_for(FEE) == 2


def test_a_cached_lookup_is_cheap_enough_for_every_order(settings, config_server):
    settings.CONFIG_SERVICE_URL = config_server.url
    config_server.set_json(FEE, {"value": 11})
    get_config(FEE)

    started = time.perf_counter()
    for _ in range(100_000):
        get_config(FEE)
    elapsed = time.perf_counter() - started

    assert config_server.requests_for(FEE) == 1
    assert elapsed < 1.0, f"100k cached lookups took {elapsed:.2f}s"


def test_while_one_caller_refreshes_others_answer_at_once_with_the_previous_value(config_server):
    config_server.set_json(FEE, {"value": 11})
    client = client_for(config_server, cache_ttl=0.05, timeout=2.0)
    assert client.get(FEE) == Decimal(11)
    time.sleep(0.06)
    config_server.set_json(FEE, {"value": 12}, delay=0.5)

    refresher = threading.Thread(target=client.get, args=(FEE,))
    refresher.start()
    wait_until(lambda: config_server.requests_for(FEE) == 2, timeout=2)
    started = time.monotonic()
    value = client.get(FEE)
    waited = time.monotonic() - started
    refresher.join()

    assert value == Decimal(11)
    assert waited < 0.1
    assert client.get(FEE) == Decimal(12)
    assert config_server.requests_for(FEE) == 2


# --- Failures and fallbacks ------------------------------------------------------------------------------------
def test_a_slow_service_falls_back_to_the_last_good_value_within_the_timeout(config_server, info_logs):
    config_server.set_json(FEE, {"value": 11})
    client = client_for(config_server, cache_ttl=0.05, timeout=0.2)
    assert client.get(FEE) == Decimal(11)
    time.sleep(0.06)
    config_server.set_json(FEE, {"value": 12}, delay=1.0)

    started = time.monotonic()
    value = client.get(FEE)

    assert value == Decimal(11)
    assert time.monotonic() - started < 0.8
    [fallback] = log_events(info_logs, "config_fallback")
    assert fallback["level"] == "warning" and fallback["using"] == "last_good"
    assert "no answer within 0.2s" in fallback["reason"]


def test_with_no_good_value_yet_a_slow_service_gives_the_local_default(config_server):
    config_server.set_json(FEE, {"value": 12}, delay=1.0)

    assert client_for(config_server, timeout=0.2).get(FEE) == Decimal(10)


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b'{"unexpected": 1}', b"[1, 2]"])
def test_a_garbage_reply_falls_back_to_the_local_default(config_server, info_logs, body):
    config_server.replies[FEE] = Reply(200, body)

    assert client_for(config_server).get(FEE) == Decimal(10)
    [fallback] = log_events(info_logs, "config_fallback")
    assert fallback["using"] == "local_default"


def test_server_errors_fall_back_and_the_fallback_is_logged_once_per_state_change(config_server, info_logs):
    config_server.set_json(FEE, {"value": 11})
    client = client_for(config_server, cache_ttl=0.0, fail_max=100)
    assert client.get(FEE) == Decimal(11)

    config_server.replies[FEE] = Reply(503, b"")
    assert [client.get(FEE) for _ in range(10)] == [Decimal(11)] * 10
    config_server.set_json(FEE, {"value": 13})
    assert client.get(FEE) == Decimal(13)

    assert len(log_events(info_logs, "config_fallback")) == 1
    assert len(log_events(info_logs, "config_remote_recovered")) == 1


def test_service_down_then_up_again(config_server):
    config_server.set_json(FEE, {"value": 11})
    client = client_for(config_server, cache_ttl=0.05)
    assert client.get(FEE) == Decimal(11)
    port = config_server.port

    config_server.stop()
    time.sleep(0.06)
    assert client.get(FEE) == Decimal(11)  # last good value while down

    restarted = ConfigServer(port=port).start()
    try:
        restarted.set_json(FEE, {"value": 14})
        assert client.get(FEE) == Decimal(14)
    finally:
        restarted.stop()


# --- Circuit breaker -------------------------------------------------------------------------------------------
def test_breaker_opens_after_five_failures_and_then_costs_no_timeout(config_server, info_logs):
    config_server.set_json(FEE, {"value": 12}, delay=1.0)
    client = client_for(config_server, timeout=0.1, reset_timeout=0.5)

    for _ in range(5):
        assert client.get(FEE) == Decimal(10)
    assert client.breaker.current_state == pybreaker.STATE_OPEN

    started = time.monotonic()
    assert [client.get(FEE) for _ in range(20)] == [Decimal(10)] * 20
    assert time.monotonic() - started < 0.05
    assert config_server.requests_for(FEE) == 5
    assert len(log_events(info_logs, "config_breaker_open")) == 1

    # Half-open after the reset timeout; a good trial call closes it.
    config_server.set_json(FEE, {"value": 12})
    time.sleep(0.55)
    assert client.get(FEE) == Decimal(12)
    assert client.breaker.current_state == pybreaker.STATE_CLOSED


def test_a_bad_value_is_a_data_problem_and_does_not_open_the_breaker(config_server):
    config_server.set_json(FEE, {"value": "ten"})
    client = client_for(config_server, cache_ttl=0.0)

    assert [client.get(FEE) for _ in range(8)] == [Decimal(10)] * 8
    assert client.breaker.current_state == pybreaker.STATE_CLOSED

"""Registration in discovery: the key, every field the siblings read, TTL, heartbeat, deletion, Redis failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from exchange import registration
from exchange.discovery import parse_time
from exchange.registration import Registration, start_registration
from tests.ecosystem.conftest import log_events, wait_until
from tests.support.processes import ROOT

SIBLING_FIELDS = {
    "service_name",
    "name",
    "id",
    "instance_id",
    "host",
    "address",
    "grpc_port",
    "http_port",
    "port",
    "version",
    "service_version",
    "environment",
    "status",
    "health",
    "last_seen",
    "last_heartbeat",
    "registered_at",
    "metadata",
}


def make_registration(service_name: str, instance: str = "instance-1", **overrides: Any) -> Registration:
    options: dict[str, Any] = {
        "service_name": service_name,
        "instance_name": instance,
        "host": "exchange-7.internal",
        "http_port": 18080,
        "grpc_port": 15051,
        "version": "1.2.3",
        "environment": "test",
        "ttl": 90,
        "interval": 30.0,
    }
    options.update(overrides)
    return Registration(**options)


@pytest.mark.redis
def test_registration_writes_every_sibling_field_with_a_ttl_of_at_most_90s(
    discovery_settings, shared_redis, service_name
):
    before = datetime.now(UTC) - timedelta(seconds=1)
    entry = make_registration(service_name)

    assert entry.beat() is True

    key = f"services:{service_name}:instance-1"
    value = json.loads(shared_redis.get(key))
    assert SIBLING_FIELDS <= set(value)
    assert value["service_name"] == value["name"] == service_name
    assert value["id"] == value["instance_id"] == "instance-1"
    assert value["host"] == value["address"] == "exchange-7.internal"
    assert value["grpc_port"] == value["port"] == 15051
    assert value["http_port"] == 18080
    assert value["version"] == value["service_version"] == "1.2.3"
    assert value["environment"] == "test"
    assert (value["status"], value["health"]) == ("active", "healthy")
    for stamp in ("last_seen", "last_heartbeat", "registered_at"):
        assert value[stamp].endswith("Z"), value[stamp]
        assert before <= parse_time(value[stamp]) <= datetime.now(UTC)
    assert value["metadata"] and all(isinstance(k, str) and isinstance(v, str) for k, v in value["metadata"].items())
    assert 0 < shared_redis.ttl(key) <= 90


def test_ttl_is_never_above_90s_and_heartbeat_comes_at_least_three_times_per_ttl():
    assert make_registration("x", ttl=600).ttl == 90
    assert make_registration("x", ttl=90, interval=60).interval == 30
    assert make_registration("x", ttl=3, interval=1).interval == 1


@pytest.mark.parametrize("value", ["91", "0"])
def test_a_discovery_ttl_outside_1_to_90s_refuses_to_start(value):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "exchange.settings.test", "DISCOVERY_TTL": value},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "DISCOVERY_TTL" in result.stdout + result.stderr


@pytest.mark.redis
def test_heartbeat_refreshes_last_seen_and_keeps_the_key_alive_past_its_ttl(
    discovery_settings, shared_redis, service_name
):
    entry = make_registration(service_name, ttl=1, interval=0.2)
    key = f"services:{service_name}:instance-1"
    entry.start()
    try:
        first = wait_until(lambda: shared_redis.get(key), timeout=2)
        time.sleep(1.5)  # longer than the TTL: only refreshes keep the key

        later = shared_redis.get(key)
        assert later is not None
        assert parse_time(json.loads(later)["last_seen"]) > parse_time(json.loads(first)["last_seen"])
        assert json.loads(later)["registered_at"] == json.loads(first)["registered_at"]
    finally:
        entry.stop()


@pytest.mark.redis
def test_stop_deletes_the_key(discovery_settings, shared_redis, service_name):
    entry = make_registration(service_name, interval=0.1)
    key = f"services:{service_name}:instance-1"
    entry.start()
    wait_until(lambda: shared_redis.exists(key), timeout=2)

    entry.stop()

    assert not shared_redis.exists(key)
    time.sleep(0.3)  # no late heartbeat writes it back
    assert not shared_redis.exists(key)


@pytest.mark.redis
def test_stop_leaves_a_newer_registration_under_the_same_instance_name_alone(
    discovery_settings, shared_redis, service_name
):
    """A restarted instance that kept its name must not be deregistered by its predecessor's shutdown."""
    old, new = make_registration(service_name), make_registration(service_name)
    old.beat()
    new.beat()

    old.stop()

    value = shared_redis.get(f"services:{service_name}:instance-1")
    assert value is not None
    assert json.loads(value)["metadata"]["registration_id"] == new.registration_id


class FlakyRedis:
    """A client factory whose SET fails while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.writes: list[str] = []

    def __call__(self) -> FlakyRedis:
        return self

    def set(self, key: str, value: str, ex: int) -> None:
        if self.down:
            raise redis.ConnectionError("Connection refused")
        self.writes.append(key)


def test_a_redis_outage_is_logged_once_and_the_recovery_once(info_logs):
    fake = FlakyRedis()
    entry = make_registration("svc", client_factory=fake)

    assert entry.beat()
    fake.down = True
    assert [entry.beat() for _ in range(5)] == [False] * 5
    fake.down = False
    assert entry.beat() and entry.beat()

    failures = log_events(info_logs, "discovery_registration_failed")
    assert len(failures) == 1 and failures[0]["level"] == "warning"
    assert "Connection refused" in failures[0]["error"]
    assert len(log_events(info_logs, "discovery_registration_recovered")) == 1
    assert len(log_events(info_logs, "discovery_registered")) == 1
    assert len(fake.writes) == 3


def test_without_redis_url_registration_is_off_and_says_so_once(settings, info_logs):
    settings.REDIS_URL = ""

    assert start_registration(http_port=1, grpc_port=2) is None

    assert len(log_events(info_logs, "discovery_disabled")) == 1
    registration.stop_registration()  # nothing to stop: must not fail

"""Discovery lookups: live entries only, stale ones dropped, malformed ones skipped with one warning each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from exchange.discovery import DiscoveryUnavailable, MalformedEntry, discover, discover_all, parse_instance
from exchange.registration import Registration, rfc3339
from tests.ecosystem.conftest import log_events, unique_name


def entry(service: str, instance: str, *, seen: datetime | None = None, **fields: object) -> str:
    seen_at = rfc3339(seen or datetime.now(UTC))
    value = {
        "service_name": service,
        "instance_id": instance,
        "host": "127.0.0.1",
        "grpc_port": 50051,
        "http_port": 8080,
        "last_seen": seen_at,
        "status": "active",
        "health": "healthy",
        **fields,
    }
    return json.dumps(value)


@pytest.mark.redis
def test_discover_lists_the_live_instances_of_one_service_sorted(discovery_settings, shared_redis, service_name):
    for instance in ("b-2", "a-1"):
        Registration(
            service_name=service_name,
            instance_name=instance,
            host="127.0.0.1",
            http_port=8080,
            grpc_port=50051,
            version="1",
            environment="test",
            ttl=30,
            interval=10,
        ).beat()
    other = unique_name()
    # Same prefix, different service: must not leak into the lookup.
    shared_redis.set(f"services:{service_name}-other:x", entry(f"{service_name}-other", "x"), ex=30)
    shared_redis.set(f"services:{other}:x", entry(other, "x"), ex=30)
    try:
        found = discover(service_name)

        assert [i.instance_id for i in found] == ["a-1", "b-2"]
        assert {i.grpc_target for i in found} == {"127.0.0.1:50051"}
        everyone = {(i.service_name, i.instance_id) for i in discover_all()}
        assert {(service_name, "a-1"), (service_name, "b-2"), (other, "x")} <= everyone
    finally:
        shared_redis.delete(f"services:{service_name}-other:x", f"services:{other}:x")


@pytest.mark.redis
def test_entries_not_seen_for_more_than_90s_are_dropped(discovery_settings, shared_redis, service_name):
    now = datetime.now(UTC)
    shared_redis.set(f"services:{service_name}:fresh", entry(service_name, "fresh", seen=now - timedelta(seconds=85)))
    shared_redis.set(f"services:{service_name}:stale", entry(service_name, "stale", seen=now - timedelta(seconds=95)))

    assert [i.instance_id for i in discover(service_name)] == ["fresh"]


@pytest.mark.redis
def test_malformed_values_are_skipped_with_one_warning_per_key(
    discovery_settings, shared_redis, service_name, info_logs
):
    bad = {
        "not-json": "{oops",
        "not-an-object": "[1, 2]",
        "no-host": json.dumps({"service_name": service_name, "last_seen": rfc3339(datetime.now(UTC))}),
        "no-last-seen": json.dumps({"service_name": service_name, "host": "h"}),
    }
    for instance, value in bad.items():
        shared_redis.set(f"services:{service_name}:{instance}", value, ex=30)
    shared_redis.set(f"services:{service_name}:good", entry(service_name, "good"), ex=30)

    assert [i.instance_id for i in discover(service_name)] == ["good"]
    assert [i.instance_id for i in discover(service_name)] == ["good"]

    warnings = log_events(info_logs, "discovery_entry_malformed")
    assert sorted(w["key"] for w in warnings) == sorted(f"services:{service_name}:{i}" for i in bad)
    assert {w["level"] for w in warnings} == {"warning"}


@pytest.mark.usefixtures("db")
def test_without_redis_url_discovery_says_it_is_disabled(settings):
    settings.REDIS_URL = ""

    with pytest.raises(DiscoveryUnavailable, match="REDIS_URL"):
        discover("anything")


# --- Parsing what the siblings write (no Redis needed) --------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        # Go sibling: name/id/address/port and nanosecond timestamps.
        {
            "name": "custodian",
            "id": "c-1",
            "address": "10.0.0.5",
            "port": "9090",
            "last_heartbeat": "2030-01-02T03:04:05.123456789Z",
        },
        # Node sibling: address with the port in it, Unix milliseconds.
        {
            "service_name": "custodian",
            "instance_id": "c-1",
            "address": "10.0.0.5:9090",
            "grpc_port": 9090,
            "last_seen": 1893553445123,
        },
    ],
)
def test_sibling_field_variants_are_understood(value):
    instance = parse_instance(json.dumps(value), key="services:custodian:c-1")

    assert (instance.service_name, instance.instance_id) == ("custodian", "c-1")
    assert instance.grpc_target == "10.0.0.5:9090"
    assert instance.last_seen.year == 2030


@pytest.mark.parametrize(
    "raw", ["", "null", '"text"', '{"host": "h"}', '{"host": "h", "last_seen": "yesterday"}', '{"last_seen": 1}']
)
def test_unreadable_values_are_malformed(raw):
    with pytest.raises(MalformedEntry):
        parse_instance(raw, key="services:s:i")


def test_ports_are_never_taken_from_booleans_or_nonsense():
    instance = parse_instance(
        json.dumps({"host": "h", "grpc_port": True, "port": "x", "http_port": 70000, "last_seen": 1893553445}),
        key="services:s:i",
    )

    assert (instance.grpc_port, instance.http_port, instance.grpc_target) == (None, None, None)

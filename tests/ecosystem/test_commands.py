"""``manage.py discover`` and ``manage.py check_services`` output."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from exchange.registration import Registration
from tests.ecosystem.conftest import unique_name
from tests.ecosystem.test_grpc_clients import HealthServer
from tests.support.processes import free_port


def register(service: str, instance: str, *, grpc_port: int, http_port: int = 18080) -> None:
    Registration(
        service_name=service,
        instance_name=instance,
        host="127.0.0.1",
        http_port=http_port,
        grpc_port=grpc_port,
        version="2.0.0",
        environment="test",
        ttl=30,
        interval=10,
    ).beat()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


@pytest.mark.redis
def test_discover_prints_one_service_as_a_table(discovery_settings, service_name):
    register(service_name, "node-b", grpc_port=15052)
    register(service_name, "node-a", grpc_port=15051)

    rows = table(run("discover", service_name))

    assert rows[0][:5] == ["SERVICE", "INSTANCE", "HOST", "GRPC", "HTTP"]
    assert [r[:5] for r in rows[1:]] == [
        [service_name, "node-a", "127.0.0.1", "15051", "18080"],
        [service_name, "node-b", "127.0.0.1", "15052", "18080"],
    ]
    assert all(r[5:9] == ["2.0.0", "test", "active", "healthy"] for r in rows[1:])


@pytest.mark.redis
def test_discover_without_a_name_lists_every_service(discovery_settings, shared_redis, service_name):
    other = unique_name()
    register(service_name, "node-a", grpc_port=15051)
    register(other, "x-1", grpc_port=15053)
    try:
        listed = {(r[0], r[1]) for r in table(run("discover"))[1:]}
        as_json = json.loads(run("discover", "--json"))
    finally:
        shared_redis.delete(f"services:{other}:x-1")

    assert {(service_name, "node-a"), (other, "x-1")} <= listed
    assert {(i["service"], i["instance"]) for i in as_json} >= {(service_name, "node-a"), (other, "x-1")}


@pytest.mark.redis
def test_discover_says_so_when_nothing_is_registered(discovery_settings, service_name):
    assert run("discover", service_name).strip() == f"no live instances of {service_name}"


def test_discover_without_redis_is_a_clear_command_error(settings):
    settings.REDIS_URL = ""

    with pytest.raises(CommandError, match="REDIS_URL is not set"):
        run("discover")


@pytest.mark.redis
def test_check_services_prints_each_sibling_with_health_and_breaker(discovery_settings, service_name):
    server = HealthServer(names=("", service_name)).start()
    discovery_settings.SERVICE_NAME, discovery_settings.SERVICE_INSTANCE_NAME = service_name, "me"
    register(service_name, "me", grpc_port=free_port())  # this instance: never listed as its own sibling
    register(service_name, "live", grpc_port=server.port)
    register(service_name, "dead", grpc_port=free_port())
    try:
        rows = {r[1]: r for r in table(run("check_services", service_name, "--timeout", "1"))[1:]}
    finally:
        server.stop()

    assert set(rows) == {"live", "dead"}
    assert rows["live"][3:5] == ["SERVING", "closed"]
    assert rows["dead"][3:5] == ["UNAVAILABLE", "closed"]


@pytest.mark.redis
def test_check_services_rounds_show_the_breaker_opening_on_a_dead_sibling(discovery_settings, service_name):
    register(service_name, "dead", grpc_port=free_port())

    rows = table(run("check_services", service_name, "--rounds", "6", "--timeout", "0.5"))

    assert rows[1][1] == "dead"
    assert rows[1][3:5] == ["BREAKER_OPEN", "open"]


@pytest.mark.redis
def test_check_services_with_no_siblings(discovery_settings, service_name):
    assert run("check_services", service_name).strip() == "no siblings discovered"

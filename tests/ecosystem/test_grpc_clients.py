"""The sibling client manager against real gRPC health servers on 127.0.0.1 (discovery is injected here; the
two-instance test covers it through Redis)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime

import grpc
import pybreaker
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from exchange.discovery import ServiceInstance
from exchange.grpc_clients import NoInstanceAvailable, SiblingClients
from tests.ecosystem.conftest import log_events
from tests.support.processes import free_port


class HealthServer:
    def __init__(self, *, names: tuple[str, ...] = ("", "custodian"), port: int | None = None) -> None:
        self.port = port or free_port()
        self.health = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        for name in names:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def start(self) -> HealthServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(0).wait(2)


@pytest.fixture
def custodian() -> Iterator[HealthServer]:
    server = HealthServer().start()
    yield server
    server.stop()


def instance(port: int, *, service: str = "custodian", name: str = "c-1") -> ServiceInstance:
    return ServiceInstance(
        service_name=service,
        instance_id=name,
        host="127.0.0.1",
        grpc_port=port,
        http_port=None,
        version="1",
        environment="test",
        status="active",
        health="healthy",
        last_seen=datetime.now(UTC),
        registered_at=None,
    )


class Directory:
    """Stands in for discovery: what it lists can change during a test."""

    def __init__(self, *found: ServiceInstance) -> None:
        self.found = list(found)
        self.lookups = 0

    def __call__(self, service: str) -> list[ServiceInstance]:
        self.lookups += 1
        return [i for i in self.found if i.service_name == service]


def manager(directory: Directory, **overrides: object) -> SiblingClients:
    options: dict[str, object] = {
        "discover": directory,
        "self_service": "exchange-simulator",
        "self_instance": "me",
        "timeout": 1.0,
        "fail_max": 5,
        "reset_timeout": 0.4,
        "success_threshold": 2,
        "refresh_interval": 30.0,
    }
    options.update(overrides)
    return SiblingClients(**options)  # type: ignore[arg-type]


def test_health_check_reports_serving_and_reuses_one_channel(custodian):
    directory = Directory(instance(custodian.port))
    clients = manager(directory)
    try:
        assert [clients.check_health("custodian") for _ in range(3)] == ["SERVING"] * 3

        picked = clients.pick("custodian")
        assert clients.channel_for(picked) is clients.channel_for(picked)
        assert directory.lookups == 1  # discovery is re-read every refresh_interval, not per call
        assert clients.breaker_state("custodian") == pybreaker.STATE_CLOSED
    finally:
        clients.close()


def test_a_sibling_that_only_registers_the_empty_health_name_is_still_checked():
    server = HealthServer(names=("",)).start()
    clients = manager(Directory(instance(server.port)))
    try:
        assert clients.check_health("custodian") == "SERVING"
    finally:
        clients.close()
        server.stop()


def test_not_serving_is_reported_as_such(custodian):
    custodian.health.set("custodian", health_pb2.HealthCheckResponse.NOT_SERVING)
    clients = manager(Directory(instance(custodian.port)))
    try:
        assert clients.check_health("custodian") == "NOT_SERVING"
    finally:
        clients.close()


def test_this_instance_is_never_picked_as_its_own_sibling(custodian):
    me = instance(custodian.port, service="exchange-simulator", name="me")
    other = instance(custodian.port, service="exchange-simulator", name="other")
    clients = manager(Directory(me, other))

    assert [i.instance_id for i in clients.instances("exchange-simulator")] == ["other"]
    assert manager(Directory(me)).instances("exchange-simulator") == []


def test_breaker_opens_after_five_failures_half_opens_and_closes_after_two_good_trials(custodian, info_logs):
    dead = instance(free_port(), name="dead")
    directory = Directory(dead)
    clients = manager(directory)
    try:
        for _ in range(4):
            with pytest.raises(grpc.RpcError) as error:
                clients.check_health("custodian")
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(pybreaker.CircuitBreakerError):
            clients.check_health("custodian")  # the fifth failure trips it
        assert clients.breaker_state("custodian") == pybreaker.STATE_OPEN

        started = time.monotonic()
        with pytest.raises(pybreaker.CircuitBreakerError):
            clients.check_health("custodian")
        assert time.monotonic() - started < 0.05  # rejected without dialing

        # The sibling comes back elsewhere; after the reset timeout trial calls go through.
        directory.found = [instance(custodian.port, name="alive")]
        time.sleep(0.45)
        assert clients.check_health("custodian") == "SERVING"
        assert clients.breaker_state("custodian") == pybreaker.STATE_HALF_OPEN
        assert clients.check_health("custodian") == "SERVING"
        assert clients.breaker_state("custodian") == pybreaker.STATE_CLOSED
        assert len(log_events(info_logs, "grpc_breaker_open")) == 1
    finally:
        clients.close()


def test_a_failed_trial_call_opens_the_breaker_again():
    clients = manager(Directory(instance(free_port())), reset_timeout=0.2)
    try:
        for _ in range(5):
            with pytest.raises((grpc.RpcError, pybreaker.CircuitBreakerError)):
                clients.check_health("custodian")
        time.sleep(0.25)
        with pytest.raises(pybreaker.CircuitBreakerError, match="Trial call failed"):
            clients.check_health("custodian")
        assert clients.breaker_state("custodian") == pybreaker.STATE_OPEN
    finally:
        clients.close()


def test_answers_about_the_request_itself_do_not_count_as_failures(custodian):
    clients = manager(Directory(instance(custodian.port)))
    missing_method = lambda channel: channel.unary_unary("/no.Such/Method")(b"", timeout=1)  # noqa: E731
    try:
        for _ in range(7):
            with pytest.raises(grpc.RpcError) as error:
                clients.call("custodian", missing_method)
            assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert clients.breaker_state("custodian") == pybreaker.STATE_CLOSED
    finally:
        clients.close()


def test_no_instance_in_discovery_counts_as_a_failure():
    clients = manager(Directory(), refresh_interval=0.0)
    for _ in range(4):
        with pytest.raises(NoInstanceAvailable):
            clients.check_health("custodian")
    with pytest.raises(pybreaker.CircuitBreakerError):
        clients.check_health("custodian")


def test_check_instance_never_raises_and_names_the_problem(custodian):
    clients = manager(Directory())
    try:
        good = clients.check_instance(instance(custodian.port))
        dead = clients.check_instance(instance(free_port(), service="audit", name="a-1"), timeout=0.5)

        assert (good.status, good.breaker, good.serving) == ("SERVING", "closed", True)
        assert (dead.status, dead.breaker, dead.serving) == ("UNAVAILABLE", "closed", False)
        assert dead.error
    finally:
        clients.close()

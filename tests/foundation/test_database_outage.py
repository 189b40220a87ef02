"""A database outage and its end, seen from outside the process: readiness and gRPC health turn to failing while
PostgreSQL is unreachable, and recover by themselves when it returns, with no restart of the service.

A TCP proxy sits between the service and PostgreSQL; stopping it cuts the pooled connections and refuses new ones,
which is what a database failover or network partition looks like to the service.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.support.grpc_health import HealthWatch, wait_for_check
from tests.support.processes import ServiceProcess
from tests.support.services import service_missing
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# Readiness is re-checked every 0.5 s in the service under test (ServiceProcess sets READINESS_POLL_INTERVAL);
# a failing check returns at once because the proxy refuses connections, so a few seconds is generous.
DEADLINE = 10.0


def through_proxy(database_url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(database_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def proxy(migrated_service_database_url: str) -> Iterator[TcpProxy]:
    if not migrated_service_database_url.startswith(("postgres://", "postgresql://")):
        service_missing("needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)")
    target = urlsplit(migrated_service_database_url)
    with TcpProxy(target_host=target.hostname or "127.0.0.1", target_port=target.port or 5432) as running:
        yield running


@pytest.fixture
def service(migrated_service_database_url: str, proxy: TcpProxy, tmp_path) -> Iterator[ServiceProcess]:
    # Migrations at start-up go through the proxy too: the service never learns the real address.
    process = ServiceProcess(database_url=through_proxy(migrated_service_database_url, proxy), log_dir=tmp_path).start()
    try:
        yield process
    finally:
        process.stop()


def ready(service: ServiceProcess) -> httpx.Response:
    return httpx.get(f"{service.base_url}/api/v1/ready", timeout=5)


def wait_for_ready_status(service: ServiceProcess, expected: int) -> httpx.Response:
    deadline = time.monotonic() + DEADLINE
    while True:
        response = ready(service)
        if response.status_code == expected or time.monotonic() >= deadline:
            return response
        time.sleep(0.1)


def test_outage_turns_readiness_and_grpc_health_off_and_recovery_turns_them_back_on(service, proxy):
    with HealthWatch(service.grpc_target, "exchange-simulator") as watch:
        # Before: everything answers.
        assert ready(service).status_code == 200
        assert watch.wait_for("SERVING", timeout=DEADLINE)

        # The database goes away.
        proxy.stop()

        down = wait_for_ready_status(service, 503)
        assert down.status_code == 503, down.text
        assert down.json()["status"] == "not_ready"
        assert down.json()["checks"]["database"] == "fail"
        assert down.json()["details"]["database"]["error"]
        assert wait_for_check(service.grpc_target, "", "NOT_SERVING", timeout=DEADLINE) == "NOT_SERVING"
        assert watch.wait_for("NOT_SERVING", timeout=DEADLINE), watch.statuses
        # Liveness does not depend on the database: an orchestrator must not restart us for someone else's outage.
        assert httpx.get(f"{service.base_url}/api/v1/health", timeout=5).status_code == 200

        # The database comes back on the same address.
        proxy.start()

        up = wait_for_ready_status(service, 200)
        assert up.status_code == 200, up.text
        assert up.json()["checks"]["database"] == "ok"
        assert wait_for_check(service.grpc_target, "", "SERVING", timeout=DEADLINE) == "SERVING"
        assert watch.statuses[-1] == "SERVING" or watch.wait_for("SERVING", timeout=DEADLINE)
        assert watch.statuses.count("NOT_SERVING") >= 1

    # Same process throughout: recovery needed no restart. Operators see both transitions in the log.
    assert service.proc.poll() is None
    output = service.output()
    assert '"message": "grpc_health_changed"' in output
    assert '"serving": false' in output and '"serving": true' in output

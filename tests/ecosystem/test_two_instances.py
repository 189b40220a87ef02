"""Two real instances of this service, sharing one Redis: each discovers the other and sees it SERVING over gRPC
health through the client manager; when one stops, the other's breaker opens and the stopped one drops out of
discovery (SIGTERM: its key is deleted at once; SIGKILL: its key expires after DISCOVERY_TTL)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pybreaker
import pytest
import redis

from exchange.discovery import discover
from exchange.grpc_clients import SiblingClients
from tests.ecosystem.conftest import unique_name, wait_until
from tests.support.processes import ServiceProcess, _children

TTL = 3
HEARTBEAT = "1s"


def manage(process: ServiceProcess, *args: str) -> str:
    """A management command with exactly the instance's environment, i.e. as that instance sees the world."""
    return process.manage(*args, timeout=60).stdout


def rows(output: str) -> dict[str, list[str]]:
    """Table rows keyed by instance name (log lines, which are JSON, are not rows)."""
    lines = [line.split() for line in output.splitlines() if line and not line.startswith("{")]
    return {cells[1]: cells for cells in lines[1:]}


def kill_hard(process: ServiceProcess, right_after: Callable[[], None]) -> None:
    """SIGKILL the serve process (no shutdown hooks run), call ``right_after`` at once (the key's TTL is short,
    and stopping gunicorn can take longer), then stop its orphaned gunicorn by pid."""
    assert process.proc is not None
    children = _children(process.proc.pid)
    os.kill(process.proc.pid, signal.SIGKILL)
    process.proc.wait(timeout=10)
    right_after()
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in children:
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), timeout=15, interval=0.1)


@pytest.mark.slow
@pytest.mark.redis
def test_two_instances_discover_each_other_and_notice_when_one_goes(
    discovery_settings,
    shared_redis: redis.Redis,
    redis_url,
    migrated_service_database_url,
    second_service_database_url,
    tmp_path,
):
    service = unique_name()
    common = {
        "REDIS_URL": redis_url,
        "SERVICE_NAME": service,
        "SERVICE_HOST": "127.0.0.1",
        "HEALTH_CHECK_INTERVAL": HEARTBEAT,
        "DISCOVERY_TTL": str(TTL),
        "CONFIG_SERVICE_URL": "",
    }
    a = ServiceProcess(
        database_url=migrated_service_database_url,
        log_dir=tmp_path,
        env={**common, "SERVICE_INSTANCE_NAME": "node-a"},
        extra_args=["--no-seed"],
    )
    b = ServiceProcess(
        database_url=second_service_database_url,
        log_dir=tmp_path,
        env={**common, "SERVICE_INSTANCE_NAME": "node-b"},
        extra_args=["--no-seed"],
    )
    clients: SiblingClients | None = None
    try:
        a.start()
        b.start()
        wait_until(lambda: len(discover(service)) == 2, timeout=5)

        # Each instance, asked through its own environment, discovers the other and sees it SERVING.
        listed = rows(manage(a, "discover", service))
        assert set(listed) == {"node-a", "node-b"}
        assert listed["node-b"][3] == str(b.grpc_port)
        seen_by_a = rows(manage(a, "check_services", service))
        seen_by_b = rows(manage(b, "check_services", service))
        assert set(seen_by_a) == {"node-b"} and seen_by_a["node-b"][2:5] == [b.grpc_target, "SERVING", "closed"]
        assert set(seen_by_b) == {"node-a"} and seen_by_b["node-a"][2:5] == [a.grpc_target, "SERVING", "closed"]

        # node-a's view, in this process: the manager picks node-b (never itself) and gets SERVING.
        clients = SiblingClients(self_service=service, self_instance="node-a", timeout=1.0, refresh_interval=0.0)
        assert clients.pick(service).instance_id == "node-b"
        assert clients.check_health(service) == "SERVING"

        # SIGTERM: node-b deregisters on the way out, so it is gone from discovery at once, long before its TTL.
        assert b.terminate() == 0
        assert not shared_redis.exists(f"services:{service}:node-b")
        assert [i.instance_id for i in discover(service)] == ["node-a"]

        # node-a's breaker for the service opens after 5 failed calls, then rejects without trying.
        outcomes = []
        for _ in range(5):
            try:
                clients.check_health(service)
                outcomes.append("ok")
            except pybreaker.CircuitBreakerError:
                outcomes.append("tripped")
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[-1] == "tripped" and "ok" not in outcomes, outcomes
        assert clients.breaker_state(service) == pybreaker.STATE_OPEN
        started = time.monotonic()
        with pytest.raises(pybreaker.CircuitBreakerError):
            clients.check_health(service)
        assert time.monotonic() - started < 0.05

        # SIGKILL: node-a cannot deregister; its key outlives it and then expires by TTL.
        def key_outlives_the_process() -> None:
            # Nobody deleted it, and nothing refreshes it now: it lives at most one TTL longer.
            ttl_ms = shared_redis.pttl(f"services:{service}:node-a")
            assert 0 < ttl_ms <= TTL * 1000

        kill_hard(a, key_outlives_the_process)
        wait_until(lambda: discover(service) == [], timeout=TTL + 5, interval=0.1)
        assert not shared_redis.exists(f"services:{service}:node-a")
    finally:
        if clients is not None:
            clients.close()
        b.stop()
        a.stop()

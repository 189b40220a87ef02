"""A Redis outage under a running service: it keeps serving, says so once, reports Redis in readiness, and
re-registers by itself when Redis is back. Uses a private redis-server; the shared one is never touched."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.ecosystem.conftest import json_lines, unique_name, wait_until
from tests.support.processes import ServiceProcess

HEARTBEAT = 0.5


@pytest.mark.slow
def test_registration_survives_a_redis_outage_and_comes_back_within_a_heartbeat(
    private_redis, migrated_service_database_url, tmp_path
):
    service = unique_name()
    key = f"services:{service}:outage-1"
    process = ServiceProcess(
        database_url=migrated_service_database_url,
        log_dir=tmp_path,
        env={
            "REDIS_URL": private_redis.url,
            "SERVICE_NAME": service,
            "SERVICE_INSTANCE_NAME": "outage-1",
            "SERVICE_HOST": "127.0.0.1",
            "HEALTH_CHECK_INTERVAL": f"{HEARTBEAT}s",
            "DISCOVERY_TTL": "5",
            "CONFIG_SERVICE_URL": "",
        },
        extra_args=["--no-seed"],
    )
    process.start()
    redis = private_redis.client()
    try:
        registered = json.loads(wait_until(lambda: redis.get(key), timeout=5))
        assert (registered["http_port"], registered["grpc_port"]) == (process.http_port, process.grpc_port)

        private_redis.stop()
        time.sleep(HEARTBEAT * 5)  # several failed heartbeats

        assert httpx.get(f"{process.base_url}/api/v1/health", timeout=5).status_code == 200
        ready = httpx.get(f"{process.base_url}/api/v1/ready", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"] == {"database": "ok", "redis": "fail"}
        failures = [line for line in json_lines(process.output()) if line["message"] == "discovery_registration_failed"]
        assert len(failures) == 1, failures
        assert failures[0]["level"] == "warning"

        private_redis.start()  # same port, empty: the key must come back by itself
        back_at = time.monotonic()
        redis = private_redis.client()
        wait_until(lambda: redis.exists(key), timeout=HEARTBEAT + 2)
        assert time.monotonic() - back_at <= HEARTBEAT + 1.0  # one heartbeat, plus reconnect slack

        assert 0 < redis.ttl(key) <= 5
        lines = json_lines(process.output())
        assert [line["level"] for line in lines if line["message"] == "discovery_registration_recovered"] == ["info"]
        assert len([line for line in lines if line["message"] == "discovery_registration_failed"]) == 1
        wait_until(
            lambda: httpx.get(f"{process.base_url}/api/v1/ready", timeout=5).json()["status"] == "ready", timeout=5
        )

        assert process.terminate() == 0
        assert not redis.exists(key)  # deleted on SIGTERM, not left to expire
    finally:
        process.stop()
        redis.close()

"""Trading through a Redis outage: Redis carries only service discovery, so losing it must cost no order.

The real service (two gunicorn workers, PostgreSQL) registers in a private redis-server. Client threads place
orders over HTTP without pause while the test SIGKILLs that redis-server, watches readiness turn "degraded" (still
200), keeps trading for a while, restarts Redis on the same port and waits for the discovery key to come back
within about one heartbeat. No request may fail, every accepted order must be stored, the database must hold
exactly one order per answered request, and the books must reconcile. The shared Redis is never touched.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from tests.ecosystem.conftest import RedisServer, json_lines, unique_name, wait_until
from tests.support.processes import ServiceProcess
from tests.support.services import require_postgres, scratch_database_url

HEARTBEAT = 1.0  # HEALTH_CHECK_INTERVAL, seconds
TTL = 5  # DISCOVERY_TTL
INSTANCE = "trading-1"
CLIENTS = 3
OUTAGE_TRADING = 2.0  # seconds of trading with Redis down, after readiness reports it


@dataclass(frozen=True)
class Answer:
    at: float
    status: int  # 0: no HTTP answer at all
    order_id: str | None
    error: str = ""


@pytest.fixture
def pg_service_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database for the service; skipped with the reason without PostgreSQL, failed in CI."""
    require_postgres()
    with scratch_database_url(tmp_path_factory, migrated=True) as url:
        yield url


@pytest.fixture
def trading_service(
    pg_service_database_url: str, private_redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, str]]:
    """The service registered in the private Redis, with a short heartbeat and TTL; yields it and its service
    name. Stopped (by pid) even when the test fails."""
    service_name = unique_name()
    process = ServiceProcess(
        database_url=pg_service_database_url,
        log_dir=tmp_path,
        workers=2,
        env={
            "REDIS_URL": private_redis.url,
            "SERVICE_NAME": service_name,
            "SERVICE_INSTANCE_NAME": INSTANCE,
            "SERVICE_HOST": "127.0.0.1",
            "HEALTH_CHECK_INTERVAL": f"{HEARTBEAT}s",
            "DISCOVERY_TTL": str(TTL),
            "CONFIG_SERVICE_URL": "",
        },
        extra_args=["--no-seed"],
    )
    try:
        process.start()
        yield process, service_name
    finally:
        process.stop()


def manage(process: ServiceProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """An operator's command with the service's own environment (its database and settings)."""
    return process.manage(*args, timeout=60)


def seed_trader(process: ServiceProcess, tmp_path: Path) -> str:
    """House liquidity and a funded trader, through ``seed_accounts`` as an operator would; returns its key."""
    spec = {
        "house": {"BTC": "100", "ETH": "2000", "USD": "10000000", "USDT": "10000000"},
        "users": [
            {
                "username": "outage-trader",
                "scopes": ["read", "trade"],
                "accounts": [{"label": "main", "deposits": {"USD": "1000000", "BTC": "10", "ETH": "100"}}],
            }
        ],
    }
    seed_file, keys_file = tmp_path / "seed.yaml", tmp_path / "keys.txt"
    seed_file.write_text(yaml.safe_dump(spec))
    manage(process, "seed_accounts", "--file", str(seed_file), "--keys-file", str(keys_file))
    (line,) = keys_file.read_text().splitlines()
    return line.split("\t")[2]


class Traders:
    """Client threads placing small market orders back to back until stopped, recording every answer."""

    ORDERS = [
        ("BTC-USD", "buy", "0.001"),
        ("ETH-USD", "sell", "0.01"),
        ("BTC-USD", "sell", "0.001"),
        ("ETH-USD", "buy", "0.01"),
    ]

    def __init__(self, base_url: str, key: str, account_id: str) -> None:
        self.base_url, self.key, self.account_id = base_url, key, account_id
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> Traders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def _run(self, n: int) -> None:
        headers = {"Authorization": f"Api-Key {self.key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=20) as client:
            for i, (symbol, side, quantity) in zip(itertools.count(), itertools.cycle(self.ORDERS)):
                if self._stop.is_set():
                    return
                payload = {
                    "account_id": self.account_id,
                    "symbol": symbol,
                    "side": side,
                    "order_type": "market",
                    "quantity": quantity,
                    "client_order_id": f"outage-{n}-{i}",
                }
                try:
                    response = client.post("/api/v1/orders", json=payload)
                except httpx.HTTPError as exc:
                    answer = Answer(time.monotonic(), 0, None, repr(exc))
                else:
                    body = response.json()
                    order_id = body.get("order_id") if response.status_code < 300 else None
                    answer = Answer(
                        time.monotonic(),
                        response.status_code,
                        order_id,
                        "" if response.status_code < 300 else response.text[:500],
                    )
                with self._lock:
                    self.answers.append(answer)


def ready(process: ServiceProcess) -> httpx.Response:
    response = httpx.get(f"{process.base_url}/api/v1/ready", timeout=5)
    assert response.status_code == 200, response.text  # Redis is not required: never 503 for it
    return response


@pytest.mark.slow
def test_orders_keep_flowing_and_none_is_lost_while_redis_dies_and_comes_back(
    trading_service: tuple[ServiceProcess, str], private_redis: RedisServer, tmp_path: Path
) -> None:
    process, service_name = trading_service
    discovery_key = f"services:{service_name}:{INSTANCE}"
    key = seed_trader(process, tmp_path)
    api = httpx.Client(base_url=f"{process.base_url}/api/v1", headers={"Authorization": f"Api-Key {key}"}, timeout=10)
    redis = private_redis.client()
    try:
        (account,) = api.get("/accounts").json()["accounts"]
        registered = json.loads(wait_until(lambda: redis.get(discovery_key), timeout=5))
        assert registered["http_port"] == process.http_port
        redis.close()

        with Traders(process.base_url, key, account["account_id"]) as traders:
            wait_until(lambda: traders.count() >= 20, timeout=15)

            # --- Redis dies (SIGKILL by pid: no goodbye to its clients) -----------------------------------------
            assert private_redis.proc is not None
            private_redis.proc.kill()
            private_redis.proc.wait(timeout=10)
            private_redis.proc = None
            killed_at = time.monotonic()

            degraded = wait_until(lambda: (r := ready(process)).json()["status"] == "degraded" and r, timeout=5)
            assert degraded.status_code == 200
            assert degraded.json()["checks"] == {"database": "ok", "redis": "fail"}
            time.sleep(OUTAGE_TRADING)
            assert ready(process).json()["status"] == "degraded"

            # --- Redis returns, empty, on the same port: the registration comes back by itself ---------------------
            private_redis.start()
            back_at = time.monotonic()
            redis = private_redis.client()
            wait_until(lambda: redis.exists(discovery_key), timeout=HEARTBEAT + 3)
            returned_after = time.monotonic() - back_at
            assert returned_after <= HEARTBEAT + 1.5, returned_after  # one heartbeat, plus reconnect slack
            assert 0 < redis.ttl(discovery_key) <= TTL
            assert json.loads(redis.get(discovery_key))["http_port"] == process.http_port
            wait_until(lambda: ready(process).json()["status"] == "ready", timeout=5)
            recovered_count = traders.count()
            wait_until(lambda: traders.count() >= recovered_count + 10, timeout=10)

        # --- Nothing failed, nothing was lost ------------------------------------------------------------------
        answers = traders.answers
        failures = [a for a in answers if a.status != 201]
        assert failures == [], failures[:5]
        during_outage = [a for a in answers if killed_at <= a.at <= back_at]
        assert len(during_outage) >= 10, f"only {len(during_outage)} orders answered while Redis was down"

        accepted = {a.order_id for a in answers}
        assert len(accepted) == len(answers)  # every request made its own order
        stored = {o["order_id"]: o for o in every_order(api)}
        assert accepted <= set(stored), f"{len(accepted - set(stored))} accepted orders missing"
        assert all(stored[order_id]["status"] == "filled" for order_id in accepted)
        with psycopg.connect(pg_url(process)) as conn:
            (in_database,) = conn.execute("SELECT count(*) FROM orders_order").fetchone()  # type: ignore[misc]
        assert in_database == len(answers) == len(stored)

        result = manage(process, "reconcile")
        assert "reconciliation OK" in result.stdout

        lines = json_lines(process.output())
        assert [line["level"] for line in lines if line["message"] == "discovery_registration_failed"] == ["warning"]
        assert [line["level"] for line in lines if line["message"] == "discovery_registration_recovered"] == ["info"]
        assert not [line for line in lines if line.get("level") in ("error", "critical")]

        assert process.terminate() == 0
        assert not redis.exists(discovery_key)  # withdrawn on SIGTERM
    finally:
        api.close()
        redis.close()


def every_order(api: httpx.Client) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    response = api.get("/orders", params={"limit": 500})
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        orders.extend(body["orders"])
        if not body["next"]:
            return orders
        response = api.get(body["next"])


def pg_url(process: ServiceProcess) -> str:
    return process.env["DATABASE_URL"]

"""The issue's acceptance on the real service (``manage.py serve`` on PostgreSQL, the price engine on):

* with a scenario running, a customer's resting limit order is filled by the tick whose price crosses it, and the
  books reconcile;
* two instances on one database: only one moves prices; killing it (by pid) hands over within a few seconds, and
  readiness and /metrics say which instance leads.

Every process a test starts is stopped by pid in a finalizer.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from tests.support.processes import ServiceProcess
from tests.support.services import require_postgres, scratch_database_url

pytestmark = pytest.mark.slow

ENGINE = {"PRICE_ENGINE_ENABLED": "true", "PRICE_ENGINE_TICK": "200ms", "CONFIG_SERVICE_URL": ""}
SEED = {
    "house": {"BTC": "100", "ETH": "2000", "USD": "10000000", "USDT": "10000000"},
    "users": [{"username": "ops", "scopes": ["operator"]}],
}


@pytest.fixture
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_postgres()
    with scratch_database_url(tmp_path_factory, migrated=True) as url:
        yield url


@pytest.fixture
def started(pg_url: str, tmp_path: Path) -> Iterator[Any]:
    """Start services on the one database (``start(name)``); each is stopped by pid afterwards."""
    processes: list[ServiceProcess] = []

    def start(name: str) -> ServiceProcess:
        process = ServiceProcess(
            database_url=pg_url,
            log_dir=tmp_path,
            workers=1,
            env={**ENGINE, "SERVICE_INSTANCE_NAME": name, "SERVICE_HOST": "127.0.0.1"},
            extra_args=["--no-seed"],
        )
        processes.append(process)
        return process.start(timeout=240)  # a fresh database migrates first; this machine may be busy

    try:
        yield start
    finally:
        for process in processes:
            process.stop()


def operator_key(process: ServiceProcess, tmp_path: Path) -> str:
    spec = tmp_path / "seed.yaml"
    spec.write_text(yaml.safe_dump(SEED))
    keys = tmp_path / "ops-keys.txt"
    process.manage("seed_accounts", "--file", str(spec), "--keys-file", str(keys))
    [line] = keys.read_text().splitlines()
    return line.split("\t")[2]


def api(process: ServiceProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{process.base_url}/api/v1", headers={"Authorization": f"Api-Key {key}"}, timeout=15)


def engine_ticks(url: str, *, since: datetime, symbol: str = "%") -> list[tuple[datetime, str, D]]:
    """(when, by whom, price) of every price change the engine made since ``since``, oldest first."""
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
        rows = conn.execute(
            "SELECT history_date, history_change_reason, reference_price FROM markets_historicalmarket "
            "WHERE history_change_reason LIKE 'price engine%%' AND history_date > %s AND symbol LIKE %s "
            "ORDER BY history_date",
            [since, symbol],
        ).fetchall()
    return [(when, reason.rsplit(" by ", 1)[1], price) for when, reason, price in rows]


def db_now(url: str) -> datetime:
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
        return conn.execute("SELECT now()").fetchone()[0]


def wait_for(check: Any, *, timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


SCENARIO = {
    "name": "dip",
    "seed": 7,
    "markets": {
        "BTC-USD": {
            "initial_price": "65000.00",
            "tick": "200ms",
            "model": {"kind": "gbm", "volatility": "0.3"},
            "ladder": {"spread_bps": 10, "levels": 10, "step_bps": 5, "size": "0.5"},
        }
    },
    "accounts": [{"name": "customer", "balances": {"USD": "100000"}, "api_key": {"scopes": ["read", "trade"]}}],
    "schedule": [{"at": "4s", "market": "BTC-USD", "action": "shock", "percent": -4}],
}


def test_a_resting_order_is_filled_by_the_tick_whose_price_crosses_it_and_the_books_reconcile(
    started, pg_url, tmp_path
):
    service = started("exsim-a")
    ops = api(service, operator_key(service, tmp_path))
    loaded = ops.post("/scenarios", json={"scenario": SCENARIO})
    assert loaded.status_code == 201, loaded.text
    [key] = loaded.json()["api_keys"]
    customer = api(service, key["key"])
    # 2.2 % below the price: nothing crosses it until the scheduled -4 % shock, about 4 s from now
    placed = customer.post(
        "/orders",
        json={
            "account_id": key["account_id"],
            "symbol": "BTC-USD",
            "side": "buy",
            "order_type": "limit",
            "price": "63570.00",
            "quantity": "0.1",
        },
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "open"
    order_id = placed.json()["order_id"]

    order = wait_for(lambda: (o := customer.get(f"/orders/{order_id}").json())["status"] == "filled" and o, timeout=40)
    [fill] = order["fills"]
    assert fill["liquidity"] == "maker" and fill["price"] == "63570.00"
    # the fill is the engine tick's own: the trade records that tick's reference price, and happened with it
    ticks = engine_ticks(pg_url, since=db_now(pg_url) - timedelta(minutes=5), symbol="BTC-USD")
    [(tick_at, by, price)] = [t for t in ticks if t[2] == D(fill["reference_price"])][-1:]
    assert by.startswith("exsim-a@")
    executed = datetime.fromisoformat(fill["created_at"].replace("Z", "+00:00"))
    assert abs((executed - tick_at).total_seconds()) < 0.2  # within one tick (the same transaction)
    assert price < D("63570.00")  # the reference price that crossed it
    earlier = [t for t in ticks if t[0] < tick_at]
    assert earlier and earlier[-1][2] > D("63570.00")  # the tick before did not cross it (asks are above the price)

    reconcile = service.manage("reconcile", check=False)
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr

    ready = httpx.get(f"{service.base_url}/api/v1/ready").json()
    assert ready["price_engine"]["leader"].startswith("exsim-a@")
    assert ready["price_engine"]["leader_is_this_instance"] is True
    assert customer.get("/scenarios/current").json()["name"] == "dip"


def test_two_instances_on_one_database_only_one_moves_prices_and_killing_it_hands_over(started, pg_url, tmp_path):
    first = started("exsim-a")
    second = started("exsim-b")

    def leader() -> str | None:
        """The leader both instances' readiness names (None while there is none or they do not agree yet)."""
        views = [httpx.get(f"{s.base_url}/api/v1/ready").json()["price_engine"] for s in (first, second)]
        if views[0]["leader"] is None or views[0]["leader"] != views[1]["leader"]:
            return None
        assert [v["leader_is_this_instance"] for v in views].count(True) == 1
        return views[0]["leader"]

    old = wait_for(leader, timeout=60)  # run_market boots after HTTP
    since = db_now(pg_url)
    time.sleep(3)
    movers = {by for _, by, _ in engine_ticks(pg_url, since=since)}
    assert movers == {old}  # five markets ticking every 200 ms, all by one process
    leading = first if old.startswith("exsim-a@") else second
    metrics = httpx.get(f"{leading.base_url}/metrics").text
    assert f'exchange_price_engine_leader{{instance="{old.split("@")[0]}"}} 1.0' in metrics

    os.kill(int(old.rsplit(":", 1)[1]), signal.SIGKILL)  # the leading run_market process, by pid
    killed_at = time.monotonic()
    new = wait_for(lambda: (name := leader()) and name != old and name, timeout=10, every=0.1)
    since = db_now(pg_url)
    wait_for(lambda: any(by == new for _, by, _ in engine_ticks(pg_url, since=since)), timeout=5, every=0.1)
    handover = time.monotonic() - killed_at
    assert handover < 5, handover
    time.sleep(2)
    assert {by for _, by, _ in engine_ticks(pg_url, since=since)} == {new}  # again exactly one mover

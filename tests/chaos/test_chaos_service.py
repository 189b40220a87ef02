"""Every fault on the real service, as a trading system meets it.

One service (``manage.py serve``: gunicorn with two workers, gRPC) runs on a fresh PostgreSQL database for the
module, with Redis for the rate limit counters. Each test injects a fault over HTTP with an operator key (as the
ecosystem's test coordinator does), observes it from a trading client (time, status, reason, spread, depth, fill
fraction), clears it, observes the recovery, and proves the books: ``manage.py reconcile`` passes after each.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import manage, seed_keys
from tests.support import grpc_health
from tests.support.processes import ServiceProcess
from tests.support.services import require_postgres, require_redis, scratch_database_url

pytestmark = pytest.mark.slow
D = Decimal
# The service re-reads what is in force every 200 ms: a fault acts (and ends) in every worker within that.
TTL = 0.2
SETTLE = 0.5
# Start-up on a loaded 2-core machine can take most of a minute.
START_TIMEOUT = 180.0

SEED = {
    "house": {"BTC": "100", "ETH": "1000", "USD": "10000000", "USDT": "10000000"},
    "users": [
        {"username": "coordinator", "scopes": ["operator"]},
        {"username": "strategy-desk", "scopes": ["read", "trade"]},
    ],
}


class Venue:
    def __init__(self, process: ServiceProcess, keys: dict[str, str]) -> None:
        self.process, self.keys = process, keys
        self.trader_key = keys["strategy-desk"]
        self.accounts: dict[str, str] = {}
        self.reconnect()

    def reconnect(self) -> None:
        """Fresh clients (after a restart the pooled connections are gone)."""
        base = self.process.base_url
        self.ops = httpx.Client(base_url=base, headers=_auth(self.keys["coordinator"]), timeout=30)
        self.trader = httpx.Client(base_url=f"{base}/api/v1", headers=_auth(self.trader_key), timeout=30)

    def open_account(self, label: str, funds: dict[str, str]) -> str:
        response = self.ops.post("/api/v1/accounts", json={"label": label, "owner": "strategy-desk"})
        assert response.status_code == 201, response.text
        account_id = response.json()["account_id"]
        for asset, amount in funds.items():
            deposit = self.ops.post(
                f"/api/v1/accounts/{account_id}/deposits", json={"asset": asset, "amount": amount, "reason": "chaos"}
            )
            assert deposit.status_code == 201, deposit.text
        self.accounts[label] = account_id
        return account_id

    def inject(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.ops.post(f"/chaos/{path}", json=body)
        assert response.status_code == 200, response.text
        time.sleep(SETTLE)  # every worker's snapshot is fresh again
        return response.json()

    def clear(self, chaos_id: str) -> dict[str, Any]:
        response = self.ops.delete(f"/chaos/{chaos_id}")
        assert response.status_code == 200, response.text
        time.sleep(SETTLE)
        return response.json()

    def order(self, label: str, **fields: Any) -> httpx.Response:
        body = {"account_id": self.accounts[label], "symbol": "BTC-USD", "side": "buy", "order_type": "market"}
        body.update(fields or {"quantity": "0.001"})
        return self.trader.post("/orders", json=body)

    def reconciles(self) -> None:
        result = manage(self.process, "reconcile")
        assert "reconciliation OK" in result.stdout, result.stdout + result.stderr

    def book(self, symbol: str = "BTC-USD") -> dict[str, Any]:
        response = self.trader.get(f"/markets/{symbol}/book", params={"depth": 50})
        assert response.status_code == 200, response.text
        return response.json()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    require_postgres()
    redis = require_redis()
    log_dir = tmp_path_factory.mktemp("chaos-service")
    with scratch_database_url(tmp_path_factory, migrated=True) as url:
        process = ServiceProcess(
            database_url=url,
            log_dir=log_dir,
            workers=2,
            env={
                "CONFIG_SERVICE_URL": "",
                "SERVICE_HOST": "127.0.0.1",
                "REDIS_URL": redis,
                "CHAOS_CACHE_TTL": f"{int(TTL * 1000)}ms",
                "WEB_THREADS": "4",
            },
            extra_args=["--no-seed"],
        )
        try:
            process.start(timeout=START_TIMEOUT)
            keys = seed_keys(process, SEED, Path(log_dir))
            venue = Venue(process, keys)
            venue.open_account("strategy-arbitrage", {"USD": "200000.00", "BTC": "2"})
            venue.open_account("strategy-momentum", {"USD": "50000.00"})
            yield venue
        finally:
            process.stop()


@pytest.fixture(autouse=True)
def _nothing_left_in_force(venue: Venue) -> Iterator[None]:
    yield
    venue.ops.delete("/chaos/clear-all")
    time.sleep(SETTLE)


def test_latency_delays_the_scoped_operation_and_account_only_until_cleared(venue: Venue) -> None:
    chaos = venue.inject(
        "inject-latency",
        {
            "DelayMS": 600,
            "JitterMS": 200,
            "Operations": ["submit_order"],
            "Duration": "5m",
            "Accounts": ["strategy-arbitrage"],
        },
    )

    def timed(call: Any) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = call()
        return time.perf_counter() - started, response

    slow = [timed(lambda: venue.order("strategy-arbitrage")) for _ in range(3)]
    other_account, _ = timed(lambda: venue.order("strategy-momentum"))
    other_operation, _ = timed(lambda: venue.trader.get("/markets/BTC-USD/book"))

    assert all(r.status_code == 201 for _, r in slow)
    assert all(0.6 <= t < 3 for t, _ in slow), [t for t, _ in slow]
    assert other_account < 0.5 and other_operation < 0.5
    order = venue.trader.get(f"/orders/{slow[0][1].json()['order_id']}").json()
    assert (order["status"], order["chaos_id"]) == ("filled", chaos["chaos_id"])

    venue.clear(chaos["chaos_id"])
    after, response = timed(lambda: venue.order("strategy-arbitrage"))
    assert response.status_code == 201 and after < 0.5
    history = venue.ops.get("/chaos/history", params={"type": "latency"}).json()["injections"]
    assert history[0]["chaos_id"] == chaos["chaos_id"] and history[0]["affected"] >= 3
    venue.reconciles()


def test_rejections_are_recorded_with_the_reason_and_replay_from_the_seed(venue: Venue) -> None:
    chaos = venue.inject(
        "reject-orders",
        {
            "rejection_rate": 0.5,
            "reason": "insufficient_liquidity",
            "seed": 1234,
            "duration_s": 300,
            "affected_accounts": ["strategy-arbitrage"],
        },
    )
    assert chaos["seed"] == 1234
    ids = [f"rej-{i}" for i in range(20)]
    answers = {cid: venue.order("strategy-arbitrage", quantity="0.001", client_order_id=cid) for cid in ids}
    untouched = venue.order("strategy-momentum")

    rejected = {cid for cid, r in answers.items() if r.status_code == 422}
    assert {r.status_code for r in answers.values()} == {201, 422}
    assert 4 <= len(rejected) <= 16
    for cid in rejected:
        error = answers[cid].json()["error"]
        assert error["code"] == "insufficient_liquidity"
        stored = venue.trader.get(f"/orders/{error['details']['order_id']}").json()
        assert (stored["status"], stored["reject_reason"], stored["chaos_id"]) == (
            "rejected",
            "insufficient_liquidity",
            chaos["chaos_id"],
        )
    assert untouched.status_code == 201 and untouched.json()["chaos_id"] is None

    # The same seed and the same client order ids decide the same, in a new injection on another account.
    venue.clear(chaos["chaos_id"])
    replay = venue.inject(
        "reject-orders", {"rejection_rate": 0.5, "seed": 1234, "affected_accounts": ["strategy-momentum"]}
    )
    again = {
        cid for cid in ids if venue.order("strategy-momentum", quantity="0.001", client_order_id=cid).status_code == 422
    }
    assert again == rejected
    venue.clear(replay["chaos_id"])
    assert venue.order("strategy-arbitrage").status_code == 201
    venue.reconciles()


def test_downtime_turns_trading_readiness_and_grpc_health_off_and_on_without_a_restart(venue: Venue) -> None:
    pid = venue.process.proc.pid
    assert grpc_health.wait_for_check(venue.process.grpc_target, "", "SERVING", 5) == "SERVING"
    chaos = venue.inject("simulate-downtime", {"duration_s": 60, "error_message": "exchange_maintenance"})

    down = venue.order("strategy-arbitrage")
    ready = httpx.get(f"{venue.process.base_url}/api/v1/ready", timeout=5)
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "exchange_maintenance"
    assert 1 <= int(down.headers["Retry-After"]) <= 60
    assert venue.trader.get("/markets").status_code == 503
    assert (ready.status_code, ready.json()["checks"]["maintenance"]) == (503, "fail")
    assert grpc_health.wait_for_check(venue.process.grpc_target, "", "NOT_SERVING", 5) == "NOT_SERVING"
    assert venue.ops.get("/chaos/status").json()["active"][0]["chaos_id"] == chaos["chaos_id"]

    venue.clear(chaos["chaos_id"])
    assert venue.order("strategy-arbitrage").status_code == 201
    assert httpx.get(f"{venue.process.base_url}/api/v1/ready", timeout=5).status_code == 200
    assert grpc_health.wait_for_check(venue.process.grpc_target, "", "SERVING", 5) == "SERVING"

    # A short downtime ends on its own.
    venue.inject("simulate-downtime", {"duration": "2s"})
    assert venue.trader.get("/markets").status_code == 503
    time.sleep(2.0)
    assert venue.trader.get("/markets").status_code == 200
    assert grpc_health.wait_for_check(venue.process.grpc_target, "", "SERVING", 5) == "SERVING"
    assert venue.process.proc.pid == pid and venue.process.proc.poll() is None
    venue.reconciles()


def test_a_wider_spread_moves_the_house_quotes_out_and_back(venue: Venue) -> None:
    def spread() -> Decimal:
        book = venue.book()
        return D(book["asks"][0][0]) - D(book["bids"][0][0])

    before = spread()
    chaos = venue.inject(
        "manipulate-spreads", {"multiplier": 5.0, "symbols": ["BTC/USD", "ETH/USD"], "duration_s": 600}
    )
    wide = spread()
    filled = venue.order("strategy-arbitrage").json()
    venue.clear(chaos["chaos_id"])

    assert 4 * before <= wide <= 6 * before + D("0.02"), (before, wide)
    assert filled["chaos_id"] == chaos["chaos_id"]
    assert spread() == before
    venue.reconciles()


def test_reduced_liquidity_thins_the_house_depth_until_restored(venue: Venue) -> None:
    def depth() -> Decimal:
        return sum((D(q) for _, q in venue.book()["asks"]), D(0))

    before = depth()
    venue.inject("reduce-liquidity", {"symbols": ["BTC-USD"], "reduction_factor": 0.5})
    thin = depth()
    other = sum((D(q) for _, q in venue.book("ETH-USD")["asks"]), D(0))
    restored = venue.ops.post("/chaos/restore-liquidity", json={"symbols": ["BTC-USD"]})
    time.sleep(SETTLE)

    assert restored.status_code == 200 and restored.json()["count"] == 1
    assert thin <= before / 2 + D("0.01"), (before, thin)
    assert other > 0
    assert depth() == before
    venue.reconciles()


def test_partial_fills_cap_what_a_match_fills_and_the_time_in_force_decides_the_rest(venue: Venue) -> None:
    chaos = venue.inject("partial-fills", {"max_fill_fraction": 0.3, "probability": 1, "duration_s": 300})
    best_ask = D(venue.book()["asks"][0][0])

    market = venue.order("strategy-arbitrage", quantity="0.01").json()
    ioc = venue.order(
        "strategy-arbitrage", order_type="limit", price=f"{best_ask + 100:.2f}", quantity="0.01", time_in_force="ioc"
    ).json()
    venue.clear(chaos["chaos_id"])
    whole = venue.order("strategy-arbitrage", quantity="0.01").json()

    for order in (market, ioc):
        assert D(order["filled_quantity"]) / D("0.01") == D("0.3")
        assert order["status"] == "expired" and order["chaos_id"] == chaos["chaos_id"]
    assert (market["end_reason"], ioc["end_reason"]) == ("market_remainder", "ioc_remainder")
    assert (whole["status"], D(whole["filled_quantity"])) == ("filled", D("0.01"))
    venue.reconciles()


def test_unknown_outcomes_under_16_clients_retrying_by_client_order_id_lose_and_duplicate_nothing(
    venue: Venue,
) -> None:
    account = venue.open_account("strategy-unknown", {"USD": "100000.00"})
    chaos = venue.inject("unknown-outcome", {"probability": 0.5, "mode": "mixed", "seed": 7, "duration_s": 300})
    per_client, clients = 6, 16
    seen: Counter[str] = Counter()
    found: dict[str, str] = {}
    lock = threading.Lock()
    failures: list[str] = []
    first_lost: set[str] = set()

    def trade(n: int) -> None:
        with httpx.Client(
            base_url=f"{venue.process.base_url}/api/v1", headers=_auth(venue.trader_key), timeout=30
        ) as c:
            for i in range(per_client):
                cid = f"u-{n}-{i}-{uuid.uuid4().hex[:6]}"
                body = {
                    "account_id": account,
                    "symbol": "BTC-USD",
                    "side": "buy",
                    "order_type": "market",
                    "quantity": "0.001",
                    "client_order_id": cid,
                }
                for attempt in range(10):
                    try:
                        response = c.post("/orders", json=body)
                    except httpx.TransportError:
                        with lock:
                            seen["dropped"] += 1
                            if attempt == 0:
                                first_lost.add(cid)
                        continue
                    if response.status_code == 504:
                        with lock:
                            seen["504"] += 1
                            if attempt == 0:
                                first_lost.add(cid)
                            if response.json()["error"]["code"] != "execution_status_unknown":
                                failures.append(response.text)
                        continue
                    with lock:
                        seen[str(response.status_code)] += 1
                        if response.status_code in (200, 201):
                            found[cid] = response.json()["order_id"]
                        else:
                            failures.append(response.text)
                    break

    threads = [threading.Thread(target=trade, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    venue.clear(chaos["chaos_id"])

    assert not failures, failures[:3]
    assert len(found) == clients * per_client
    assert seen["504"] > 0 and seen["dropped"] > 0 and seen["200"] > 0, seen
    page = venue.trader.get("/orders", params={"account_id": account, "limit": 500})
    orders = page.json()["orders"]
    assert page.json()["next"] is None
    by_cid = Counter(o["client_order_id"] for o in orders)
    assert set(by_cid) == set(found) and max(by_cid.values()) == 1
    assert {o["order_id"] for o in orders} == set(found.values())
    # Exactly the orders whose first answer was lost carry the injection's id (a retry is answered, not lost).
    assert {o["client_order_id"] for o in orders if o["chaos_id"] == chaos["chaos_id"]} == first_lost
    assert all(o["status"] == "filled" for o in orders)
    venue.reconciles()


def test_a_client_over_its_rate_limit_gets_429_with_the_headers_and_recovers_after_retry_after(venue: Venue) -> None:
    chaos = venue.inject("tighten-rate-limits", {"order_limit_10s": 3, "weight_limit_1m": 1000, "duration_s": 120})

    answers = [venue.order("strategy-arbitrage") for _ in range(4)]

    assert [r.status_code for r in answers] == [201, 201, 201, 429]
    assert [r.headers["X-MBX-ORDER-COUNT-10S"] for r in answers] == ["1", "2", "3", "4"]
    assert all(int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 1 for r in answers)
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 10
    time.sleep(wait + 0.2)
    again = venue.order("strategy-arbitrage")
    assert again.status_code == 201 and again.headers["X-MBX-ORDER-COUNT-10S"] == "1"
    venue.clear(chaos["chaos_id"])
    assert "X-MBX-ORDER-COUNT-10S" not in venue.order("strategy-arbitrage").headers
    venue.reconciles()


def test_metrics_show_what_is_in_force_and_what_it_touched(venue: Venue) -> None:
    venue.inject("inject-latency", {"delay_ms": 1, "duration_s": 60})
    venue.trader.get("/markets")

    text = httpx.get(f"{venue.process.base_url}/metrics", timeout=10).text

    assert re.search(r'^exchange_chaos_active\{type="latency"\} 1\.0$', text, re.MULTILINE), text[-2000:]
    assert re.search(r'^exchange_chaos_active\{type="downtime"\} 0\.0$', text, re.MULTILINE)
    affected = re.search(r'^exchange_chaos_affected_total\{type="reject_orders"\} (\S+)$', text, re.MULTILINE)
    assert affected is not None


def test_an_injection_outlives_a_restart_and_still_ends_on_its_own(venue: Venue) -> None:
    # Long enough to outlast a restart with a wide margin, and no longer: the test waits for it to end. A restart
    # (stop, then start) is judged by how long this machine took to start the service for the module, so a busy
    # machine gets a longer injection (up to 90 s, most of a minute per start-up), a quiet one a wait of seconds.
    assert venue.process.started_in is not None
    restart = venue.process.started_in + 5  # stopping takes a few seconds
    duration = min(90, max(20, round(3 * restart)))
    chaos = venue.inject("simulate-downtime", {"duration_s": duration, "error_message": "exchange_maintenance"})

    assert venue.process.terminate() == 0
    venue.process.start(timeout=START_TIMEOUT)
    venue.reconnect()

    status = venue.ops.get("/chaos/status").json()
    assert [i["chaos_id"] for i in status["active"]] == [chaos["chaos_id"]], (
        f"the {duration} s injection did not outlast a restart of {venue.process.started_in:.1f} s start-up: {status}"
    )
    assert venue.trader.get("/markets").status_code == 503
    remaining = status["active"][0]["remaining_s"]
    time.sleep(remaining + SETTLE)
    assert venue.trader.get("/markets").status_code == 200
    assert venue.ops.get("/chaos/status").json()["count"] == 0
    assert grpc_health.wait_for_check(venue.process.grpc_target, "", "SERVING", 5) == "SERVING"
    venue.reconciles()

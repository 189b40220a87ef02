"""Database faults under load, against the real service: PostgreSQL restarted, crashed (SIGKILL of the postmaster)
and every backend terminated, while a few clients place orders. No answer is a 500 (an outage is 503
``service_unavailable`` with ``Retry-After``), every order acknowledged with 201 exists exactly once afterwards, the
service serves again by itself, and the books reconcile.

The server is a private PostgreSQL instance (tests/support/postgres_instance.py), so crashing it harms nobody.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from tests.support.postgres_instance import PrivatePostgres
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 4
BEFORE, AFTER = 1.5, 3.0  # seconds of load before the fault and after the server is back


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    instance = PrivatePostgres().init().start()
    try:
        yield instance
    finally:
        instance.destroy()


@pytest.fixture(scope="module")
def service(server: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    url = server.create_database("exchange")
    process = ServiceProcess(
        database_url=url, log_dir=tmp_path_factory.mktemp("faults"), workers=2, env={"CONFIG_SERVICE_URL": ""}
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def trader(service: ServiceProcess) -> dict[str, str]:
    keys = dict(line.split("\t")[0::2] for line in (service.log_path.parent / f"api-keys-{service.http_port}.txt")
                .read_text().splitlines())  # fmt: skip
    headers = {"Authorization": f"Api-Key {keys['demo-trader']}"}
    [account] = httpx.get(f"{service.base_url}/api/v1/accounts", headers=headers).json()["accounts"]
    return {"key": keys["demo-trader"], "account_id": account["account_id"]}


def load_during(service: ServiceProcess, trader: dict[str, str], fault: Callable[[], None]) -> dict:
    """CLIENTS keep-alive clients place small market orders (buys and sells) before, during and after ``fault``."""
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    acknowledged: list[tuple[str, str]] = []
    bad: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        headers = {"Authorization": f"Api-Key {trader['key']}"}
        with httpx.Client(base_url=service.base_url, headers=headers, timeout=20) as http:
            i = 0
            while not stop.is_set():
                i += 1
                client_order_id = f"fault-{n}-{i}-{uuid.uuid4().hex[:8]}"
                body = {
                    "account_id": trader["account_id"],
                    "symbol": "BTC-USD",
                    "side": "buy" if i % 2 else "sell",
                    "order_type": "market",
                    "quantity": "0.0001",
                    "client_order_id": client_order_id,
                }
                try:
                    response = http.post("/api/v1/orders", json=body)
                except httpx.HTTPError as exc:  # a dropped connection is no answer at all; count it apart
                    with lock:
                        bad.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 201:
                        acknowledged.append((client_order_id, response.json()["order_id"]))
                    elif response.status_code == 503:
                        if not response.headers.get("Retry-After") or response.json()["error"]["code"] != (
                            "service_unavailable"
                        ):
                            bad.append(f"503 without Retry-After or code: {response.text[:300]}")
                    elif response.status_code >= 500:
                        bad.append(response.text[:300])
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(BEFORE)
    fault()
    recovered_at = len(acknowledged)
    time.sleep(AFTER)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return {"statuses": statuses, "acknowledged": acknowledged, "bad": bad, "after_fault": acknowledged[recovered_at:]}


def assert_nothing_lost(service: ServiceProcess, server: PrivatePostgres, result: dict) -> None:
    assert result["statuses"][500] == 0, result
    assert not [status for status in result["statuses"] if status >= 500 and status != 503], result["statuses"]
    assert result["bad"] == [], result["bad"][:5]
    assert result["after_fault"], f"no order was acknowledged after the fault: {result['statuses']}"
    with psycopg.connect(server.url("exchange")) as conn:
        ids = [client_order_id for client_order_id, _ in result["acknowledged"]]
        rows = conn.execute(
            "SELECT client_order_id, order_id::text, count(*) OVER (PARTITION BY client_order_id) "
            "FROM orders_order WHERE client_order_id = ANY(%s)",
            [ids],
        ).fetchall()
    found = {client_order_id: (order_id, copies) for client_order_id, order_id, copies in rows}
    for client_order_id, order_id in result["acknowledged"]:
        assert found.get(client_order_id) == (order_id, 1), client_order_id
    service.manage("reconcile")  # exit 1 with the discrepancies otherwise
    output = service.output()
    assert "Traceback" not in output, output[output.find("Traceback") - 2000 : output.find("Traceback") + 3000]


def test_a_restart_under_load_answers_503_and_loses_nothing(service, server, trader):
    result = load_during(service, trader, server.restart)

    assert_nothing_lost(service, server, result)


def test_a_crash_under_load_answers_503_and_loses_nothing(service, server, trader):
    result = load_during(service, trader, server.crash_and_start)

    assert_nothing_lost(service, server, result)


def test_terminated_backends_are_replaced_and_lose_nothing(service, server, trader):
    terminated: list[int] = []
    result = load_during(service, trader, lambda: terminated.append(server.terminate_backends("exchange")))

    assert terminated[0] > 0
    assert_nothing_lost(service, server, result)

"""The live streams as a client sees them: the real service, real HTTP, a real SSE client.

Each test seeds house liquidity and two traders (alice, bob) with an operator, then reads streams while it trades
over the REST API. What is checked is what a trading system relies on: every committed change arrives, in commit
order, with strictly increasing ids; a client that hangs up and resumes with ``Last-Event-ID`` gets exactly what it
missed; nobody sees another user's events; a change that rolled back is never published.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import client, seed_keys
from tests.streams.conftest import SEED, Reader
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.slow


def ids_of(events: list[tuple[str, str, Any]]) -> list[tuple[int, int]]:
    return [tuple(int(p) for p in ([*i.split("."), "0"])[:2]) for i, _e, _d in events]  # type: ignore[misc]


def strictly_increasing(values: list[Any]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


def account_of(api: httpx.Client) -> str:
    [account] = api.get("/accounts").json()["accounts"]
    return account["account_id"]


def limit_order(api: httpx.Client, account: str, *, side: str, price: str, quantity: str = "0.01", **extra: Any):
    body = {"account_id": account, "symbol": "BTC-USD", "side": side, "order_type": "limit", "price": price}
    response = api.post("/orders", json={**body, "quantity": quantity, **extra})
    assert response.status_code in (200, 201), response.text
    return response.json()


def far_price(api: httpx.Client, side: str, *, distance: float = 0.1) -> str:
    """A price that rests without matching (well away from the house's quotes)."""
    price = float(api.get("/markets/BTC-USD").json()["price"])  # only to choose a round test price
    return f"{int(price * (1 - distance if side == 'buy' else 1 + distance))}.00"


def seeded(service: ServiceProcess, tmp_path: Path) -> dict[str, Any]:
    """SEED's house liquidity, and SEED's users under names of this test's own (``alice-<test>``), so tests that
    share one service never see each other's orders or balances; keys, clients and accounts are by SEED's names."""
    suffix = uuid.uuid4().hex[:8]
    spec = {**SEED, "users": [{**user, "username": f"{user['username']}-{suffix}"} for user in SEED["users"]]}
    keys = {name.removesuffix(f"-{suffix}"): key for name, key in seed_keys(service, spec, tmp_path).items()}
    assert set(keys) == {user["username"] for user in SEED["users"]}
    apis = {name: client(service, key) for name, key in keys.items()}
    return {
        "keys": keys,
        "api": apis,
        "accounts": {name: account_of(apis[name]) for name in ("alice", "bob")},
        "stream": f"{service.base_url}/api/v1/stream",
    }


@pytest.fixture
def setup(service: ServiceProcess, tmp_path: Path) -> dict[str, Any]:
    return seeded(service, tmp_path)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


def test_order_events_arrive_in_commit_order_with_strictly_increasing_ids_and_the_rest_fields(setup, reader):
    alice, account = setup["api"]["alice"], setup["accounts"]["alice"]
    stream = reader(f"{setup['stream']}/orders", headers=auth(setup["keys"]["alice"]))
    stream.wait_for(lambda r: r.named("orders"))
    assert stream.events[0][1] == "orders" and stream.events[0][2] == {"orders": []}

    buy = far_price(alice, "buy")
    placed = [limit_order(alice, account, side="buy", price=buy) for _ in range(5)]
    for order in placed[:3]:
        assert alice.delete(f"/orders/{order['order_id']}").status_code == 200
    market = alice.post(
        "/orders",
        json={"account_id": account, "symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "0.02"},
    ).json()
    expected = len(placed) + 3 + 1
    stream.wait_for(lambda r: len(r.named("order")) >= expected)
    time.sleep(0.5)  # nothing more is coming
    events = stream.named("order")
    assert len(events) == expected, [e[1]["status"] for e in events]
    assert strictly_increasing(ids_of(stream.events))
    # Commit order: each order's events follow its life (placed, then cancelled), and the last equals the REST view.
    by_order: dict[str, list[str]] = {}
    for _id, body in events:
        by_order.setdefault(body["order_id"], []).append(body["status"])
    for order in placed[:3]:
        assert by_order[order["order_id"]] == ["open", "cancelled"]
    for order in placed[3:]:
        assert by_order[order["order_id"]] == ["open"]
    assert by_order[market["order_id"]] == ["filled"]
    final = {body["order_id"]: body for _id, body in events}
    for order_id in by_order:
        rest = alice.get(f"/orders/{order_id}").json()
        assert final[order_id] == rest  # the same fields, the same values, as the REST resource
    for field in (
        "order_id",
        "symbol",
        "side",
        "order_type",
        "quantity",
        "price",
        "status",
        "filled_quantity",
        "average_price",
        "created_at",
        "updated_at",
    ):
        assert field in final[market["order_id"]]  # what the dashboard reads


def test_a_client_that_resumes_with_last_event_id_misses_nothing_and_sees_nothing_twice(setup, reader):
    alice, account = setup["api"]["alice"], setup["accounts"]["alice"]
    headers = auth(setup["keys"]["alice"])
    # The reference: a client that never hangs up, on the same streams.
    whole = {name: reader(f"{setup['stream']}/{name}", headers=headers) for name in ("orders", "balances", "trades")}
    first = {name: reader(f"{setup['stream']}/{name}", headers=headers) for name in ("orders", "balances", "trades")}
    buy = far_price(alice, "buy")
    for _ in range(3):
        limit_order(alice, account, side="buy", price=buy)
    alice.post(
        "/orders",
        json={"account_id": account, "symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "0.01"},
    )
    first["orders"].wait_for(lambda r: len(r.named("order")) >= 4)
    first["balances"].wait_for(lambda r: len(r.named("balance")) >= 5)
    first["trades"].wait_for(lambda r: len(r.named("trade")) >= 1)
    last_ids = {}
    for name, r in first.items():
        r.close()
        last_ids[name] = r.events[-1][0]  # what an EventSource would send as Last-Event-ID
    # While it is away: orders rest, fill and are cancelled (balances move, trades happen).
    for _ in range(2):
        order = limit_order(alice, account, side="buy", price=buy)
        alice.delete(f"/orders/{order['order_id']}")
    for side in ("buy", "sell"):
        alice.post(
            "/orders",
            json={"account_id": account, "symbol": "BTC-USD", "side": side, "order_type": "market", "quantity": "0.01"},
        )
    whole["orders"].wait_for(lambda r: len(r.named("order")) >= 4 + 4 + 2)
    whole["trades"].wait_for(lambda r: len(r.named("trade")) >= 3)
    time.sleep(0.5)
    for name in ("orders", "balances", "trades"):
        resumed = reader(f"{setup['stream']}/{name}", headers={**headers, "Last-Event-ID": last_ids[name]})
        reference = [e for e in whole[name].events if e[0] and ids_of([e])[0] > ids_of([(last_ids[name], "", None)])[0]]
        reference = [e for e in reference if e[1] not in ("orders", "positions")]
        expected = len(reference)
        assert expected > 0
        resumed.wait_for(lambda r, n=expected: len(r.events) >= n)
        time.sleep(0.3)
        assert list(resumed.events) == reference, name  # the same events, same ids, same data, no list again
        assert len({e[0] for e in resumed.events}) == len(resumed.events)


def test_a_user_never_receives_another_users_events_and_an_operator_sees_both(setup, reader):
    keys, api, accounts = setup["keys"], setup["api"], setup["accounts"]
    streams = {
        (who, name): reader(f"{setup['stream']}/{name}", headers=auth(keys[who]))
        for who in ("alice", "bob", "desk-operator")
        for name in ("orders", "balances", "trades", "positions")
    }
    for who in ("alice", "bob"):
        api[who].post(
            "/orders",
            json={
                "account_id": accounts[who],
                "symbol": "BTC-USD",
                "side": "buy",
                "order_type": "market",
                "quantity": "0.01",
            },
        )
    streams[("desk-operator", "trades")].wait_for(lambda r: len(r.named("trade")) >= 2)
    streams[("desk-operator", "positions")].wait_for(lambda r: len(r.named("position")) >= 2)
    time.sleep(0.5)
    for who, other in (("alice", "bob"), ("bob", "alice")):
        for name, event in (
            ("orders", "order"),
            ("balances", "balance"),
            ("trades", "trade"),
            ("positions", "position"),
        ):
            seen = {body["account_id"] for _i, body in streams[(who, name)].named(event)}
            assert seen == {accounts[who]}, (who, name, seen)
            assert accounts[other] not in json.dumps(streams[(who, name)].events)
    operator_seen = {body["account_id"] for _i, body in streams[("desk-operator", "orders")].named("order")}
    assert operator_seen == {accounts["alice"], accounts["bob"]}
    # One account of the operator's choosing: account_id narrows the stream; another user's account is a 404.
    only_bob = reader(
        f"{setup['stream']}/balances", headers=auth(keys["desk-operator"]), params={"account_id": accounts["bob"]}
    )
    api["alice"].post(
        "/orders",
        json={
            "account_id": accounts["alice"],
            "symbol": "BTC-USD",
            "side": "sell",
            "order_type": "market",
            "quantity": "0.01",
        },
    )
    api["bob"].post(
        "/orders",
        json={
            "account_id": accounts["bob"],
            "symbol": "BTC-USD",
            "side": "sell",
            "order_type": "market",
            "quantity": "0.01",
        },
    )
    only_bob.wait_for(lambda r: len(r.named("balance")) >= 2)
    time.sleep(0.5)
    assert {body["account_id"] for _i, body in only_bob.named("balance")} == {accounts["bob"]}
    refused = httpx.get(
        f"{setup['stream']}/orders", headers=auth(keys["alice"]), params={"account_id": accounts["bob"]}, timeout=10
    )
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    anonymous = httpx.get(f"{setup['stream']}/orders", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"


def test_a_rolled_back_order_produces_no_event(setup, reader, service: ServiceProcess):
    """An idempotent retry runs the whole placement again (matching, balances, trades) and loses the race to insert
    the order: its transaction rolls back and the original is answered. Nothing of the retry is published."""
    alice, account = setup["api"]["alice"], setup["accounts"]["alice"]
    headers = auth(setup["keys"]["alice"])
    orders = reader(f"{setup['stream']}/orders", headers=headers)
    balances = reader(f"{setup['stream']}/balances", headers=headers)
    trades = reader(f"{setup['stream']}/trades", headers=headers)
    body = {
        "account_id": account,
        "symbol": "BTC-USD",
        "side": "buy",
        "order_type": "market",
        "quantity": "0.01",
        "client_order_id": "retry-me",
    }
    first = alice.post("/orders", json=body)
    assert first.status_code == 201
    orders.wait_for(lambda r: len(r.named("order")) >= 1)
    balances.wait_for(lambda r: len(r.named("balance")) >= 2)
    trades.wait_for(lambda r: len(r.named("trade")) >= 1)
    counts = (len(orders.events), len(balances.events), len(trades.events))
    for _ in range(3):
        again = alice.post("/orders", json=body)
        assert again.status_code == 200 and again.json()["order_id"] == first.json()["order_id"]
    # A marker committed after the retries: once it arrives, anything the retries had published would have too.
    marker = limit_order(alice, account, side="buy", price=far_price(alice, "buy"))
    orders.wait_for(lambda r: any(b["order_id"] == marker["order_id"] for _i, b in r.named("order")))
    balances.wait_for(lambda r: len(r.events) >= counts[1] + 1)
    time.sleep(0.5)
    assert len(orders.events) == counts[0] + 1
    assert len(balances.events) == counts[1] + 1  # the marker's reservation, nothing of the retries
    assert len(trades.events) == counts[2]
    # The outbox itself holds nothing of them either: one order row event per committed change.
    rows = service.manage(
        "shell",
        "-c",
        (
            "from streams.models import Event; from orders.models import Order;"
            "o = Order.objects.get(client_order_id='retry-me');"
            "print(Event.objects.filter(topic='order', data__id=o.pk).count())"
        ),
        timeout=60,
    ).stdout.split()
    assert rows[-1] == "1"


def test_sigterm_ends_every_stream_with_a_final_event_within_the_shutdown_budget(own_service: ServiceProcess, tmp_path):
    service = own_service  # this test stops the service: not the module's
    setup = seeded(service, tmp_path)
    headers = auth(setup["keys"]["alice"])
    token = setup["api"]["alice"].post("/stream/token").json()["token"]
    streams = [Reader(f"{setup['stream']}/{name}", headers=headers).__enter__() for name in ("orders", "balances")]
    streams.append(Reader(f"{setup['stream']}/positions", params={"token": token}).__enter__())  # as a browser
    try:
        time.sleep(0.5)
        started = time.monotonic()
        assert service.proc is not None
        service.proc.send_signal(signal.SIGTERM)
        for stream in streams:
            stream.wait_for(lambda r: any(e == "error" for _i, e, _d in r.events), timeout=10)
            assert stream.events[-1][2]["code"] == "shutting_down"
        service.proc.wait(30)
        assert time.monotonic() - started < 20  # gunicorn's graceful timeout: the streams did not hold it up
        assert service.proc.returncode == 0
        assert streams[2].named("positions")  # the token opened the stream ...
        assert token not in service.output()  # ... and is in no log line
    finally:
        for stream in streams:
            stream.close()


def test_a_markets_stream_shows_the_book_then_its_changes_trades_and_ticker(setup, reader):
    alice, account = setup["api"]["alice"], setup["accounts"]["alice"]
    market = reader(f"{setup['stream']}/markets/BTC-USD", headers=auth(setup["keys"]["bob"]))  # any read key
    market.wait_for(lambda r: r.named("book"))
    [(_first_id, book)] = market.named("book")
    assert book["snapshot"] is True and book["symbol"] == "BTC-USD" and book["bids"] and book["asks"]
    assert book == {**alice.get("/markets/BTC-USD/book").json(), "timestamp": book["timestamp"], "snapshot": True}
    # A new level of the book: nearer than the other tests' resting orders (at 10 %), which the module's shared
    # service still holds, so it is neither merged into their level nor pushed out of the book's depth by them.
    price = far_price(alice, "buy", distance=0.05)
    resting = limit_order(alice, account, side="buy", price=price, quantity="0.02")
    market.wait_for(lambda r: any([price, resting["quantity"]] in b["bids"] for _i, b in r.named("book")[1:]))
    [(_id, change)] = [(i, b) for i, b in market.named("book")[1:] if [price, resting["quantity"]] in b["bids"]]
    assert change["snapshot"] is False and change["sequence"] > book["sequence"]
    placed = alice.post(
        "/orders",
        json={"account_id": account, "symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "0.6"},
    ).json()
    market.wait_for(lambda r: r.named("trade") and r.named("ticker"))
    trades = [body for _i, body in market.named("trade")]
    assert {t["symbol"] for t in trades} == {"BTC-USD"} and len(trades) == len(placed["fills"])
    ticker_id, ticker = market.named("ticker")[-1]
    assert ticker_id.endswith(".1") and ticker["last"] == trades[-1]["price"]
    assert strictly_increasing(ids_of(market.events))
    other = httpx.get(f"{setup['stream']}/markets/NOPE-USD", headers=auth(setup["keys"]["bob"]), timeout=10)
    assert other.status_code == 400 and other.json()["error"]["code"] == "unknown_symbol"


def _passed_on(service: ServiceProcess) -> dict[str, float]:
    """How the web workers passed stream requests on so far (``exchange_stream_connections_total``)."""
    counts = {"handed_off": 0.0, "relayed": 0.0}
    for line in httpx.get(f"{service.base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("exchange_stream_connections_total{"):
            how = line.split('how="', 1)[1].split('"', 1)[0]
            counts[how] = float(line.rsplit(" ", 1)[1])
    return counts


def test_a_new_connection_is_handed_to_the_stream_server_and_one_that_served_a_request_first_is_relayed(
    setup, service: ServiceProcess
):
    """A stream that opens a connection of its own (an EventSource, most clients) is handed over with its
    connection: the stream server writes to the client directly, and closes the connection after the stream so that
    the client's next request goes to the web workers. A stream requested on a keep-alive connection that served
    another request first stays with the worker, which relays it: the client cannot tell, except by the header."""
    api, account = setup["api"]["alice"], setup["accounts"]["alice"]
    headers = {**auth(setup["keys"]["alice"]), "Accept": "text/event-stream"}
    before = _passed_on(service)

    def first_order_event(http: httpx.Client) -> tuple[httpx.Response, dict[str, Any]]:
        with http.stream("GET", f"{setup['stream']}/orders", headers=headers) as response:
            placed = limit_order(api, account, side="buy", price=far_price(api, "buy"))
            block: list[str] = []
            for line in response.iter_lines():
                if line:
                    block.append(line)
                    continue
                if "event: order" in block:
                    return response, {"placed": placed, "data": json.loads(block[-1].removeprefix("data: "))}
                block = []
        raise AssertionError("the stream ended without the order")

    with httpx.Client(timeout=httpx.Timeout(10, read=5)) as fresh:
        response, got = first_order_event(fresh)
    assert response.status_code == 200
    assert response.headers["connection"] == "close"
    assert got["data"]["order_id"] == got["placed"]["order_id"]
    middle = _passed_on(service)
    assert middle["handed_off"] == before["handed_off"] + 1
    assert middle["relayed"] == before["relayed"]

    with httpx.Client(timeout=httpx.Timeout(10, read=5)) as reused:
        assert reused.get(f"{service.base_url}/api/v1/health").status_code == 200  # the connection's first request
        response, got = first_order_event(reused)
    assert response.status_code == 200
    assert "close" not in response.headers.get("connection", "")
    assert got["data"]["order_id"] == got["placed"]["order_id"]
    after = _passed_on(service)
    assert after["relayed"] == middle["relayed"] + 1
    assert after["handed_off"] == middle["handed_off"]


def _children_of(pid: int, needle: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and needle in command:
            found.append(int(entry.name))
    return found


def _stream_server_pids(service: ServiceProcess) -> list[int]:
    """The stream server's gunicorn master (the child of ``serve`` running streams.server) and its worker."""
    assert service.proc is not None
    [master] = _children_of(service.proc.pid, b"streams.server:application")
    return [master, *_children_of(master, b"streams.server:application")]


def test_the_streams_are_served_by_a_stream_server_that_serve_restarts_when_it_dies(own_service, tmp_path):
    """The web workers hand the streams to the instance's stream server. Killed, it takes its streams with it
    (a client resumes from its last id), the paths answer 503 with Retry-After meanwhile (never a hanging request or
    a 500), and ``serve`` starts it again; the orders placed while it was down are not lost to a resuming client."""
    service = own_service  # this test kills part of the service: not the module's
    setup = seeded(service, tmp_path)
    api, account = setup["api"]["alice"], setup["accounts"]["alice"]
    headers = auth(setup["keys"]["alice"])
    with Reader(f"{setup['stream']}/orders", headers=headers) as before:
        first = limit_order(api, account, side="buy", price=far_price(api, "buy"))
        before.wait_for(lambda r: any(d.get("order_id") == first["order_id"] for _i, d in r.named("order")))
        last_id = before.events[-1][0]
        for pid in _stream_server_pids(service):  # the stream server dies, worker and all
            os.kill(pid, signal.SIGKILL)
        before.wait_for(lambda r: r.error is not None or r._thread.is_alive() is False, timeout=15)
    during = limit_order(api, account, side="buy", price=far_price(api, "buy", distance=0.12))
    answers = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with httpx.stream("GET", f"{setup['stream']}/balances", headers=headers, timeout=5) as response:
            answers.append(response.status_code)
            if response.status_code != 503:
                break
            assert response.headers["retry-after"] == "1"
            assert json.loads(response.read())["error"]["code"] == "service_unavailable"
        time.sleep(0.2)
    assert answers[-1] == 200, answers  # serve started it again
    with Reader(f"{setup['stream']}/orders", headers={**headers, "Last-Event-ID": last_id}) as resumed:
        resumed.wait_for(lambda r: any(d.get("order_id") == during["order_id"] for _i, d in r.named("order")))
        resumed_ids = ids_of(resumed.events)
        assert min(resumed_ids) > ids_of([(last_id, "", None)])[0]  # nothing it had seen, nothing missed after
    assert "stream_server_exited" in service.output()

"""Streams under load: does every subscriber get every event it is entitled to, how soon after commit, and what
do 200 open streams cost the order rate? Two phases of one run, same workload, same service:

* ``streams_off``: the clients place random market orders (the ``service`` workload) with no stream open;
* ``streams_on``: the same with ``--subscribers`` SSE streams open (default 200): per trading account, orders x4,
  balances x3, trades x3 and positions x1 (several dashboards and trading systems per account), the rest on the
  markets' public streams. The subscribers run in a process of their own (asyncio protocols, HTTP/1.0 so the
  answer is not chunked) and keep what arrives with its arrival time, parsed into event ids after the phase.

Afterwards every subscriber's ids are compared with the outbox: for each, the rows its stream is entitled to that
were stamped during the phase (orders, balances, fills and positions of its account; a market's trades) must all
have arrived, each exactly once, in increasing order (positions, a view computed when delivered and coalesced per
batch: the latest change must have arrived, and nothing the account is not entitled to). Delivery latency:
arrival time minus the event row's ``created_at`` (``clock_timestamp()`` when the trigger inserted it, a moment
before the commit), so what is reported is an upper bound of the latency after commit.

    .venv/bin/python benchmarks/streams.py --seconds 30 --subscribers 200     # on its own
    .venv/bin/python benchmarks/run.py --streams 200                          # after run.py's other phases
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

MIX = (("orders", 4), ("balances", 3), ("trades", 3), ("positions", 1))
MARKETS = ("BTC-USD", "ETH-USD", "BTC-USDT", "ETH-BTC")


def plan(clients: list[dict[str, str]], total: int, mix: Any = MIX) -> list[dict[str, Any]]:
    """Which streams the subscribers open: per account the mix, the rest on market streams."""
    subs: list[dict[str, Any]] = []
    for client in clients:
        for stream, copies in mix:
            for _ in range(copies):
                if len(subs) < total:
                    subs.append(
                        {
                            "path": f"/api/v1/stream/{stream}",
                            "key": client["key"],
                            "account": client["account_id"],
                            "stream": stream,
                        }
                    )
    i = 0
    while len(subs) < total:
        symbol = MARKETS[i % len(MARKETS)]
        subs.append(
            {"path": f"/api/v1/stream/markets/{symbol}", "key": clients[0]["key"], "symbol": symbol, "stream": "market"}
        )
        i += 1
    return subs


# --- the subscribers' process --------------------------------------------------------------------------------
class _Subscriber(asyncio.Protocol):
    """One stream: what arrives is kept as (arrival time, bytes) and parsed after the phase, so the subscribers'
    own CPU (which shares the machine with the service) is a list append per read, not an SSE parser."""

    def __init__(self, spec: dict[str, Any], out: list[Any], opened: list[int], ready: asyncio.Event) -> None:
        self.spec, self.out, self.opened, self.ready = spec, out, opened, ready
        self.chunks: list[tuple[float, bytes]] = []
        self.counted = self.stopping = False
        self.lost_at: float | None = None  # when the service ended the stream (not us, at the end)
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(
            f"GET {self.spec['path']} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {self.spec['key']}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.time(), data))
        if not self.counted:
            seen = b"".join(c for _, c in self.chunks)
            _head, sep, body = seen.partition(b"\r\n\r\n")
            # Open once its first event (the current list, or the book) has come, for the streams that begin with
            # one (what it shows is not expected again); for the others once the answer's head has.
            if sep and (self.spec["stream"] not in FIRST_EVENT or b"\nid: " in b"\n" + body):
                self.counted = True
                self.opened.append(1)
                if len(self.opened) >= ready_target[0]:
                    self.ready.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stopping:
            self.lost_at = time.time()

    def parse(self) -> None:
        """Into ``out``: [id, event name, arrival time] per event, ["status", line] for an answer that is not
        200, ["closed", time] when the service ended the stream."""
        buffer, head_done = b"", False
        for now, chunk in self.chunks:
            buffer += chunk
            if not head_done:
                if b"\r\n\r\n" not in buffer:
                    continue
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                status = head.split(b"\r\n", 1)[0]
                if b" 200 " not in status:
                    self.out.append(["status", status.decode()])
                    return
                head_done = True
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                event_id = name = None
                for line in block.split(b"\n"):
                    if line.startswith(b"id: "):
                        event_id = line[4:].decode()
                    elif line.startswith(b"event: "):
                        name = line[7:].decode()
                if event_id is not None:
                    self.out.append([event_id, name, now])
        if self.lost_at is not None:
            self.out.append(["closed", self.lost_at])


ready_target = [0]
# Streams that begin with the current state (the orders, the positions, the book): a subscriber counts as open once
# that has arrived, so the phase's changes all come after it.
FIRST_EVENT = {"orders", "positions", "market"}


def _subscribers_main(port: int, specs: list[dict[str, Any]], conn: Any) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        ready_target[0] = len(specs)
        opened: list[int] = []
        outs: list[list[Any]] = [[] for _ in specs]
        subscribers: list[_Subscriber] = []
        for spec, out in zip(specs, outs, strict=True):
            _transport, sub = await loop.create_connection(
                lambda spec=spec, out=out: _Subscriber(spec, out, opened, ready), "127.0.0.1", port
            )
            subscribers.append(sub)
            await asyncio.sleep(0.005)
        try:
            await asyncio.wait_for(ready.wait(), timeout=60)
        except TimeoutError:
            pass
        conn.send({"opened": len(opened)})
        await loop.run_in_executor(None, conn.recv)  # "stop"
        for sub in subscribers:
            sub.stopping = True
            sub.transport.close()
        for sub in subscribers:
            sub.parse()
        conn.send({"events": outs})

    asyncio.run(run())


# --- the phases ------------------------------------------------------------------------------------------------
def _max_seq(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM streams_event").fetchone()[0])


def _settle(dsn: str, seconds: float = 3.0) -> int:
    """Wait until the outbox is stamped and quiet; returns its highest seq."""
    last, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            unstamped = conn.execute("SELECT count(*) FROM streams_event WHERE seq IS NULL").fetchone()[0]
        top = _max_seq(dsn)
        if top != last or unstamped:
            last, quiet_since = top, time.monotonic()
        elif time.monotonic() - quiet_since >= seconds:
            return top
        time.sleep(0.3)
    return last


def _expected(dsn: str, spec: dict[str, Any], lo: int, hi: int) -> list[int]:
    where = {
        "orders": "topic = 'order' AND a.account_id = %s",
        "balances": "topic = 'balance' AND a.account_id = %s",
        "trades": "topic = 'fill' AND a.account_id = %s",
        "positions": "topic = 'balance' AND a.account_id = %s AND e.data->>'asset_id' IN ('BTC', 'ETH')",
    }
    with psycopg.connect(dsn) as conn:
        if spec["stream"] == "market":
            rows = conn.execute(
                "SELECT e.seq FROM streams_event e JOIN markets_market m ON m.id = e.market_id "
                "WHERE e.topic = 'trade' AND m.symbol = %s AND e.seq > %s AND e.seq <= %s ORDER BY e.seq",
                [spec["symbol"], lo, hi],
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT e.seq FROM streams_event e JOIN accounts_account a ON a.id = e.account_id "
                f"WHERE {where[spec['stream']]} AND e.seq > %s AND e.seq <= %s ORDER BY e.seq",
                [spec["account"], lo, hi],
            ).fetchall()
    return [int(r[0]) for r in rows]


def _created(dsn: str, lo: int, hi: int) -> dict[int, float]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT seq, extract(epoch FROM created_at) FROM streams_event WHERE seq > %s AND seq <= %s", [lo, hi]
        ).fetchall()
    return {int(s): float(t) for s, t in rows}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


ROWS_STREAMS = ("orders", "balances", "trades")  # the hub's rows lane; positions and markets are its views lane


def run_phases(
    bench: Any,
    clients: list[dict[str, str]],
    *,
    subscribers: int,
    seconds: float,
    mix: Any = MIX,
    rounds: int = 2,
) -> dict[str, Any]:
    """``streams_off_<n>`` then ``streams_on_<n>``, ``rounds`` times, on the running service of ``bench``
    (benchmarks/run.py ``Bench``): alternated, so that what changes over a run (tables growing, caches warming)
    weighs on both alike; the rates are the means of the rounds."""
    specs = plan(clients, subscribers, mix)
    offs, ons = [], []
    latencies: dict[str, list[float]] = {"rows": [], "views": []}
    totals = {"complete": 0, "missing": 0, "duplicated": 0, "out_of_order": 0, "delivered": 0, "events": 0}
    opened_all: list[int] = []
    problems: list[str] = []
    for n in range(1, rounds + 1):
        bench.vacuum_analyze()
        offs.append(bench.http_phase(f"streams_off_{n}", clients, bench.market_workload(clients, f"so{n}"), seconds))
        on, opened, checked = _round_on(bench, clients, specs, seconds, n, latencies, problems)
        ons.append(on)
        opened_all.append(opened)
        for key in totals:
            totals[key] += checked[key]
    rate_off = round(statistics.fmean(o.summary()["ok_per_s"] for o in offs), 1)
    rate_on = round(statistics.fmean(o.summary()["ok_per_s"] for o in ons), 1)
    every = latencies["rows"] + latencies["views"]
    result = {
        "subscribers": len(specs),
        "rounds": rounds,
        "opened": opened_all,
        "mix": {
            stream: sum(1 for s in specs if s["stream"] == stream)
            for stream in ("orders", "balances", "trades", "positions", "market")
        },
        "outbox_events_in_phases": totals["events"],
        "events_delivered": totals["delivered"],
        "subscribers_complete": f"{totals['complete']} of {len(specs) * rounds}",
        "missing": totals["missing"],
        "duplicated": totals["duplicated"],
        "out_of_order_streams": totals["out_of_order"],
        "problems": problems,
        "latency_ms": _latency(every),
        # Orders, fills and balances (the rows lane) and the derived views (positions, books, tickers and the
        # markets' trades), each gathered over its lane's batch window.
        "latency_ms_rows": _latency(latencies["rows"]),
        "latency_ms_views": _latency(latencies["views"]),
        "orders_per_s_off": rate_off,
        "orders_per_s_on": rate_on,
        "orders_per_s_off_rounds": [o.summary()["ok_per_s"] for o in offs],
        "orders_per_s_on_rounds": [o.summary()["ok_per_s"] for o in ons],
        "rate_ratio_on_vs_off": round(rate_on / rate_off, 3) if rate_off else None,
        "goals": {"p99_ms": 100, "rate_ratio_min": 0.9},
    }
    bench.results["streams"] = result
    bench.log(
        f"streams: {result['subscribers_complete']} subscribers complete, {totals['missing']} missing, "
        f"{totals['duplicated']} duplicated, {totals['delivered']} events delivered, latency p50 "
        f"{result['latency_ms']['p50']} ms p99 {result['latency_ms']['p99']} ms (rows lane p99 "
        f"{result['latency_ms_rows']['p99']}, views lane p99 {result['latency_ms_views']['p99']}); orders/s off "
        f"{result['orders_per_s_off_rounds']} on {result['orders_per_s_on_rounds']} (ratio of the means "
        f"{result['rate_ratio_on_vs_off']})"
    )
    return result


def _latency(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": _pct(values, 0.5),
        "p95": _pct(values, 0.95),
        "p99": _pct(values, 0.99),
        "max": round(max(values), 2) if values else None,
        "mean": round(statistics.fmean(values), 2) if values else None,
    }


def _round_on(
    bench: Any,
    clients: list[dict[str, str]],
    specs: list[dict[str, Any]],
    seconds: float,
    n: int,
    latencies: dict[str, list[float]],
    problems: list[str],
) -> tuple[Any, int, dict[str, int]]:
    """One phase with the subscribers open, and the check of what each received."""
    dsn = bench.dsn
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("fork").Process(
        target=_subscribers_main, args=(bench.http_port, specs, child), daemon=True
    )
    proc.start()
    try:
        opened = parent.recv()["opened"] if parent.poll(90) else 0
        bench.log(f"{opened} of {len(specs)} streams open")
        lo = _settle(dsn, 1.5)
        bench.vacuum_analyze()
        on = bench.http_phase(f"streams_on_{n}", clients, bench.market_workload(clients, f"sn{n}"), seconds)
        hi = _settle(dsn, 3.0)
        time.sleep(2.0)  # the last events are on their way to the subscribers
        parent.send("stop")
        events = parent.recv()["events"] if parent.poll(120) else []
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    created = _created(dsn, lo, hi)
    checked = {"complete": 0, "missing": 0, "duplicated": 0, "out_of_order": 0, "delivered": 0, "events": hi - lo}
    for spec, got in zip(specs, events, strict=False):
        closed = [e for e in got if e[0] in ("closed", "status")]
        numbered = [e for e in got if e[0] not in ("closed", "status")]
        positions = ids_positions([e[0] for e in numbered])
        ordered = all(a < b for a, b in itertools.pairwise(positions))
        # What the outbox entitles it to: one event per row (a market stream: every trade; its book and ticker
        # events are coalesced views, checked for order only).
        counted = {"market": ("trade",)}.get(spec["stream"], ("order", "balance", "trade", "position"))
        received = [p[0] for p, e in zip(positions, numbered, strict=True) if lo < p[0] <= hi and e[1] in counted]
        expected = _expected(dsn, spec, lo, hi)
        missing = sorted(set(expected) - set(received))
        unexpected = sorted(set(received) - set(expected))
        if spec["stream"] == "positions":
            # A derived view, coalesced per batch: entitled to the latest state, not to one event per change.
            missing = [] if not expected or (received and max(received) >= max(expected)) else [max(expected)]
        dup = len(received) - len(set(received))
        if not missing and not unexpected and not dup and ordered and not closed:
            checked["complete"] += 1
        elif len(problems) < 10:
            problems.append(
                f"round {n} {spec['path']}: {len(missing)} missing, {len(unexpected)} unexpected, {dup} duplicated, "
                f"ordered={ordered}, closed={closed[:1]}"
            )
        checked["missing"] += len(missing) + len(unexpected)
        checked["duplicated"] += dup
        checked["out_of_order"] += 0 if ordered else 1
        lane = latencies["rows" if spec["stream"] in ROWS_STREAMS else "views"]
        for (seq, _sub), event in zip(positions, numbered, strict=True):
            if lo < seq <= hi and seq in created:
                checked["delivered"] += 1
                lane.append((event[2] - created[seq]) * 1000)
    return on, opened, checked


def ids_positions(ids: list[str]) -> list[tuple[int, int]]:
    return [tuple(int(p) for p in [*i.split("."), "0"][:2]) for i in ids]  # type: ignore[misc]


def main() -> int:
    import argparse
    import traceback

    from benchmarks.run import Bench

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="off/on phase pairs, alternated")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in MIX), help="streams per account")
    parser.add_argument("--keep-logs", action="store_true", help="keep the service's logs (hub stats in them)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "streams.json")
    args = parser.parse_args()
    args.sql_clients, args.keep_db = 1, False
    bench = Bench(args)
    # What is measured is the order path with and without streams: no per-key order limit (production's 100 orders
    # per key and 10 s would cap the clients), and no price engine moving the markets under the workload.
    bench.env |= {"KEY_LIMITS_ENABLED": "false", "PRICE_ENGINE_ENABLED": "false"}
    failed = True
    try:
        bench.create_database()
        seeded = bench.seed()
        bench.results["gunicorn"] = bench.gunicorn_config()
        bench.vacuum_analyze()
        bench.start_service()
        clients = seeded["clients"]
        bench.http_phase("warmup", clients, bench.market_workload(clients, "w"), args.warmup, record=False)
        mix = [(k, int(v)) for k, v in (part.split("=") for part in args.mix.split(",") if part)]
        run_phases(bench, clients, subscribers=args.subscribers, seconds=args.seconds, mix=mix, rounds=args.rounds)
        failed = False
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        if args.keep_logs:
            bench.log(f"logs kept in {bench.workdir}")
        bench.cleanup(keep_logs=failed or args.keep_logs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(bench.results, indent=2, default=str) + "\n")
    print(json.dumps(bench.results.get("streams"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

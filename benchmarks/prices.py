"""The ``prices`` phases of benchmarks/run.py: the market-order rate with the price engine off and on, in one run.

The service runs with PRICE_ENGINE_ENABLED=false (so the other phases measure what they always did); this phase
loads a scenario in which every market ticks every ``--price-tick`` (100 ms by default: the fastest the engine
allows, five markets, so about 50 reference-price changes a second, each sweeping the house's ladder under the
market's lock), and alternates: engine off, on (``manage.py run_market`` started beside the service, as ``serve``
would run it), off, on, each for ``--price-seconds``. Alternating halves the effect of a machine that gets busier or
quieter during the run. The result is the rate with the engine on over the rate with it off (goal: >= 0.9, ticks
slow placement by at most 10 %), and the ticks the engine made while on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

GOAL = 0.9
ROOT = Path(__file__).resolve().parents[1]


def _scenario(tick: str) -> dict[str, Any]:
    return {
        "name": "bench-prices",
        "seed": 1,
        "markets": {
            "BTC-USD": {"tick": tick, "model": {"kind": "gbm", "volatility": "0.8"}},
            "ETH-USD": {"tick": tick, "model": {"kind": "gbm", "volatility": "0.8"}},
            "BTC-USDT": {"tick": tick, "model": {"kind": "derived", "basis_bps": "1"}},
            "ETH-USDT": {"tick": tick, "model": {"kind": "derived", "basis_bps": "1"}},
            "ETH-BTC": {"tick": tick, "model": {"kind": "derived", "basis_bps": "0"}},
        },
    }


def _engine_ticks(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM markets_historicalmarket WHERE history_change_reason LIKE 'price engine%%'"
        ).fetchone()
    return int(row[0])


def price_phases(bench: Any, clients: list[dict[str, str]]) -> None:
    args = bench.args
    seconds = args.price_seconds
    scenario = bench.workdir / "bench-prices.yaml"
    scenario.write_text(json.dumps(_scenario(args.price_tick)))  # JSON is YAML (and has no anchors)
    loaded = bench.manage("load_scenario", str(scenario), "--keys-file", str(bench.workdir / "scenario-keys.txt"))
    if loaded.returncode:
        raise RuntimeError(f"load_scenario failed: {(bench.workdir / 'load_scenario.log').read_text()[-2000:]}")
    rates: dict[str, list[float]] = {"off": [], "on": []}
    ticks = 0
    for round_ in (1, 2):
        for state in ("off", "on"):
            engine = None
            if state == "on":
                with open(bench.workdir / "run_market.log", "ab") as log:
                    engine = bench.started.add(
                        "run_market",
                        subprocess.Popen(
                            [sys.executable, "manage.py", "run_market", "--check-interval", "0.5"],
                            cwd=ROOT,
                            env=bench.env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        ),
                        grace=15,
                    )
                time.sleep(2.0)  # it takes the lead and ticks before the clock starts
            before = _engine_ticks(bench.dsn)
            name = f"prices_{state}_{round_}"
            stats = bench.http_phase(name, clients, bench.market_workload(clients, f"p{state[1]}{round_}"), seconds)
            if engine is not None:
                ticks += _engine_ticks(bench.dsn) - before
                bench.started.stop(engine, 15)
                bench.started.procs = [p for p in bench.started.procs if p[1] is not engine]
            rates[state].append(stats.summary()["ok_per_s"])
    off, on = sum(rates["off"]) / 2, sum(rates["on"]) / 2
    ratio = round(on / off, 3) if off else None
    bench.results["prices"] = {
        "tick": args.price_tick,
        "seconds_per_phase": seconds,
        "ok_per_s_off": rates["off"],
        "ok_per_s_on": rates["on"],
        "engine_ticks_per_s_while_on": round(ticks / (2 * seconds), 1),
        "on_vs_off": ratio,
        "goal": f">= {GOAL}",
        "met": (ratio or 0) >= GOAL,
    }
    bench.log(
        f"prices: off {rates['off']} /s, on {rates['on']} /s (tick {args.price_tick}, "
        f"{bench.results['prices']['engine_ticks_per_s_while_on']} ticks/s): on/off {ratio}"
    )


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--price-seconds", type=float, default=10.0, help="each of the four price-engine phases (0 skips them)"
    )
    parser.add_argument("--price-tick", default="100ms", help="tick interval of every market in the price phases")

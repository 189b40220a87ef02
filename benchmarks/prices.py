"""The ``prices`` phases of benchmarks/run.py: the market-order rate with the price engine off and on, in one run.

The service runs with PRICE_ENGINE_ENABLED=false (so the other phases measure what they always did); this phase
loads, for each of ``--price-tick`` (1 s, the default tick, and 100 ms, the least the engine allows: five markets,
so up to 5 or 50 reference-price changes a second, each sweeping the house's ladder under the market's lock), a
scenario in which every market ticks that often, and alternates: engine off, on (``manage.py run_market`` started
beside the service, as ``serve`` runs it, measured once it ticks), off, on, each for ``--price-seconds``.
Alternating halves the effect of a machine that gets busier or quieter during the run. The result is the rate
with the engine on over the rate with it off (goal: >= 0.9, ticks slow placement by at most 10 %), and the ticks
the engine made while on.
"""

from __future__ import annotations

import json
import os
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_engine(bench: Any) -> Any:
    """``manage.py run_market`` beside the service (as ``serve`` runs it), returned once it has taken the lead and
    ticks: its start-up (a Django process booting) is not what the phase measures."""
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
    before, deadline = _engine_ticks(bench.dsn), time.monotonic() + 90
    while _engine_ticks(bench.dsn) < before + 3:
        if engine.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"run_market did not tick: {(bench.workdir / 'run_market.log').read_text()[-2000:]}")
        time.sleep(0.2)
    return engine


def price_phases(bench: Any, clients: list[dict[str, str]]) -> None:
    args = bench.args
    seconds = args.price_seconds
    bench.results["prices"] = {}
    for tick in [t.strip() for t in args.price_tick.split(",") if t.strip()]:
        scenario = bench.workdir / f"bench-prices-{tick}.yaml"
        scenario.write_text(json.dumps(_scenario(tick)))  # JSON is YAML (and has no anchors)
        keys = str(bench.workdir / "scenario-keys.txt")
        loaded = bench.manage("load_scenario", str(scenario), "--keys-file", keys)
        if loaded.returncode:
            raise RuntimeError(f"load_scenario failed: {(bench.workdir / 'load_scenario.log').read_text()[-2000:]}")
        rates: dict[str, list[float]] = {"off": [], "on": []}
        ticks, ticking_s, engine_cpu = 0, 0.0, 0.0
        for round_ in (1, 2):
            for state in ("off", "on"):
                engine = _start_engine(bench) if state == "on" else None
                before, started = _engine_ticks(bench.dsn), time.monotonic()
                cpu0 = _cpu_seconds(engine.pid) if engine is not None else 0.0
                name = f"prices_{tick}_{state}_{round_}"
                workload = bench.market_workload(clients, f"p{tick}{state}{round_}")
                stats = bench.http_phase(name, clients, workload, seconds)
                if engine is not None:
                    ticks += _engine_ticks(bench.dsn) - before
                    ticking_s += time.monotonic() - started
                    engine_cpu += _cpu_seconds(engine.pid) - cpu0
                    bench.started.stop(engine, 15)
                    time.sleep(1.0)
                rates[state].append(stats.summary()["ok_per_s"])
        off, on = sum(rates["off"]) / 2, sum(rates["on"]) / 2
        ratio = round(on / off, 3) if off else None
        result = {
            "seconds_per_phase": seconds,
            "ok_per_s_off": rates["off"],
            "ok_per_s_on": rates["on"],
            "engine_ticks_per_s_while_on": round(ticks / ticking_s, 1) if ticking_s else 0.0,
            "ticks_per_s_asked": round(5 / _seconds(tick), 1),
            "engine_process_cpu_cores": round(engine_cpu / ticking_s, 3) if ticking_s else None,
            "engine_cpu_ms_per_tick": round(engine_cpu * 1000 / ticks, 1) if ticks else None,
            "on_vs_off": ratio,
            "goal": f">= {GOAL}",
            "met": (ratio or 0) >= GOAL,
        }
        bench.results["prices"][tick] = result
        bench.log(
            f"prices (tick {tick}): off {rates['off']} /s, on {rates['on']} /s, "
            f"{result['engine_ticks_per_s_while_on']} ticks/s of {result['ticks_per_s_asked']} asked, run_market "
            f"{result['engine_process_cpu_cores']} cores: on/off {ratio}"
        )


def _seconds(tick: str) -> float:
    return float(tick[:-2]) / 1000 if tick.endswith("ms") else float(tick.rstrip("s"))


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--price-seconds", type=float, default=10.0, help="each of the four price-engine phases (0 skips them)"
    )
    parser.add_argument(
        "--price-tick",
        default="1s,100ms",
        help="tick intervals of every market in the price phases, comma-separated (1s: the default; 100ms: the least)",
    )

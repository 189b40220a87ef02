"""Load benchmark of the order path, with the database's and the framework's ceilings measured in the same run.

    .venv/bin/python benchmarks/run.py                  # 16 clients, 15 s per phase (make bench)
    .venv/bin/python benchmarks/run.py --clients 16 --seconds 20 --profile

What one run does, on this machine only (every connection goes to 127.0.0.1):
1. creates a fresh PostgreSQL database (dropped at the end), migrates it and seeds it through the services
   (house liquidity; per client a user, a trade API key and a funded account; accounts for the SQL baseline);
2. starts the service with ``manage.py serve`` (production settings plus one benchmark-only route from
   ``benchmarks/bench_settings.py``) on free loopback ports;
3. phases, each bounded by ``--seconds`` and ``--max-requests`` (workloads: benchmarks/workload.py):
   * ``service``: N keep-alive clients place random small market buys and sells on every market (the house fills);
   * ``limit``: makers rest GTC limit orders inside the house's spread, takers cross them with IOC limit and
     market orders, a third of the resting orders are cancelled; what is left is cancelled after the phase;
   * ``drf_trivial``: the clients POST market-order bodies to an authenticated DRF view that does nothing;
   * ``prices_off_*``/``prices_on_*``: the market orders again with the price engine off and on (benchmarks/prices.py);
   * ``profile`` (with ``--profile``): a workload again while py-spy samples every gunicorn worker;
   * ``streams_off_<n>`` / ``streams_on_<n>`` (``--streams N``, two rounds): the service workload without and with N
     open server-sent event streams, every subscriber's events checked against the outbox (benchmarks/streams.py);
   * ``sql``: the market-order fill as plain SQL in one transaction on N connections (the database's ceiling),
     and ``sql_hot``: the same with every fill on house shard 0 (one hot row per asset);
4. stops the service, runs ``manage.py reconcile`` on the database, prints a table, the ratios and the goals, and
   writes ``benchmarks/results/latest.json``.
Every process it starts is stopped by pid, and the database dropped, also when a step fails or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # import benchmarks.* as a package; never shadow the standard library with our modules

import httpx  # noqa: E402
import psycopg  # noqa: E402

from benchmarks.load import PhaseStats, Workload, build_request, run_phase  # noqa: E402
from benchmarks.prices import add_arguments as add_price_arguments  # noqa: E402
from benchmarks.prices import price_phases  # noqa: E402
from benchmarks.sql_baseline import run_sql_phase  # noqa: E402
from benchmarks.workload import SYMBOLS, Intent, LimitWorkload, MarketWorkload, Touch  # noqa: E402

PYTHON = sys.executable
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
# The goals of issue 9 at 16 clients: each workload's rate against the plain-SQL ceiling, p99 and errors.
GOALS = {"service_vs_sql": 0.5, "limit_vs_sql": 0.35, "p99_ms": 50, "errors": 0}
RESTING = "status IN ('open', 'partially_filled')"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), so what we started can be stopped by pid and nothing else."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, frontier = [], [pid]
    while frontier:
        for child in children.get(frontier.pop(), []):
            found.append(child)
            frontier.append(child)
    return found


class Started:
    """The processes this run started; ``stop_all`` ends them (and their children) by pid, newest first."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes], float]] = []

    def add(self, name: str, proc: subprocess.Popen[bytes], grace: float) -> subprocess.Popen[bytes]:
        self.procs.append((name, proc, grace))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float) -> int | None:
        if proc.poll() is not None:
            return proc.returncode
        family = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)  # serve: gunicorn drains, gRPC stops, exit 0
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *family, *descendants(proc.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return proc.wait(timeout=10)

    def stop_all(self) -> None:
        while self.procs:
            name, proc, grace = self.procs.pop()
            try:
                self.stop(proc, grace)
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop {name} (pid {proc.pid}): {exc}", file=sys.stderr)
        # Anything of ours still alive (a gunicorn worker orphaned by a crash) is a child of this process.
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- CPU accounting: who used the two cores during a phase ---------------------------------------------------


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def _backend_state(state: str | None, wait: str | None) -> str:
    """What a backend is doing: the question is whether it works, waits for a lock, or waits for the client."""
    if state == "active":
        if wait == "Lock":
            return "active, waiting for a row lock"
        if wait in ("IO", "LWLock"):
            return "active, waiting for I/O or an LWLock (WAL flush at commit ...)"
        return "active"
    if state in ("idle in transaction", "idle in transaction (aborted)"):
        return "idle in transaction (waiting for the client)"
    return "idle"


def wait_for_quiet(max_wait: float, threshold: float = 0.3) -> dict[str, Any]:
    """Wait (at most ``max_wait`` seconds) until the rest of the machine uses less than ``threshold`` cores over a
    second: on a shared machine, a neighbour's test suite would otherwise be measured along with the service."""
    started = time.monotonic()
    while True:
        busy0, _ = _machine_busy()
        time.sleep(1.0)
        busy = _machine_busy()[0] - busy0
        waited = time.monotonic() - started
        if busy < threshold or waited >= max_wait:
            return {"busy_cores": round(busy, 2), "waited_s": round(waited, 1), "quiet": busy < threshold}


class CpuMeter:
    """CPU used per group of processes during a phase, in cores (1.0 = one core busy for the whole phase).

    Groups: this process (the load generator, or the SQL baseline's threads), its other children (the stream
    subscribers' process), the service (serve and its web workers), the stream server (serve's streams.server
    gunicorn), and the PostgreSQL backends connected to the benchmark database. Backends come and go with the SQL
    baseline's connections, so a thread samples every process every half second and keeps each one's first and
    last reading; a process born during the phase counts from zero. "other" is the rest of the machine: PostgreSQL's
    background processes, the kernel and whatever else runs on it (other people's test suites included).
    """

    def __init__(self, *, service_pid: int | None, admin_dsn: str, db_name: str) -> None:
        self.service_pid, self.db_name = service_pid, db_name
        self.conn = psycopg.connect(admin_dsn, autocommit=True)
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self.done = threading.Event()
        self.sampler = threading.Thread(target=self._sample_until_done, daemon=True)
        self.t0: float | None = None
        self.snapshots = 0
        self.states: Counter[str] = Counter()

    def _groups(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {
            "load_generator": [os.getpid()],
            "load_generator_children": [],
            "service": [],
            "stream_server": [],
            "postgres_backends": [],
        }
        if self.service_pid is not None:
            tree = [self.service_pid, *descendants(self.service_pid)]
            streams = {pid for pid in tree if b"streams.server" in _cmdline(pid)}
            for pid in list(streams):
                streams.update(descendants(pid))
            groups["service"] = [pid for pid in tree if pid not in streams]
            groups["stream_server"] = sorted(streams)
            mine = set(tree)
            groups["load_generator_children"] = [pid for pid in descendants(os.getpid()) if pid not in mine]
        rows = self.conn.execute(
            "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE datname = %s", [self.db_name]
        ).fetchall()
        groups["postgres_backends"] = [pid for pid, _, _ in rows]
        if self.t0 is not None:  # during the phase: what the backends are doing, one snapshot per sample
            self.snapshots += 1
            for _, state, wait in rows:
                self.states[_backend_state(state, wait)] += 1
        return groups

    def _sample(self, initial: bool = False) -> None:
        for group, pids in self._groups().items():
            for pid in pids:
                used = _proc_cpu(pid)
                if used is None:
                    continue
                self.first.setdefault((group, pid), used if initial else 0.0)
                self.last[(group, pid)] = used

    def _sample_until_done(self) -> None:
        while not self.done.wait(0.5):
            try:
                self._sample()
            except psycopg.Error:
                return  # a phase's measurement must never break the phase

    def start(self) -> None:
        self.load0 = os.getloadavg()[0]
        self._sample(initial=True)
        self.busy0, _ = _machine_busy()
        self.t0 = time.monotonic()
        self.sampler.start()

    def stop(self) -> dict[str, Any]:
        self._sample()
        elapsed = time.monotonic() - self.t0
        busy1, _ = _machine_busy()
        self.done.set()
        self.sampler.join()
        self.conn.close()
        result: dict[str, Any] = dict.fromkeys(
            ("load_generator", "load_generator_children", "service", "stream_server", "postgres_backends"), 0.0
        )
        for (group, pid), used in self.last.items():
            result[group] += (used - self.first[(group, pid)]) / elapsed
        machine = (busy1 - self.busy0) / elapsed
        accounted = sum(result.values())
        result = {k: round(v, 2) for k, v in result.items()}
        result["machine"] = round(machine, 2)
        result["other"] = round(max(0.0, machine - accounted), 2)
        result["cores"] = os.cpu_count()
        result["loadavg_1m_before"] = round(self.load0, 2)
        result["backends_avg"] = {k: round(v / max(1, self.snapshots), 2) for k, v in sorted(self.states.items())}
        return result


# --- the run -------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = Started()
        self.db_name = f"exsim_bench_{uuid.uuid4().hex[:10]}"
        self.admin_dsn = f"{args.postgres}/postgres"
        self.dsn = f"{args.postgres}/{self.db_name}"
        self.db_created = False
        self.workdir = Path(tempfile.mkdtemp(prefix="exsim-bench-"))
        self.http_port, self.grpc_port = free_port(), free_port()
        self.env = self._service_env()
        self.results: dict[str, Any] = {"phases": {}, "cpu": {}}
        self.service: subprocess.Popen[bytes] | None = None

    def _service_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "POSTGRES_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"}
        }
        env |= {
            "DJANGO_SETTINGS_MODULE": "benchmarks.bench_settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            # Production settings refuse to start without it; testserver is the in-process probe's client.
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DATABASE_URL": self.dsn,
            # Local defaults for the runtime configuration: the benchmark measures this service, not a sibling.
            "CONFIG_SERVICE_URL": "",
            "BIND_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.http_port),
            "GRPC_PORT": str(self.grpc_port),
            "SERVICE_INSTANCE_NAME": f"bench-{self.http_port}",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",  # as in the Docker image
            # Prices move only in the price phases (benchmarks/prices.py), which run the engine themselves.
            "PRICE_ENGINE_ENABLED": "false",
            # Each client's key places more orders than production's per-key limit allows (100 per 10 s): the
            # benchmark measures the order path, not the limiter (exchange/key_limits.py, README "Chaos control").
            "KEY_LIMITS_ENABLED": "false",
        }
        if self.args.threads:
            env["WEB_THREADS"] = str(self.args.threads)
        if self.args.workers:
            env["WEB_CONCURRENCY"] = str(self.args.workers)
        return env

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def manage(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        log = open(self.workdir / f"{argv[0]}.log", "ab")
        try:
            proc = self.started.add(
                argv[0],
                subprocess.Popen(
                    [PYTHON, "manage.py", *argv], cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=log
                ),
                grace=5,
            )
            out, _ = proc.communicate(timeout=timeout)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, b"")
        finally:
            log.close()

    # -- set-up --

    def create_database(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
            self.results["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("max_connections", "shared_buffers", "synchronous_commit", "fsync", "autovacuum")
            }
            self.results["postgres_settings"] = settings
        self.db_created = True
        migrate = self.manage("migrate", "--verbosity", "0")
        if migrate.returncode:
            raise RuntimeError(f"migrate failed; see {self.workdir / 'migrate.log'}")

    def vacuum_analyze(self) -> None:
        """What autovacuum would have done by now: fresh planner statistics and no dead rows left behind.

        The database server this was written on runs with ``autovacuum = off``. Without statistics the ledger's
        deferred balance triggers get bad plans as ``ledger_posting`` grows, and the plain-SQL fill rate fell from
        ~670/s to ~150/s within seconds (docs/benchmarks.md); a production server has autovacuum on.
        """
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")

    def seed(self) -> dict[str, Any]:
        out = self.workdir / "seed.json"
        argv = [PYTHON, "benchmarks/setup_data.py", "--clients", str(self.args.clients)]
        argv += ["--sql-accounts", str(self.args.sql_clients or self.args.clients), "--out", str(out)]
        with open(self.workdir / "setup.log", "wb") as log:
            proc = self.started.add(
                "setup_data",
                subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=log),
                grace=5,
            )
            if proc.wait(timeout=300):
                raise RuntimeError(f"seeding failed:\n{(self.workdir / 'setup.log').read_text()[-3000:]}")
        return json.loads(out.read_text())

    def start_service(self) -> None:
        self.service_log = open(self.workdir / "service.log", "wb")
        self.service = self.started.add(
            "serve",
            subprocess.Popen(
                [PYTHON, "manage.py", "serve", "--no-migrate", "--no-seed"],
                cwd=ROOT,
                env=self.env,
                stdout=self.service_log,
                stderr=subprocess.STDOUT,
            ),
            grace=35,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.service.poll() is not None:
                raise RuntimeError(f"serve exited with {self.service.returncode}:\n{self.service_output()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.http_port}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("serve did not answer within 60 s")
        # Wait until every worker has booted, so the warm-up reaches all of them.
        wanted = int(self.results["gunicorn"]["workers"])
        while time.monotonic() < deadline and self.service_output().count("Booting worker with pid") < wanted:
            time.sleep(0.2)

    def service_output(self) -> str:
        return (self.workdir / "service.log").read_text(errors="replace")

    def gunicorn_config(self) -> dict[str, Any]:
        """The effective serving settings (exchange/gunicorn_conf.py and the settings, read with the service's
        environment), whatever the worker class: every name is optional."""
        code = (
            "import json, exchange.gunicorn_conf as c; from django.conf import settings as s; "
            "print(json.dumps({'workers': s.WEB_CONCURRENCY, 'threads': getattr(s, 'WEB_THREADS', None), "
            "**{k: getattr(c, k, None) for k in ('worker_class', 'asgi_loop', 'keepalive', 'timeout', "
            "'preload_app')}}))"
        )
        out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=self.env, capture_output=True, check=True, timeout=60)
        return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))

    # -- phases --

    def render(self, clients: list[dict[str, str]], path: str | None = None) -> Any:
        """Intent -> HTTP request bytes, with client ``index``'s key; ``path`` overrides the intent's (drf_trivial)."""
        host = f"127.0.0.1:{self.http_port}"
        headers = [{"Authorization": f"Api-Key {c['key']}"} for c in clients]

        def render(index: int, intent: Intent) -> bytes:
            return build_request(
                method=intent.method, path=path or intent.path, host=host, headers=headers[index], body=intent.body
            )

        return render

    def market_workload(self, clients: list[dict[str, str]], tag: str) -> MarketWorkload:
        return MarketWorkload(accounts=[c["account_id"] for c in clients], seed=self.args.seed, tag=tag)

    def limit_workload(self, clients: list[dict[str, str]], tag: str) -> LimitWorkload:
        """The limit workload around the house's touch of every market, read from the book while no customer order
        rests (so the best bid and ask are the house's)."""
        with psycopg.connect(self.dsn) as conn:
            resting = conn.execute(f"SELECT count(*) FROM orders_order WHERE {RESTING}").fetchone()[0]
        if resting:
            raise RuntimeError(
                f"{resting} customer orders rest before the limit workload; the touch is not the house's"
            )
        touches = {}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}", headers={"Authorization": f"Api-Key {clients[0]['key']}"}
        ) as http:
            for symbol in SYMBOLS:
                book = http.get(f"/api/v1/markets/{symbol}/book", params={"depth": 1}).raise_for_status().json()
                tick = http.get(f"/api/v1/markets/{symbol}").raise_for_status().json()["price_tick"]
                touches[symbol] = Touch(
                    bid=Decimal(book["bids"][0][0]), ask=Decimal(book["asks"][0][0]), tick=Decimal(tick)
                )
        self.results["touches"] = {
            k: {"bid": str(t.bid), "ask": str(t.ask), "tick": str(t.tick)} for k, t in touches.items()
        }
        return LimitWorkload(accounts=[c["account_id"] for c in clients], touches=touches, seed=self.args.seed, tag=tag)

    def cancel_resting(self, clients: list[dict[str, str]]) -> int:
        """Cancel every order still resting (``DELETE /api/v1/orders?account_id=``), unmeasured, so later phases see
        the house's book again. Returns how many were cancelled."""
        cancelled = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=30) as http:
            for client in clients:
                response = http.delete(
                    "/api/v1/orders",
                    params={"account_id": client["account_id"]},
                    headers={"Authorization": f"Api-Key {client['key']}"},
                )
                cancelled += len(response.raise_for_status().json()["orders"])
        return cancelled

    def trades(self) -> tuple[int, int]:
        """(trades, trades between two customers) in the database so far."""
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE maker_order_id IS NOT NULL AND taker_order_id IS NOT NULL) "
                "FROM orders_trade"
            ).fetchone()
        return int(row[0]), int(row[1])

    def http_phase(
        self,
        name: str,
        clients: list[dict[str, str]],
        workload: Workload,
        seconds: float,
        *,
        path: str | None = None,
        record: bool = True,
    ) -> PhaseStats:
        trades0 = self.trades() if record else (0, 0)
        meter = CpuMeter(
            service_pid=self.service.pid if self.service else None, admin_dsn=self.admin_dsn, db_name=self.db_name
        )
        meter.start()
        try:
            stats = run_phase(
                name=name,
                host="127.0.0.1",
                port=self.http_port,
                clients=self.args.clients,
                seconds=seconds,
                max_requests=self.args.max_requests,
                workload=workload,
                render=self.render(clients, path),
            )
        finally:
            cpu = meter.stop()
        if record:
            self.record(stats, cpu, trades0)
        return stats

    def sql_phase(self, name: str, accounts: list[int], seconds: float, hot: bool) -> None:
        trades0 = self.trades()
        meter = CpuMeter(service_pid=None, admin_dsn=self.admin_dsn, db_name=self.db_name)
        meter.start()
        try:
            stats = run_sql_phase(
                name=name,
                dsn=self.dsn,
                account_ids=accounts,
                seconds=seconds,
                max_requests=self.args.max_requests,
                hot=hot,
                seed=self.args.seed,
            )
        finally:
            cpu = meter.stop()
        self.record(stats, cpu, trades0)

    def record(self, stats: PhaseStats, cpu: dict[str, Any], trades0: tuple[int, int]) -> dict[str, Any]:
        summary = stats.summary()
        trades, customer = (now - before for now, before in zip(self.trades(), trades0, strict=True))
        summary["trades"] = trades
        summary["trades_per_s"] = round(trades / stats.duration_s, 1) if stats.duration_s else 0.0
        summary["trades_between_customers"] = customer
        summary["cpu_cores"] = cpu
        self.results["phases"][stats.name] = summary
        lat = summary["latency_ms"]
        self.log(
            f"{stats.name}: {summary['ok_per_s']}/s ok, {summary['trades_per_s']} trades/s, p50 {lat['p50']} ms, "
            f"p99 {lat['p99']} ms, {summary['rejections']} rejected, {summary['errors']} errors, "
            f"other CPU {cpu['other']} cores"
        )
        return summary

    def limit_phase(self, clients: list[dict[str, str]]) -> None:
        """Warm the book up (unmeasured), measure, then cancel what is left."""
        workload = self.limit_workload(clients, "l")
        self.http_phase("limit_warmup", clients, workload, min(self.args.warmup, 2.0), record=False)
        workload.counts.clear()
        self.vacuum_analyze()
        stats = self.http_phase("limit", clients, workload, self.args.seconds)
        summary = self.results["phases"]["limit"]
        rested = workload.counts["maker_rested"]
        summary["workload"] = {
            **dict(sorted(workload.counts.items())),
            "cancelled_share_of_rested": round(stats.ok_by_kind["cancel"] / rested, 3) if rested else None,
            "left_resting_cancelled_after": self.cancel_resting(clients),
        }

    def profile_phase(self, clients: list[dict[str, str]]) -> None:
        """The order load again while py-spy samples every gunicorn worker with ``--idle``: wall time, so the
        profile shows where a request's time goes, waits on PostgreSQL included."""
        from benchmarks.pyspy_report import summarise

        pyspy = Path(PYTHON).with_name("py-spy")
        if not pyspy.exists():
            self.log("profile: py-spy is not installed (.venv/bin/pip install py-spy); skipped")
            self.results["profile"] = {"skipped": "py-spy not installed"}
            return
        assert self.service is not None
        master = next(
            pid
            for pid in descendants(self.service.pid)
            if "gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            and _parent(pid) == self.service.pid
        )
        seconds = self.args.profile_seconds
        raw, log_path = self.workdir / "pyspy.txt", self.workdir / "pyspy.log"
        argv = [str(pyspy), "record", "--pid", str(master), "--subprocesses", "--idle", "--nonblocking"]
        argv += ["--format", "raw", "--rate", "200", "--duration", str(int(seconds) + 2), "--output", str(raw)]
        with open(log_path, "wb") as log:
            spy = self.started.add("py-spy", subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log), 15)
        time.sleep(1.5)  # py-spy attaches to every worker
        if self.args.profile_workload == "limit":
            workload: Workload = self.limit_workload(clients, "p")
        else:
            workload = self.market_workload(clients, "p")
        stats = self.http_phase("profile", clients, workload, seconds, record=False)
        if self.args.profile_workload == "limit":
            self.cancel_resting(clients)
        spy.wait(timeout=60)
        if not raw.exists():
            self.log(f"profile: py-spy wrote nothing: {log_path.read_text()[-500:]}")
            self.results["profile"] = {"skipped": "py-spy failed"}
            return
        self.results["profile"] = {
            "workload": self.args.profile_workload,
            "ok_per_s_while_sampling": stats.summary()["ok_per_s"],
            "rate_hz": 200,
            **summarise(raw),
        }
        (ROOT / "benchmarks" / "results" / "pyspy-latest.txt").write_bytes(raw.read_bytes())

    # -- the whole run --

    def execute(self) -> None:
        args = self.args
        self.results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["command"] = " ".join(["benchmarks/run.py", *sys.argv[1:]])
        self.results["code"] = code_version()
        self.results["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        }
        if args.wait_quiet > 0:
            quiet = wait_for_quiet(args.wait_quiet)
            self.results["machine"]["before_start"] = quiet
            if not quiet["quiet"]:
                self.log(f"warning: the machine is busy ({quiet['busy_cores']} cores used by other processes)")
        self.log(f"database {self.db_name}; logs in {self.workdir}")
        self.create_database()
        seeded = self.seed()
        self.results["probe"] = seeded["probe"]
        self.results["gunicorn"] = self.gunicorn_config()
        self.results["settings"] = {
            "clients": args.clients,
            "seconds": args.seconds,
            "max_requests": args.max_requests,
            "warmup_s": args.warmup,
            "seed": args.seed,
        }
        self.vacuum_analyze()
        self.start_service()
        self.log(f"service up on 127.0.0.1:{self.http_port} ({self.results['gunicorn']})")
        clients = seeded["clients"]
        self.http_phase("warmup", clients, self.market_workload(clients, "w"), args.warmup, record=False)
        self.vacuum_analyze()
        self.http_phase("service", clients, self.market_workload(clients, "s"), args.seconds)
        self.limit_phase(clients)
        self.http_phase("drf_trivial", clients, self.market_workload(clients, "t"), args.seconds, path="/bench/echo")
        if args.price_seconds > 0:
            price_phases(self, clients)
        if args.profile:
            self.profile_phase(clients)
        if args.streams:
            from benchmarks.streams import run_phases

            run_phases(self, clients, subscribers=args.streams, seconds=args.seconds)
        assert self.service is not None
        code = self.started.stop(self.service, 35)
        self.results["service_exit_code"] = code
        self.vacuum_analyze()
        self.sql_phase("sql", seeded["sql_accounts"], args.seconds, hot=False)
        if args.sql_hot_seconds > 0:
            self.vacuum_analyze()
            self.sql_phase("sql_hot", seeded["sql_accounts"], args.sql_hot_seconds, hot=True)
        self.reconcile()
        self.summarise()

    def reconcile(self) -> None:
        started = time.monotonic()
        proc = self.manage("reconcile", "--json", timeout=300)
        text = proc.stdout.decode(errors="replace")
        try:  # log lines (one JSON object each) may come before the indented report
            report = json.loads(text[text.index("\n{\n") + 1 :] if not text.startswith("{\n") else text)
        except ValueError:
            report = {"raw": text[-2000:]}
        self.results["reconcile"] = {
            "exit_code": proc.returncode,
            "ok": proc.returncode == 0,
            "seconds": round(time.monotonic() - started, 1),
            "checks": report.get("checks"),
            "discrepancies": (report.get("discrepancies") or [])[:20],
        }
        self.log(f"reconcile: {'OK' if proc.returncode == 0 else 'FAILED'} {report.get('checks')}")

    def summarise(self) -> None:
        phases = self.results["phases"]
        sql = phases["sql"]["ok_per_s"]

        def ratio(name: str, over: float | None) -> float | None:
            return round(phases[name]["ok_per_s"] / over, 3) if over else None

        self.results["ratios"] = {
            "service_vs_sql": ratio("service", sql),
            "limit_vs_sql": ratio("limit", sql),
            "service_vs_drf_trivial": ratio("service", phases["drf_trivial"]["ok_per_s"]),
            "drf_trivial_vs_sql": ratio("drf_trivial", sql),
        }
        if "sql_hot" in phases:
            self.results["ratios"]["service_vs_sql_hot"] = ratio("service", phases["sql_hot"]["ok_per_s"])
        goals: dict[str, Any] = {}
        for workload in ("service", "limit"):
            measured = self.results["ratios"][f"{workload}_vs_sql"]
            target = GOALS[f"{workload}_vs_sql"]
            goals[f"{workload}_vs_sql"] = {
                "goal": f">= {target}",
                "measured": measured,
                "met": (measured or 0) >= target,
            }
        for workload in ("service", "limit"):
            p99 = phases[workload]["latency_ms"]["p99"]
            goals[f"{workload}_p99_ms"] = {"goal": f"< {GOALS['p99_ms']}", "measured": p99, "met": (p99 or 1e9) < 50}
        for workload in ("service", "limit"):
            errors = phases[workload]["errors"]
            goals[f"{workload}_errors"] = {"goal": "0", "measured": errors, "met": errors == GOALS["errors"]}
        ok = self.results["reconcile"]["ok"]
        goals["reconciled"] = {"goal": "reconcile OK", "measured": ok, "met": ok}
        self.results["goals"] = goals

    def cleanup(self, *, keep_logs: bool) -> None:
        self.started.stop_all()
        if hasattr(self, "service_log"):
            self.service_log.close()
        if not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.db_created and not self.args.keep_db:
            try:
                with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"warning: could not drop {self.db_name}: {exc}", file=sys.stderr)


def code_version() -> dict[str, Any]:
    """The commit measured, and the application files that differed from it (others may be editing them)."""

    def git(*argv: str) -> str:
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
        return out.stdout.rstrip("\n")  # porcelain lines start with a status column that may be a space

    changed = git("status", "--porcelain", "--", "accounts", "ledger", "orders", "exchange").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_app_files": [line[3:] for line in changed]}


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def print_table(results: dict[str, Any]) -> None:
    head = ("phase", "ok/s", "req/s", "trades/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "rejected", "errors")
    rows = [(*head, "cpu: svc", "streams", "db", "loadgen", "other")]
    for name, p in results["phases"].items():
        lat, cpu = p["latency_ms"], p["cpu_cores"]
        rows.append(
            (
                name,
                p["ok_per_s"],
                p["requests_per_s"],
                p.get("trades_per_s", ""),
                lat["p50"],
                lat["p95"],
                lat["p99"],
                lat["max"],
                p["rejections"],
                p["errors"],
                cpu.get("service", 0),
                cpu.get("stream_server", 0),
                cpu.get("postgres_backends", 0),
                round(cpu.get("load_generator", 0) + cpu.get("load_generator_children", 0), 2),
                cpu.get("other", 0),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        cells = [str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells))
    print(
        "(ok/s: requests answered with their success status: an order placed (201, whatever it matched) or cancelled "
        "(200); trades/s: trades written to the database during the phase; cpu columns: cores used during the phase; "
        "svc = serve + its web workers, streams = the stream server, db = PostgreSQL backends of the benchmark "
        "database, loadgen = the load generator and its subscribers' process, other = the rest of the machine)"
    )
    for name, p in results["phases"].items():
        extra = {k: v for k, v in (("rejections", p["rejections_by_code"]), ("errors", p["errors_by_kind"])) if v}
        if len(p.get("by_kind", {})) > 1:
            extra["by kind (ok/s, p50/p99 ms)"] = {
                kind: f"{k['ok_per_s']}/s, {k['p50']}/{k['p99']}" for kind, k in p["by_kind"].items()
            }
        if "workload" in p:
            extra["answers"] = p["workload"]
        if p.get("trades"):
            extra["trades between customers"] = p["trades_between_customers"]
        backends = p["cpu_cores"].get("backends_avg") or {}
        if backends:  # where the database's connections spent the phase (the market row lock, the client)
            extra["backends (avg): waiting for a row lock, idle in transaction"] = (
                backends.get("active, waiting for a row lock", 0),
                backends.get("idle in transaction (waiting for the client)", 0),
            )
        if extra:
            print(f"  {name}: {extra}")
    ratios = results.get("ratios", {})
    print("\nratios (ok/s): " + ", ".join(f"{k} = {v}" for k, v in ratios.items()))
    print(
        "goals: "
        + "; ".join(
            f"{k} {g['goal']}: {g['measured']} ({'met' if g['met'] else 'NOT met'})"
            for k, g in results.get("goals", {}).items()
        )
    )
    probe = results.get("probe", {})
    for name in ("market order", "limit order (rests)", "cancel", "trivial"):
        if name in probe.get("requests", {}):
            request = probe["requests"][name]
            print(f"\nSQL of one {name} (in-process probe): {request['round_trips']} round trips")
            for statement in request["statements"]:
                print(f"    {statement}")
    profile = results.get("profile") or {}
    if "steps_pct" in profile:
        print(f"\nwhere a request's time goes ({profile['workload']} workload; py-spy, wall time, waits included):")
        for name, share in list(profile["steps_pct"].items())[:18]:
            print(f"  {share:5.1f}%  {name}")
        print("  by layer: " + ", ".join(f"{k} {v}%" for k, v in profile["layers_pct"].items()))
    cpu = probe.get("cpu_ms_per_request")
    if cpu:
        print("\nCPU per request in one process, no load (ms): " + ", ".join(f"{k} {v}" for k, v in cpu.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients / SQL connections (16)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measured phase (15)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap on requests per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured load before the first phase (3 s)")
    parser.add_argument("--sql-clients", type=int, help="connections of the SQL baselines (default: --clients)")
    parser.add_argument("--sql-hot-seconds", type=float, default=8.0, help="hot-row SQL phase length; 0 skips it")
    parser.add_argument(
        "--wait-quiet", type=float, default=30.0, help="wait up to this long for other load to stop first (30 s)"
    )
    parser.add_argument("--profile", action="store_true", help="add a phase sampled by py-spy")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--profile-workload", choices=("service", "limit"), default="service")
    parser.add_argument("--seed", type=int, default=1, help="seed of every workload's random choices (1)")
    parser.add_argument("--streams", type=int, default=0, help="add the streams phases with this many subscribers")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the service's WEB_CONCURRENCY)")
    parser.add_argument("--threads", type=int, help="Django threads per worker (default: the service's WEB_THREADS)")
    parser.add_argument(
        "--postgres",
        default="postgres://postgres@127.0.0.1:5432",
        help="server to create the throw-away database on (loopback only)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--keep-logs", action="store_true", help="keep the service's logs (kept anyway on failure)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    add_price_arguments(parser)
    args = parser.parse_args()
    if "127.0.0.1" not in args.postgres and "localhost" not in args.postgres:
        parser.error("--postgres must point at this machine")

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    bench = Bench(args)
    failed = True
    try:
        bench.execute()
        failed = False
    except KeyboardInterrupt:
        print(f"interrupted; stopping what was started (logs: {bench.workdir})", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"benchmark failed; logs: {bench.workdir}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup(keep_logs=failed or args.keep_logs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(bench.results, indent=2, default=str) + "\n")
    print_table(bench.results)
    print(f"\nresults: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the whole service: migrations, demo data on an empty database, HTTP (gunicorn) and gRPC together.

This process supervises: it serves gRPC health itself and runs gunicorn, the stream server (a gunicorn of one worker
on a Unix socket that serves every live stream of the instance, streams/server.py; the web workers relay the stream
paths to it), the risk monitor (``manage.py risk_monitor``) and the price engine (``manage.py run_market``) as
child processes. On SIGTERM or
SIGINT it flips gRPC health to NOT_SERVING, asks gunicorn to stop gracefully (in-flight requests finish),
stops gRPC with a grace period, and exits 0 within a bounded time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import structlog
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from exchange.grpc_server import GrpcHealthServer
from exchange.lifecycle import after_start_hooks, before_stop_hooks, seed_demo_data_if_empty
from exchange.registration import install as install_registration
from risk.background import install as install_risk_monitor
from simulation.background import install as install_price_engine

logger = structlog.get_logger("exchange.serve")


class Command(BaseCommand):
    help = "Apply migrations, seed demo data if the database is empty, and serve HTTP and gRPC until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("BIND_HOST", "0.0.0.0"), help="address to bind")
        parser.add_argument("--http-port", type=int, default=settings.HTTP_PORT)
        parser.add_argument("--grpc-port", type=int, default=settings.GRPC_PORT)
        parser.add_argument("--workers", type=int, default=settings.WEB_CONCURRENCY)
        parser.add_argument("--no-migrate", action="store_true", help="skip migrations")
        parser.add_argument("--no-seed", action="store_true", help="skip demo data")
        parser.add_argument("--shutdown-timeout", type=float, default=25.0, help="seconds before children are killed")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            logger.info("shutdown_requested", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
            logger.info("migrations_applied")
        if not options["no_seed"]:
            seed_demo_data_if_empty()
        # Children must not inherit our database connection.
        connections.close_all()

        grpc_server = GrpcHealthServer(
            host=options["host"], port=options["grpc_port"], poll_interval=settings.READINESS_POLL_INTERVAL
        )
        grpc_server.start()
        metrics_dir, own_metrics_dir = _metrics_directory()
        child_env = dict(os.environ) | {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", ""),
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        }
        streams = StreamServer(child_env) if settings.STREAM_SERVER_ENABLED else None
        if streams is not None:
            streams.start()
            child_env["STREAM_SERVER_SOCKET"] = streams.socket_path

        gunicorn = subprocess.Popen(  # fixed argv, no shell
            _gunicorn(f"{options['host']}:{options['http_port']}", options["workers"], "exchange.asgi:application"),
            env=child_env,
        )
        logger.info(
            "service_started",
            http_port=options["http_port"],
            grpc_port=grpc_server.port,
            workers=options["workers"],
            threads=settings.WEB_THREADS,
            gunicorn_pid=gunicorn.pid,
        )
        # Advertise in discovery once gRPC health answers (siblings check it first); withdraw first on the way out.
        install_registration()
        # The risk monitor (a supervised child) shares the workers' metrics directory, so /metrics shows its gauges.
        install_risk_monitor()
        # The price engine (docs/simulation.md): one instance per database moves prices, the others stand by.
        install_price_engine()
        for hook in after_start_hooks():
            hook(http_port=options["http_port"], grpc_port=grpc_server.port, stop=stop, metrics_dir=metrics_dir)

        exit_code = 0
        while not stop.wait(0.5):
            if gunicorn.poll() is not None:
                logger.error("http_server_exited", returncode=gunicorn.returncode)
                exit_code = 1
                break
            if streams is not None:
                streams.check()

        deadline = time.monotonic() + options["shutdown_timeout"]
        for hook in before_stop_hooks():
            hook()
        # NOT_SERVING first, so health-checking balancers stop routing to us while requests drain.
        grpc_server.health.enter_graceful_shutdown()
        if streams is not None:
            streams.terminate()  # every stream ends with a final event; the relays in the workers end with them
        if gunicorn.poll() is None:
            gunicorn.send_signal(signal.SIGTERM)  # gunicorn: graceful stop, in-flight requests finish
            try:
                gunicorn.wait(timeout=max(1.0, deadline - time.monotonic() - 2))
            except subprocess.TimeoutExpired:
                logger.error("http_server_kill", reason="graceful stop timed out")
                gunicorn.kill()
                gunicorn.wait()
        if streams is not None:
            streams.wait(max(1.0, deadline - time.monotonic() - 1))
        grpc_server.stop(grace=max(0.5, min(5.0, deadline - time.monotonic())))
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        logger.info("service_stopped", exit_code=exit_code)
        sys.stdout.flush()
        if exit_code:
            sys.exit(exit_code)


def _gunicorn(bind: str, workers: int, app: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:exchange.gunicorn_conf",
        "--bind",
        bind,
        "--workers",
        str(workers),
        app,
    ]


class StreamServer:
    """The instance's stream server: gunicorn with one worker on a Unix socket in a directory of this user's only
    (so only this instance's workers reach it), restarted with a growing pause if it exits while serving."""

    def __init__(self, env: dict[str, str]) -> None:
        self.directory = tempfile.mkdtemp(prefix="exchange-streams-")  # mode 0700
        self.socket_path = os.path.join(self.directory, "streams.sock")
        # Its own copy: serve adds STREAM_SERVER_SOCKET to the web workers' environment after this, and a stream
        # server that had it would hand its streams to itself.
        self.env = {**env, "STREAM_SERVER_SOCKET": ""}
        self.proc: subprocess.Popen[bytes] | None = None
        self.pause, self.restart_at = 1.0, 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(  # fixed argv, no shell
            _gunicorn(f"unix:{self.socket_path}", 1, "streams.server:application"), env=self.env
        )
        logger.info("stream_server_started", pid=self.proc.pid)

    def check(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if not self.restart_at:
            logger.error("stream_server_exited", returncode=self.proc.returncode, restart_in_s=self.pause)
            self.restart_at = now + self.pause
        elif now >= self.restart_at:
            self.restart_at, self.pause = 0.0, min(30.0, self.pause * 2)
            self.start()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.error("stream_server_kill", reason="graceful stop timed out")
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _metrics_directory() -> tuple[str, bool]:
    """Where the gunicorn workers share their Prometheus samples, and whether this process made it (and removes it).

    Each worker is a process with a registry of its own: without a shared directory, /metrics shows whichever worker
    answered the scrape and the counters jump between workers (prometheus_client's multiprocess mode, which
    django-prometheus's /metrics view switches to when PROMETHEUS_MULTIPROC_DIR is set).
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        os.makedirs(configured, exist_ok=True)
        return configured, False
    return tempfile.mkdtemp(prefix="exchange-metrics-"), True

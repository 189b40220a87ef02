"""``serve`` runs ``manage.py risk_monitor`` as a supervised child process: started after HTTP, restarted (with a
growing pause) if it dies, stopped with SIGTERM before HTTP drains. A child of its own, not a thread in ``serve``:
it computes with the database and the metrics of the gunicorn workers (PROMETHEUS_MULTIPROC_DIR), and a slow query
there can never delay gRPC health or shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings

from exchange import lifecycle

logger = structlog.get_logger("exchange.risk")

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
STOP_TIMEOUT = 10.0
MAX_RESTART_PAUSE = 30.0


class RiskMonitorProcess:
    def __init__(self, *, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="risk-monitor-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            self.proc = subprocess.Popen([sys.executable, str(MANAGE_PY), "risk_monitor"], env=self.env)
            logger.info("risk_monitor_process_started", pid=self.proc.pid)
            while self.proc.poll() is None and not self._stop.wait(0.5):
                pass
            if self._stop.is_set():
                return
            logger.error("risk_monitor_process_exited", returncode=self.proc.returncode, restart_in_s=pause)
            if self._stop.wait(pause):
                return
            pause = min(MAX_RESTART_PAUSE, pause * 2)

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(timeout=5)
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.error("risk_monitor_process_kill", pid=proc.pid)
                proc.kill()
                proc.wait()
        return proc.returncode


_active: RiskMonitorProcess | None = None


def start_risk_monitor(*, metrics_dir: str | None = None, **_: Any) -> RiskMonitorProcess | None:
    """``lifecycle.on_start`` hook."""
    global _active
    if settings.RISK_MONITOR_INTERVAL <= 0:
        logger.info("risk_monitor_disabled", reason="RISK_MONITOR_INTERVAL is 0")
        return None
    env = dict(os.environ)
    if metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    _active = RiskMonitorProcess(env=env)
    _active.start()
    return _active


def stop_risk_monitor() -> None:
    """``lifecycle.on_stop`` hook."""
    global _active
    if _active is not None:
        _active.stop()
        _active = None


def install() -> None:
    """Hook into ``manage.py serve`` (idempotent)."""
    lifecycle.install(start_risk_monitor, stop_risk_monitor)

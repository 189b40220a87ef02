"""Long-running loops that ``manage.py serve`` runs beside HTTP: each is a management command in a child process of
its own (the risk monitor, the market engine, the event relay ...), started after HTTP, restarted with a growing
pause if it dies, and stopped with SIGTERM before HTTP drains.

A child process, not a thread of ``serve``: it works with the database and the gunicorn workers' metrics directory
(PROMETHEUS_MULTIPROC_DIR), and nothing it does, a slow query included, can delay gRPC health or shutdown. Each
command stops cleanly on SIGTERM itself (healthchecks' ``sendalerts`` is the model).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings

from exchange import lifecycle

logger = structlog.get_logger("exchange.supervisor")

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
STOP_TIMEOUT = 10.0
MAX_RESTART_PAUSE = 30.0


class SupervisedCommand:
    """``manage.py <command> <args>`` kept running until ``stop``."""

    def __init__(self, command: str, *args: str, env: dict[str, str]) -> None:
        self.command, self.args, self.env = command, args, env
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"{command}-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            self.proc = subprocess.Popen([sys.executable, str(MANAGE_PY), self.command, *self.args], env=self.env)
            logger.info("child_process_started", command=self.command, pid=self.proc.pid)
            while self.proc.poll() is None and not self._stop.wait(0.5):
                pass
            if self._stop.is_set():
                return
            logger.error(
                "child_process_exited", command=self.command, returncode=self.proc.returncode, restart_in_s=pause
            )
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
                logger.error("child_process_kill", command=self.command, pid=proc.pid)
                proc.kill()
                proc.wait()
        return proc.returncode


def supervise(command: str, *args: str, enabled: Callable[[], bool], why_not: str) -> Callable[[], None]:
    """Hook ``manage.py <command>`` into ``serve`` (idempotent): started after HTTP when ``enabled()``, stopped before
    HTTP drains. Returns the install function to call from ``serve``."""
    active: list[SupervisedCommand] = []

    def start(*, metrics_dir: str | None = None, **_: Any) -> SupervisedCommand | None:
        if not enabled():
            logger.info("child_process_disabled", command=command, reason=why_not)
            return None
        env = dict(os.environ)
        if metrics_dir:
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        child = SupervisedCommand(command, *args, env=env)
        child.start()
        active.append(child)
        return child

    def stop() -> None:
        while active:
            active.pop().stop()

    start.__name__ = f"start_{command}"
    stop.__name__ = f"stop_{command}"

    def install() -> None:
        lifecycle.install(start, stop)

    return install

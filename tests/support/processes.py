"""Start the real service as a subprocess on free loopback ports, and stop exactly what was started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``manage.py serve`` in a subprocess bound to 127.0.0.1, with its output captured to a file."""

    def __init__(
        self,
        *,
        database_url: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
        settings_module: str = "exchange.settings.local",
        extra_args: list[str] | None = None,
    ) -> None:
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.log_path = log_dir / f"service-{self.http_port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "POSTGRES_URL", "REDIS_URL"}},
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DATABASE_URL": database_url,
            "BIND_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.http_port),
            "GRPC_PORT": str(self.grpc_port),
            "READINESS_POLL_INTERVAL": "0.5s",
            # Demo keys of the service's own throw-away database stay with its logs, not in the work tree.
            "DEMO_API_KEYS_FILE": str(log_dir / f"api-keys-{self.http_port}.txt"),
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            # Prices stay where a test sets them unless it turns the price engine on.
            "PRICE_ENGINE_ENABLED": "false",
            **(env or {}),
        }
        self.args = [sys.executable, "manage.py", "serve", "--workers", str(workers), *(extra_args or [])]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None  # seconds the last start() took until health answered

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 180.0) -> ServiceProcess:
        self._log = open(self.log_path, "wb")  # closed in stop() / terminate()
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        began = time.monotonic()
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            try:
                if httpx.get(f"{self.base_url}/api/v1/health", timeout=1.0).status_code == 200:
                    self.started_in = time.monotonic() - began
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"service did not answer within {timeout}s:\n{self.output()[-4000:]}")

    def manage(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """An operator's ``manage.py`` command with exactly the service's environment (its database, settings)."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, "LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM to the serve process (by pid) and wait for its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        """Best-effort cleanup: SIGTERM, then SIGKILL for the process and its gunicorn children."""
        if self.proc is None or self.proc.poll() is not None:
            if hasattr(self, "_log"):
                self._log.close()
            return
        children = _children(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in [self.proc.pid, *children]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
        self._log.close()


def _children(pid: int) -> list[int]:
    """Descendant process ids (from /proc), so a stuck service can be killed without touching anything else."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                child = int(stat.parent.name)
                found.append(child)
                frontier.append(child)
    return found

"""A private PostgreSQL server for fault tests: restart it, crash it (SIGKILL of the postmaster) or terminate its
backends without touching the machine's shared server.

``initdb`` and ``pg_ctl`` come from the installed PostgreSQL (``/usr/lib/postgresql/*/bin``); the cluster lives in a
temporary directory, listens on a free loopback port, and is stopped (by pid) and removed at the end. PostgreSQL
refuses to run as root, so under root (CI) the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.processes import _children, free_port
from tests.support.services import service_missing


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        service_missing(f"needs PostgreSQL's {name} (/usr/lib/postgresql/*/bin)")
    return found[-1]


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="exsim-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> PrivatePostgres:
        result = self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        assert result.returncode == 0, result.stdout + result.stderr
        return self

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c autovacuum=off "
            "-c max_connections=60 -c shared_buffers=32MB"
        )
        result = self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        assert result.returncode == 0, result.stdout + result.stderr + self.log.read_text(errors="replace")[-2000:]
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.postmaster_pid() is not None:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """A clean restart: every session is ended, then the server listens again."""
        self.stop()
        self.start()

    def crash_and_start(self, down_for: float = 0.5) -> None:
        """SIGKILL the postmaster (its backends notice and exit), wait until they are gone, then start again:
        crash recovery replays the WAL."""
        pid = self.postmaster_pid()
        assert pid is not None
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in [pid, *children]) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in children:  # a backend still running past the deadline
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        # Where nobody reaps orphans (a container's init), the dead postmaster stays a zombie whose pid the new
        # server would take for a live one: its lock files are stale once every process of the old server is gone.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.root / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        time.sleep(down_for)
        self.start()

    def terminate_backends(self, database: str) -> int:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            ).fetchall()
        return len(rows)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None
        return pid if _alive(pid) else None

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        pid = self.postmaster_pid()
        self.stop("immediate")
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

"""Fixtures for the ecosystem tests: Redis keys that never collide, a private redis-server, a fake config service,
log capture.

Tests that touch the shared Redis use the database number REDIS_URL names (CI: 13) and a service name unique to
the test, and delete their keys afterwards. A test that must break Redis starts its own redis-server on a free port
and stops it by pid; the shared Redis is never stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.processes import free_port
from tests.support.services import scratch_database_url, service_missing


def unique_name(prefix: str = "exsim-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield client
    client.close()


@pytest.fixture
def service_name(shared_redis: redis.Redis) -> Iterator[str]:
    """A service name no other test (or developer) uses; its discovery keys are deleted afterwards."""
    name = unique_name()
    yield name
    for key in shared_redis.scan_iter(match=f"services:{name}:*"):
        shared_redis.delete(key)


@pytest.fixture
def discovery_settings(settings: Any, redis_url: str) -> Any:
    """Point the code under test (exchange.health.redis_client) at the test Redis."""
    settings.REDIS_URL = redis_url
    return settings


def log_events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """structlog events (as dicts) with this name that reached the stdlib logging machinery."""
    found = []
    for record in caplog.records:
        if isinstance(record.msg, dict) and record.msg.get("event") == event:
            found.append({**record.msg, "level": record.levelname.lower()})
    return found


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a service process's output (other lines skipped)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# --- A private redis-server ---------------------------------------------------------------------------------
class RedisServer:
    """``redis-server`` on a free loopback port, with no persistence; stopped and restarted by pid."""

    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("needs the redis-server binary to simulate a Redis outage")
        self.binary = str(binary)
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def start(self) -> RedisServer:
        log = open(self.log_dir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        probe = self.client()
        try:
            wait_until(lambda: self._pings(probe), timeout=10)
        finally:
            probe.close()
        return self

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def second_service_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another migrated database (like ``migrated_service_database_url``), for a second service process."""
    with scratch_database_url(tmp_path_factory, migrated=True) as url:
        yield url


# --- A fake configuration service ---------------------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0


@dataclass
class ConfigServer:
    """http.server in a thread on a free 127.0.0.1 port. ``replies`` maps a key to what the server answers;
    unknown keys get 404. ``requests`` records (key, headers) of every request."""

    replies: dict[str, Reply] = field(default_factory=dict)
    default_delay: float = 0.0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_json(self, key: str, payload: Any, *, status: int = 200, delay: float = 0.0) -> None:
        self.replies[key] = Reply(status, json.dumps(payload).encode(), delay)

    def requests_for(self, key: str) -> int:
        return sum(1 for k, _ in self.requests if k == key)

    def start(self) -> ConfigServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                prefix = "/api/v1/configuration/"
                key = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
                server.requests.append((key, dict(self.headers)))
                reply = server.replies.get(key, Reply(404, b'{"error": "not found"}'))
                time.sleep(reply.delay or server.default_delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: that is what the timeout tests want

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@pytest.fixture
def config_server() -> Iterator[ConfigServer]:
    server = ConfigServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog

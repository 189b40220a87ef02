"""Streams against the real service: ``manage.py serve`` (gunicorn's ASGI worker) on a fresh PostgreSQL database,
read with a real SSE client (httpx-sse), as the dashboard and trading systems read them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.e2e.conftest import pg_service_database_url  # noqa: F401 - fixture
from tests.support.processes import ServiceProcess
from tests.support.services import require_postgres, scratch_database_url

SEED = {
    "house": {"BTC": "50", "ETH": "1000", "USD": "5000000", "USDT": "5000000"},
    "users": [
        {"username": "desk-operator", "scopes": ["operator"]},
        {
            "username": "alice",
            "scopes": ["read", "trade"],
            "accounts": [{"label": "main", "deposits": {"USD": "200000", "BTC": "5"}}],
        },
        {
            "username": "bob",
            "scopes": ["read", "trade"],
            "accounts": [{"label": "main", "deposits": {"USD": "200000", "BTC": "5"}}],
        },
    ],
}


def start_service(database_url: str, log_dir: Path) -> ServiceProcess:
    """The service (two workers, heartbeats every second) on ``database_url``, no demo data. Start-up may take a
    while on a busy machine (booting the workers)."""
    process = ServiceProcess(
        database_url=database_url,
        log_dir=log_dir,
        workers=2,
        env={
            "CONFIG_SERVICE_URL": "",
            "SERVICE_HOST": "127.0.0.1",
            "STREAM_HEARTBEAT": "1s",
            "CORS_ALLOWED_ORIGINS": "http://dashboard.test:3002",
        },
        extra_args=["--no-seed"],
    )
    try:
        return process.start(timeout=180)
    except BaseException:
        process.stop()
        raise


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service for the module's tests, on a fresh (migrated) PostgreSQL database. Tests share it, so each
    seeds users of its own (``setup``) and reads only their streams; a test that stops the service starts its own
    (``own_service``)."""
    require_postgres()
    with scratch_database_url(tmp_path_factory, migrated=True) as url:
        process = start_service(url, tmp_path_factory.mktemp("streams-service"))
        try:
            yield process
        finally:
            process.stop()


@pytest.fixture
def own_service(pg_service_database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:  # noqa: F811
    """A service of the test's own, for a test that stops it."""
    process = start_service(pg_service_database_url, tmp_path)
    try:
        yield process
    finally:
        process.stop()


class Reader:
    """A real SSE client reading one stream in a thread; ``events`` are (id, event, data) as received."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None):
        self.url, self.headers, self.params = url, headers or {}, params or {}
        self.events: list[tuple[str, str, Any]] = []
        self.received_at: list[float] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Reader:
        self._thread.start()
        assert self._opened.wait(15), "the stream did not open"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Hang up (the server sees the disconnect)."""
        self.hang_up()
        self._thread.join(10)

    def hang_up(self) -> None:
        """Tell the reading thread to stop, without waiting for it (it notices at the next event or heartbeat)."""
        self._stop.set()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=5)) as http,
                connect_sse(http, "GET", self.url, headers=self.headers, params=self.params) as source,
            ):
                self._response = source.response
                self.status = source.response.status_code
                self._opened.set()
                if self.status != 200:
                    return
                for sse in source.iter_sse():
                    if not sse.data:  # the opening "retry:" block (httpx-sse yields it, browsers do not)
                        continue
                    self.events.append((sse.id, sse.event, json.loads(sse.data) if sse.data else None))
                    self.received_at.append(time.time())
                    if self._stop.is_set():
                        return
        except BaseException as exc:
            if not self._stop.is_set():
                self.error = exc
        finally:
            self._opened.set()

    def named(self, name: str) -> list[tuple[str, Any]]:
        return [(i, d) for i, e, d in list(self.events) if e == name]

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            if self.error is not None:
                raise AssertionError(f"the stream failed: {self.error!r}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; received {[(i, e) for i, e, _ in self.events][-20:]}")


@pytest.fixture
def reader() -> Iterator[Any]:
    """Readers a test opens, each closed when it ends."""
    opened: list[Reader] = []

    def open_reader(url: str, **kwargs: Any) -> Reader:
        r = Reader(url, **kwargs).__enter__()
        opened.append(r)
        return r

    yield open_reader
    for r in opened:  # all at once, so their threads end together rather than one heartbeat after another
        r.hang_up()
    for r in opened:
        r.close()

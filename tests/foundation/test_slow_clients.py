"""Slow clients cannot stop the service: more slowloris sockets than the service has threads (headers or a body
sent a byte at a time) sit beside a normal client, whose requests stay fast, and the server closes each slow
socket once its read timeout passes. Against the real ``serve``."""

from __future__ import annotations

import select
import socket
import threading
import time

import httpx
import pytest

from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.slow

WORKERS, THREADS = 2, 2
TIMEOUT = 2.0  # HTTP_HEADER_TIMEOUT and HTTP_BODY_TIMEOUT of the service under test
SLOW_HEADERS, SLOW_BODIES = 8, 6  # 14 slow sockets for 4 threads
DRIP = 0.3  # seconds between the bytes a slow socket sends


@pytest.fixture
def service(migrated_service_database_url, tmp_path):
    process = ServiceProcess(
        database_url=migrated_service_database_url,
        log_dir=tmp_path,
        workers=WORKERS,
        env={"WEB_THREADS": str(THREADS), "HTTP_HEADER_TIMEOUT": f"{TIMEOUT}s", "HTTP_BODY_TIMEOUT": f"{TIMEOUT}s"},
    ).start()
    try:
        yield process
    finally:
        process.stop()


class SlowSocket:
    def __init__(self, port: int, *, body: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.opened = time.monotonic()
        self.closed_after: float | None = None
        if body:  # complete headers, then a body that never finishes in time
            self.sock.sendall(
                b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 500\r\n\r\n"
            )
            self.pending = b"{" + b" " * 498 + b"}"
        else:
            self.pending = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 200 + b"\r\n\r\n"

    def drip(self) -> None:
        if self.closed_after is not None:
            return
        readable, _, _ = select.select([self.sock], [], [], 0)
        try:
            if readable and self.sock.recv(4096) == b"":
                raise ConnectionResetError
            self.sock.send(self.pending[:1])
            self.pending = self.pending[1:]
        except OSError:
            self.closed_after = time.monotonic() - self.opened
            self.sock.close()


def test_slow_sockets_do_not_slow_a_normal_client_and_are_closed_after_the_timeout(service):
    slow = [SlowSocket(service.http_port, body=False) for _ in range(SLOW_HEADERS)]
    slow += [SlowSocket(service.http_port, body=True) for _ in range(SLOW_BODIES)]
    stop = threading.Event()

    def drip_all() -> None:
        while not stop.is_set() and any(s.closed_after is None for s in slow):
            for s in slow:
                s.drip()
            time.sleep(DRIP)

    dripper = threading.Thread(target=drip_all, daemon=True)
    dripper.start()
    latencies = []
    try:
        with httpx.Client(base_url=service.base_url, timeout=5) as client:
            deadline = time.monotonic() + TIMEOUT + 2
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert client.get("/api/v1/health").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)
        dripper.join(timeout=TIMEOUT + 5)
    finally:
        stop.set()
        for s in slow:
            s.sock.close()

    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert len(latencies) > 20 and p99 < 1.0, (len(latencies), p99)
    closed = [s.closed_after for s in slow]
    assert None not in closed, "the server left slow sockets open"
    # Closed by the server's timer: not before it, and not much after (the drip notices within DRIP).
    assert all(TIMEOUT - 0.2 <= after <= TIMEOUT + 1.5 for after in closed), closed

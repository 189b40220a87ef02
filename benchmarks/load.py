"""A small asyncio HTTP/1.1 load generator: N concurrent keep-alive connections, one request in flight on each.

Hand-written on raw asyncio streams rather than a full HTTP client: the load generator shares two cores with the
service and PostgreSQL, and every microsecond it spends per request is taken from the system under test. It
speaks only what the benchmark needs (Content-Length or chunked bodies, ``Connection: close``) and only to the
loopback address it is given.

A connection the server closes (gunicorn's sync workers close after every response) is reopened, and the time to
reconnect counts in that request's latency: a real client would pay it too.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Builds the next request for a client: (request bytes, label for reporting).
RequestFactory = Callable[[int], bytes]


@dataclass
class PhaseStats:
    name: str
    clients: int
    duration_s: float = 0.0
    ok: int = 0  # the expected success status
    rejections: Counter[str] = field(default_factory=Counter)  # 422 by error code: recorded business rejections
    errors: Counter[str] = field(default_factory=Counter)  # anything else, by status or exception
    latencies_ms: list[float] = field(default_factory=list)  # every answered request (ok, rejected or error)
    client_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return self.ok + sum(self.rejections.values()) + sum(self.errors.values())

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "name": self.name,
            "clients": self.clients,
            "duration_s": round(self.duration_s, 2),
            "requests": self.requests,
            "ok": self.ok,
            "ok_per_s": round(self.ok / self.duration_s, 1) if self.duration_s else 0.0,
            "requests_per_s": round(self.requests / self.duration_s, 1) if self.duration_s else 0.0,
            "rejections": sum(self.rejections.values()),
            "rejections_by_code": dict(self.rejections),
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "latency_ms": {
                "mean": round(sum(lat) / len(lat), 2) if lat else None,
                "p50": percentile(lat, 50),
                "p95": percentile(lat, 95),
                "p99": percentile(lat, 99),
                "max": round(lat[-1], 2) if lat else None,
            },
            "load_generator_cpu_s": round(self.client_cpu_s, 2),
        }


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil(n * pct / 100), at least 1
    return round(sorted_values[int(rank) - 1], 2)


def build_request(*, method: str, path: str, host: str, headers: dict[str, str], body: dict[str, Any] | None) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class _Response:
    __slots__ = ("body", "close", "status")

    def __init__(self, status: int, body: bytes, close: bool) -> None:
        self.status, self.body, self.close = status, body, close


async def _read_response(reader: asyncio.StreamReader) -> _Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in header_lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.readexactly(length) if length else b""
    return _Response(status, body, close)


def _error_code(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unparsed"


async def _client(
    index: int,
    *,
    host: str,
    port: int,
    factory: RequestFactory,
    ok_status: int,
    deadline: float,
    budget: list[int],
    stats: PhaseStats,
    timeout: float,
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            request = factory(index)
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                assert reader is not None
                writer.write(request)
                response = await asyncio.wait_for(_read_response(reader), timeout)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
                stats.errors[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            if response.status == ok_status:
                stats.ok += 1
            elif response.status == 422:
                stats.rejections[_error_code(response.body)] += 1
            else:
                stats.errors[f"HTTP {response.status} {_error_code(response.body)}"] += 1
            if response.close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _run(
    *,
    name: str,
    host: str,
    port: int,
    clients: int,
    seconds: float,
    max_requests: int,
    factory: RequestFactory,
    ok_status: int,
    timeout: float,
) -> PhaseStats:
    stats = PhaseStats(name=name, clients=clients)
    budget = [max_requests]
    cpu_before = sum(os.times()[:2])
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _client(
                i,
                host=host,
                port=port,
                factory=factory,
                ok_status=ok_status,
                deadline=deadline,
                budget=budget,
                stats=stats,
                timeout=timeout,
            )
            for i in range(clients)
        )
    )
    stats.duration_s = time.monotonic() - started
    stats.client_cpu_s = sum(os.times()[:2]) - cpu_before
    return stats


def run_phase(
    *,
    name: str,
    host: str,
    port: int,
    clients: int,
    seconds: float,
    max_requests: int,
    factory: RequestFactory,
    ok_status: int,
    timeout: float = 10.0,
) -> PhaseStats:
    """Drive ``clients`` connections until ``seconds`` pass or ``max_requests`` are sent; return the statistics."""
    if host != "127.0.0.1":
        raise ValueError("the load generator only talks to 127.0.0.1")
    return asyncio.run(
        _run(
            name=name,
            host=host,
            port=port,
            clients=clients,
            seconds=seconds,
            max_requests=max_requests,
            factory=factory,
            ok_status=ok_status,
            timeout=timeout,
        )
    )

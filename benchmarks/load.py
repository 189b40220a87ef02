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
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmarks.workload import Intent


class Workload(Protocol):
    """What a phase sends: ``next`` gives client ``index``'s next request, ``observe`` shows it the answer."""

    def next(self, index: int) -> Intent: ...

    def observe(self, index: int, intent: Intent, status: int, body: bytes) -> None: ...


# Turns an intent of client ``index`` into the bytes of its HTTP request (headers, key, body).
Render = Callable[[int, Intent], bytes]


@dataclass
class PhaseStats:
    name: str
    clients: int
    duration_s: float = 0.0
    ok: int = 0  # answered with the intent's success status
    rejections: Counter[str] = field(default_factory=Counter)  # business refusals by error code (422; 409 cancels)
    errors: Counter[str] = field(default_factory=Counter)  # anything else, by status or exception
    latencies_ms: list[float] = field(default_factory=list)  # every answered request (ok, rejected or error)
    ok_by_kind: Counter[str] = field(default_factory=Counter)
    latencies_by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    client_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return self.ok + sum(self.rejections.values()) + sum(self.errors.values())

    def add(self, other: PhaseStats) -> None:
        """Merge another client's statistics into these."""
        self.ok += other.ok
        self.rejections.update(other.rejections)
        self.errors.update(other.errors)
        self.latencies_ms.extend(other.latencies_ms)
        self.ok_by_kind.update(other.ok_by_kind)
        for kind, values in other.latencies_by_kind.items():
            self.latencies_by_kind[kind].extend(values)

    def summary(self) -> dict[str, Any]:
        per_s = (lambda n: round(n / self.duration_s, 1)) if self.duration_s else (lambda n: 0.0)
        return {
            "name": self.name,
            "clients": self.clients,
            "duration_s": round(self.duration_s, 2),
            "requests": self.requests,
            "ok": self.ok,
            "ok_per_s": per_s(self.ok),
            "requests_per_s": per_s(self.requests),
            "rejections": sum(self.rejections.values()),
            "rejections_by_code": dict(self.rejections),
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "latency_ms": latency_summary(self.latencies_ms),
            "by_kind": {
                kind: {"ok": self.ok_by_kind[kind], "ok_per_s": per_s(self.ok_by_kind[kind]), **latency_summary(values)}
                for kind, values in sorted(self.latencies_by_kind.items())
            },
            "load_generator_cpu_s": round(self.client_cpu_s, 2),
        }


def latency_summary(values: list[float]) -> dict[str, float | None]:
    lat = sorted(values)
    return {
        "mean": round(sum(lat) / len(lat), 2) if lat else None,
        "p50": percentile(lat, 50),
        "p95": percentile(lat, 95),
        "p99": percentile(lat, 99),
        "max": round(lat[-1], 2) if lat else None,
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
    workload: Workload,
    render: Render,
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
            intent = workload.next(index)
            request = render(index, intent)
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
            elapsed = (time.perf_counter() - started) * 1000
            stats.latencies_ms.append(elapsed)
            stats.latencies_by_kind[intent.kind].append(elapsed)
            if response.status == intent.ok_status:
                stats.ok += 1
                stats.ok_by_kind[intent.kind] += 1
            elif response.status == intent.refused_status:
                stats.rejections[_error_code(response.body)] += 1
            else:
                stats.errors[f"HTTP {response.status} {_error_code(response.body)}"] += 1
            workload.observe(index, intent, response.status, response.body)
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
    workload: Workload,
    render: Render,
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
                workload=workload,
                render=render,
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
    workload: Workload,
    render: Render,
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
            workload=workload,
            render=render,
            timeout=timeout,
        )
    )

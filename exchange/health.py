"""Liveness and readiness checks, shared by the REST endpoints and the gRPC health service.

Readiness really talks to each dependency: the database runs a query, Redis answers PING. The database is
required (no trading without it); Redis is not (service discovery degrades, trading goes on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.db import connections


@dataclass
class CheckResult:
    name: str
    ok: bool
    required: bool
    latency_ms: float
    error: str | None = None
    enabled: bool = True


# Informative sections of readiness that apps add (name -> a function returning a JSON-able dict), such as which
# instance's price engine moves prices (simulation/apps.py). They never make the service not ready.
SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {}


@dataclass
class Readiness:
    checks: list[CheckResult] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Every required dependency answers."""
        return all(c.ok for c in self.checks if c.required and c.enabled)

    @property
    def status(self) -> str:
        if not self.ready:
            return "not_ready"
        if any(c.enabled and not c.ok for c in self.checks):
            return "degraded"
        return "ready"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "timestamp": utc_now_rfc3339(),
            "service": settings.SERVICE_NAME,
            "instance": settings.SERVICE_INSTANCE_NAME,
            # One entry per dependency, "ok" / "fail" / "disabled", as the siblings read it.
            "checks": {c.name: ("disabled" if not c.enabled else "ok" if c.ok else "fail") for c in self.checks},
            "details": {
                c.name: {
                    "required": c.required,
                    "latency_ms": round(c.latency_ms, 2),
                    **({"error": c.error} if c.error else {}),
                }
                for c in self.checks
            },
            **self.sections,
        }


def utc_now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_database() -> CheckResult:
    started = time.perf_counter()
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return CheckResult("database", True, True, (time.perf_counter() - started) * 1000)
    except Exception as exc:  # any driver error means "not reachable"
        # Drop the broken connection so the next check (or request) reconnects instead of reusing it.
        try:
            connection.close()
        except Exception:  # noqa: S110 - closing a dead connection may fail too; nothing to do about it
            pass
        return CheckResult("database", False, True, (time.perf_counter() - started) * 1000, _short(exc))


_redis_lock = threading.Lock()
_redis_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis | None:
    """A process-wide Redis client with short timeouts, or None when REDIS_URL is not set."""
    url = settings.REDIS_URL
    if not url:
        return None
    with _redis_lock:
        client = _redis_clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
            _redis_clients[url] = client
        return client


def check_redis() -> CheckResult:
    client = redis_client()
    if client is None:
        return CheckResult("redis", True, False, 0.0, enabled=False)
    started = time.perf_counter()
    try:
        client.ping()
        return CheckResult("redis", True, False, (time.perf_counter() - started) * 1000)
    except Exception as exc:  # connection refused, timeout, auth: all mean "not reachable"
        return CheckResult("redis", False, False, (time.perf_counter() - started) * 1000, _short(exc))


def check_maintenance() -> CheckResult | None:
    """A simulated downtime in force (chaos/): a required check that fails until it ends, so readiness answers 503
    and gRPC health NOT_SERVING without a restart. None (no entry) when there is none."""
    try:
        from chaos.effects import downtime

        down = downtime()
    except Exception:  # chaos state unreadable (the database check reports the cause)
        return None
    if down is None:
        return None
    message = str(down.params.get("error_message") or "exchange_maintenance")
    return CheckResult("maintenance", False, True, 0.0, f"{message} ({down.chaos_id})")


def readiness() -> Readiness:
    checks = [check_database(), check_redis()]
    maintenance = check_maintenance()
    if maintenance is not None:
        checks.append(maintenance)
    return Readiness(checks=checks, sections={name: section() for name, section in SECTIONS.items()})


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:200]

"""Registration in service discovery while ``manage.py serve`` runs (ECOSYSTEM.md "Service discovery in Redis").

A background thread writes ``SET services:{SERVICE_NAME}:{SERVICE_INSTANCE_NAME} <json> EX DISCOVERY_TTL`` at
start and again every HEALTH_CHECK_INTERVAL (never less often than a third of the TTL, so one lost heartbeat does
not make us vanish). On a clean shutdown the key is deleted before HTTP and gRPC start draining, so siblings stop
picking us first; after SIGKILL the TTL removes it.

Redis is not required for trading: when it goes away the service keeps serving, this module logs the outage once
(warning) and the recovery once (info), and keeps trying on the normal heartbeat, so the key reappears by itself
within one interval of Redis coming back. Readiness reports the Redis failure separately (exchange/health.py).

The value carries every field name a sibling parses (see ``payload``); ``port`` is the gRPC port because siblings
reach us over gRPC (health, audit, custody), while ``http_port`` is there for the dashboard.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from django.conf import settings

from exchange import lifecycle
from exchange.discovery import service_key
from exchange.health import redis_client

logger = structlog.get_logger("exchange.registration")

# Delete the key only while it still holds our registration: if another process has since registered under the same
# instance name (a restarted pod that kept its name), its key must survive our shutdown.
_DELETE_IF_OURS = """
local value = redis.call('GET', KEYS[1])
if value and string.find(value, ARGV[1], 1, true) then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Registration:
    """One service instance's entry in discovery, kept alive by a heartbeat thread."""

    def __init__(
        self,
        *,
        service_name: str,
        instance_name: str,
        host: str,
        http_port: int,
        grpc_port: int,
        version: str,
        environment: str,
        ttl: int,
        interval: float,
        client_factory: Callable[[], redis.Redis | None] = redis_client,
    ) -> None:
        self.service_name, self.instance_name, self.host = service_name, instance_name, host
        self.http_port, self.grpc_port = http_port, grpc_port
        self.version, self.environment = version, environment
        self.ttl = max(1, min(int(ttl), 90))
        self.interval = max(0.1, min(interval, self.ttl / 3))
        self.key = service_key(service_name, instance_name)
        self.registered_at = datetime.now(UTC)
        # Unique per process start; lets shutdown recognise "our" value (see _DELETE_IF_OURS).
        self.registration_id = uuid.uuid4().hex
        self._client_factory = client_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # None: nothing written yet; True: the last heartbeat reached Redis; False: Redis is failing.
        self._reachable: bool | None = None

    def payload(self, now: datetime | None = None) -> dict[str, Any]:
        seen = rfc3339(now or datetime.now(UTC))
        return {
            "service_name": self.service_name,
            "name": self.service_name,
            "id": self.instance_name,
            "instance_id": self.instance_name,
            "host": self.host,
            "address": self.host,
            "grpc_port": self.grpc_port,
            "http_port": self.http_port,
            "port": self.grpc_port,
            "version": self.version,
            "service_version": self.version,
            "environment": self.environment,
            "status": "active",
            "health": "healthy",
            "last_seen": seen,
            "last_heartbeat": seen,
            "registered_at": rfc3339(self.registered_at),
            "metadata": {
                "registration_id": self.registration_id,
                "grpc_target": f"{self.host}:{self.grpc_port}",
                "http_url": f"http://{self.host}:{self.http_port}",
                "health_check": "grpc.health.v1",
                "pid": str(os.getpid()),
            },
        }

    def beat(self) -> bool:
        """Write the entry once; True when Redis took it. Logs only when reachability changes."""
        try:
            client = self._client_factory()
            if client is None:
                return False
            client.set(self.key, json.dumps(self.payload(), separators=(",", ":")), ex=self.ttl)
        except redis.RedisError as exc:
            if self._reachable is not False:
                logger.warning(
                    "discovery_registration_failed",
                    key=self.key,
                    error=f"{type(exc).__name__}: {exc}"[:200],
                    retry_every_s=self.interval,
                    detail="still serving; registration resumes when Redis answers again",
                )
            self._reachable = False
            return False
        if self._reachable is None:
            logger.info("discovery_registered", key=self.key, ttl_s=self.ttl, interval_s=self.interval)
        elif self._reachable is False:
            logger.info("discovery_registration_recovered", key=self.key)
        self._reachable = True
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="discovery-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.beat()
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the heartbeat, then delete the key, so no late heartbeat can write it back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            client = self._client_factory()
            if client is None:
                return
            deleted = client.eval(_DELETE_IF_OURS, 1, self.key, self.registration_id)
            logger.info("discovery_deregistered", key=self.key, deleted=bool(deleted))
        except redis.RedisError as exc:
            # The TTL removes the key anyway; nothing else to do on the way out.
            logger.warning("discovery_deregister_failed", key=self.key, error=f"{type(exc).__name__}: {exc}"[:200])


_active: Registration | None = None


def start_registration(*, http_port: int, grpc_port: int, **_: Any) -> Registration | None:
    """``lifecycle.on_start`` hook: register with the ports ``serve`` really bound."""
    global _active
    if not settings.REDIS_URL:
        logger.info("discovery_disabled", reason="REDIS_URL is not set; siblings cannot discover this instance")
        return None
    _active = Registration(
        service_name=settings.SERVICE_NAME,
        instance_name=settings.SERVICE_INSTANCE_NAME,
        host=settings.SERVICE_HOST,
        http_port=http_port,
        grpc_port=grpc_port,
        version=settings.SERVICE_VERSION,
        environment=settings.ENVIRONMENT,
        ttl=settings.DISCOVERY_TTL,
        interval=settings.HEALTH_CHECK_INTERVAL,
    )
    _active.start()
    return _active


def stop_registration() -> None:
    """``lifecycle.on_stop`` hook."""
    global _active
    if _active is not None:
        _active.stop()
        _active = None


def install() -> None:
    """Hook registration into ``manage.py serve`` (idempotent: ``serve`` may be run twice in one process in tests)."""
    lifecycle.install(start_registration, stop_registration)

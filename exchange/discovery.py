"""Service discovery: find sibling instances registered in Redis (ECOSYSTEM.md "Service discovery in Redis").

Every service writes ``services:{service_name}:{instance_name}`` with a JSON value and a TTL, and refreshes it.
Lookup scans those keys (SCAN, never KEYS: KEYS blocks a shared Redis for the whole keyspace walk), reads the
values in one MGET, and keeps the entries that parse and were seen in the last 90 s. The siblings write different
field names for the same thing (``id`` / ``instance_id``, ``host`` / ``address``, ...), so parsing accepts each
alias; registration (exchange/registration.py) writes all of them.

A malformed value is skipped with one warning per key (not one per lookup), so a sibling writing garbage does
not flood our log every time someone looks it up.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog

from exchange.health import redis_client

logger = structlog.get_logger("exchange.discovery")

KEY_PREFIX = "services"
# ECOSYSTEM.md: entries whose last_seen is older than this are dead even if their key has not expired yet.
STALE_AFTER = timedelta(seconds=90)
_SCAN_BATCH = 200


class DiscoveryUnavailable(Exception):
    """Discovery cannot answer: REDIS_URL is not set, or Redis does not respond."""


@dataclass(frozen=True)
class ServiceInstance:
    service_name: str
    instance_id: str
    host: str
    grpc_port: int | None
    http_port: int | None
    version: str
    environment: str
    status: str
    health: str
    last_seen: datetime
    registered_at: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    key: str = ""

    @property
    def grpc_target(self) -> str | None:
        return f"{self.host}:{self.grpc_port}" if self.grpc_port else None

    @property
    def http_url(self) -> str | None:
        return f"http://{self.host}:{self.http_port}" if self.http_port else None

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.last_seen).total_seconds()


class MalformedEntry(ValueError):
    """A registration value that cannot be read as a service instance."""


def service_key(service_name: str, instance_name: str) -> str:
    return f"{KEY_PREFIX}:{service_name}:{instance_name}"


def discover(
    service_name: str, *, client: redis.Redis | None = None, now: datetime | None = None
) -> list[ServiceInstance]:
    """Live instances of one service, sorted by instance id."""
    return _lookup(f"{KEY_PREFIX}:{_glob_escape(service_name)}:*", client=client, now=now, service=service_name)


def discover_all(*, client: redis.Redis | None = None, now: datetime | None = None) -> list[ServiceInstance]:
    """Live instances of every service, sorted by service name then instance id."""
    return _lookup(f"{KEY_PREFIX}:*", client=client, now=now, service=None)


def _lookup(
    pattern: str, *, client: redis.Redis | None, now: datetime | None, service: str | None
) -> list[ServiceInstance]:
    client = client or _client()
    now = now or datetime.now(UTC)
    try:
        keys = sorted({_text(k) for k in client.scan_iter(match=pattern, count=_SCAN_BATCH)})
        # Keys can expire between SCAN and MGET; those come back as None and are simply gone.
        values = client.mget(keys) if keys else []
    except redis.RedisError as exc:
        raise DiscoveryUnavailable(f"Redis does not answer: {type(exc).__name__}: {exc}") from exc

    found: list[ServiceInstance] = []
    for key, raw in zip(keys, values, strict=True):
        key_service, instance_name = _split_key(key)
        if instance_name is None or (service is not None and key_service != service):
            continue  # not a registration key of the shape we own, e.g. "services:a:b:c"
        if raw is None:
            continue
        try:
            instance = parse_instance(raw, key=key)
        except MalformedEntry as exc:
            _warn_malformed(key, str(exc))
            continue
        _forget_malformed(key)
        if now - instance.last_seen > STALE_AFTER:
            continue
        found.append(instance)
    return sorted(found, key=lambda i: (i.service_name, i.instance_id))


def parse_instance(raw: bytes | str, *, key: str = "") -> ServiceInstance:
    """Read one registration value; the key fills in names a sibling left out of its JSON."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEntry(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedEntry(f"expected a JSON object, got {type(data).__name__}")
    key_service, key_instance = _split_key(key) if key else ("", None)

    service_name = _first_str(data, "service_name", "name") or key_service
    instance_id = _first_str(data, "instance_id", "id") or (key_instance or "")
    host = _first_str(data, "host", "address")
    if not service_name or not instance_id:
        raise MalformedEntry("no service or instance name")
    if not host:
        raise MalformedEntry("no host or address")
    if ":" in host and not host.startswith("["):
        # Some siblings put "host:port" in address; a bare IPv6 literal has more than one colon.
        maybe_host, _, maybe_port = host.rpartition(":")
        if maybe_port.isdigit() and host.count(":") == 1:
            host = maybe_host
    last_seen = _first_time(data, "last_seen", "last_heartbeat")
    if last_seen is None:
        raise MalformedEntry("no readable last_seen or last_heartbeat")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise MalformedEntry("metadata is not an object")
    return ServiceInstance(
        service_name=service_name,
        instance_id=instance_id,
        host=host,
        grpc_port=_first_port(data, "grpc_port", "port"),
        http_port=_first_port(data, "http_port"),
        version=_first_str(data, "version", "service_version"),
        environment=_first_str(data, "environment"),
        status=_first_str(data, "status") or "active",
        health=_first_str(data, "health") or "unknown",
        last_seen=last_seen,
        registered_at=_first_time(data, "registered_at"),
        metadata={str(k): str(v) for k, v in metadata.items()},
        key=key,
    )


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (Go writes nanoseconds and "Z"), or Unix seconds/milliseconds from the Node siblings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    # A timestamp without an offset is ambiguous; the ecosystem writes UTC, so read it as UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _client() -> redis.Redis:
    client = redis_client()
    if client is None:
        raise DiscoveryUnavailable("service discovery is disabled: REDIS_URL is not set")
    return client


def _split_key(key: str) -> tuple[str, str | None]:
    prefix = f"{KEY_PREFIX}:"
    if not key.startswith(prefix):
        return "", None
    service, sep, instance = key[len(prefix) :].partition(":")
    if not sep or not service or not instance or ":" in instance:
        return service, None
    return service, instance


def _first_str(data: dict[str, Any], *names: str) -> str:
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _first_port(data: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and 0 < value < 65536:
            return value
    return None


def _first_time(data: dict[str, Any], *names: str) -> datetime | None:
    for name in names:
        parsed = parse_time(data.get(name))
        if parsed is not None:
            return parsed
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


# Keys already reported as malformed: warn once, and again only after the key has parsed in between.
_malformed_lock = threading.Lock()
_malformed_keys: set[str] = set()


def _warn_malformed(key: str, reason: str) -> None:
    with _malformed_lock:
        if key in _malformed_keys:
            return
        # Bounded, so a sibling writing random key names cannot grow this forever.
        if len(_malformed_keys) > 1000:
            _malformed_keys.clear()
        _malformed_keys.add(key)
    logger.warning("discovery_entry_malformed", key=key, reason=reason)


def _forget_malformed(key: str) -> None:
    if key in _malformed_keys:
        with _malformed_lock:
            _malformed_keys.discard(key)

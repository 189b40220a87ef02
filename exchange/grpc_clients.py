"""Calls to sibling services over gRPC: found through discovery, guarded by a circuit breaker per service.

``SiblingClients`` picks an instance of a service from discovery (never this very instance), keeps one channel per
target and reuses it, re-reads discovery at most every HEALTH_CHECK_INTERVAL (sooner after a failed call, so a
replacement instance is found quickly), and checks health with the standard ``grpc.health.v1.Health/Check``.

Every call goes through the service's breaker (ECOSYSTEM.md): open after BREAKER_FAIL_MAX (5) consecutive
failures, so callers fail at once instead of waiting for a dead sibling; half-open after GRPC_BREAKER_RESET_TIMEOUT
(30 s); closed again after BREAKER_SUCCESS_THRESHOLD successful trial calls. Only outage-like gRPC codes count as
failures (UNAVAILABLE, DEADLINE_EXCEEDED, ...); a sibling answering "invalid argument" is healthy.

pybreaker holds its lock for the whole guarded call, which would let only one RPC per sibling run at a time; so
the RPC runs outside the breaker and its outcome is replayed through ``breaker.call`` (``_guarded``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pybreaker
import structlog
from django.conf import settings
from grpc_health.v1 import health_pb2, health_pb2_grpc

from exchange import discovery
from exchange.discovery import DiscoveryUnavailable, ServiceInstance

logger = structlog.get_logger("exchange.grpc_clients")

T = TypeVar("T")

# Codes that mean "the sibling is not there or not coping", as opposed to answers about the request itself.
OUTAGE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)
# Reconnect quickly after a sibling restarts; gRPC's default backoff grows to 120 s.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


class NoInstanceAvailable(Exception):
    """Discovery lists no live instance of the service (other than ourselves)."""


@dataclass(frozen=True)
class HealthReport:
    service: str
    instance: str
    target: str
    status: str  # SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN, or UNAVAILABLE / BREAKER_OPEN / ... on failure
    breaker: str  # closed, open, half-open
    latency_ms: float
    error: str | None = None

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"


def counts_as_failure(exc: BaseException) -> bool:
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return code in OUTAGE_CODES
    return isinstance(exc, NoInstanceAvailable | DiscoveryUnavailable | OSError)


class _Breaker(pybreaker.CircuitBreakerListener):
    """A service's breaker plus when it last opened (pybreaker keeps that private) and a log line per change."""

    def __init__(self, service: str, *, fail_max: int, reset_timeout: float, success_threshold: int) -> None:
        self.service = service
        self.opened_at = 0.0
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            success_threshold=success_threshold,
            exclude=[lambda exc: not counts_as_failure(exc)],
            listeners=[self],
            name=f"grpc:{service}",
        )

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            self.opened_at = time.monotonic()
            logger.warning("grpc_breaker_open", sibling=self.service, retry_after_s=cb.reset_timeout)
        else:
            logger.info("grpc_breaker_" + new_state.name.replace("-", "_"), sibling=self.service)

    def rejects_now(self) -> bool:
        return (
            self.breaker.current_state == pybreaker.STATE_OPEN
            and time.monotonic() < self.opened_at + self.breaker.reset_timeout
        )


def _replay_error(exc: BaseException) -> Any:
    raise exc


def _replay_result(result: T) -> T:
    return result


class SiblingClients:
    """Channels, health checks and breakers for the siblings this process talks to. Thread-safe."""

    def __init__(
        self,
        *,
        discover: Callable[[str], list[ServiceInstance]] | None = None,
        self_service: str | None = None,
        self_instance: str | None = None,
        timeout: float | None = None,
        fail_max: int | None = None,
        reset_timeout: float | None = None,
        success_threshold: int | None = None,
        refresh_interval: float | None = None,
    ) -> None:
        self._discover = discover or discovery.discover
        self.self_service = settings.SERVICE_NAME if self_service is None else self_service
        self.self_instance = settings.SERVICE_INSTANCE_NAME if self_instance is None else self_instance
        self.timeout = settings.REQUEST_TIMEOUT if timeout is None else timeout
        self.fail_max = settings.BREAKER_FAIL_MAX if fail_max is None else fail_max
        self.reset_timeout = settings.GRPC_BREAKER_RESET_TIMEOUT if reset_timeout is None else reset_timeout
        self.success_threshold = settings.BREAKER_SUCCESS_THRESHOLD if success_threshold is None else success_threshold
        self.refresh_interval = settings.HEALTH_CHECK_INTERVAL if refresh_interval is None else refresh_interval
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._breakers: dict[str, _Breaker] = {}
        self._known: dict[str, tuple[float, list[ServiceInstance]]] = {}
        self._chosen: dict[str, str] = {}
        self._discovery_failing = False

    # --- public API -----------------------------------------------------------------------------------------

    def call(self, service: str, rpc: Callable[[grpc.Channel], T]) -> T:
        """Run ``rpc(channel)`` against an instance of ``service`` under its breaker.

        Raises pybreaker.CircuitBreakerError while the breaker is open, NoInstanceAvailable, or the RPC's error.
        """

        def attempt() -> T:
            instance = self.pick(service)
            try:
                return rpc(self.channel_for(instance))
            except grpc.RpcError as exc:
                if counts_as_failure(exc):
                    self._expire_discovery(service)
                raise

        return self._guarded(service, attempt)

    def check_health(self, service: str, *, timeout: float | None = None) -> str:
        """The chosen instance's gRPC health status name (SERVING, NOT_SERVING, ...), under the breaker."""
        return self.call(service, lambda channel: health_status(channel, service, timeout or self.timeout))

    def check_instance(self, instance: ServiceInstance, *, timeout: float | None = None) -> HealthReport:
        """Health of one given instance (for operators: every instance, not only the chosen one). Never raises."""
        target = instance.grpc_target or "-"
        started = time.perf_counter()
        status, error = "UNAVAILABLE", None
        try:
            if instance.grpc_target is None:
                raise NoInstanceAvailable(f"{instance.instance_id} advertises no gRPC port")
            status = self._guarded(
                instance.service_name,
                lambda: health_status(self.channel_for(instance), instance.service_name, timeout or self.timeout),
            )
        except pybreaker.CircuitBreakerError as exc:
            status, error = "BREAKER_OPEN", str(exc)
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            status = code.name if code is not None else "UNAVAILABLE"
            details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
            error = str(details)[:200]
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        return HealthReport(
            service=instance.service_name,
            instance=instance.instance_id,
            target=target,
            status=status,
            breaker=self.breaker_state(instance.service_name),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=error,
        )

    def breaker_state(self, service: str) -> str:
        return self._breaker(service).breaker.current_state

    def instances(self, service: str) -> list[ServiceInstance]:
        """Live instances of ``service`` other than this process, from discovery (cached refresh_interval)."""
        now = time.monotonic()
        known = self._known.get(service)
        if known is not None and now - known[0] < self.refresh_interval:
            return known[1]
        try:
            found = [i for i in self._discover(service) if not self._is_self(i)]
        except DiscoveryUnavailable as exc:
            if not self._discovery_failing:
                logger.warning("grpc_discovery_failed", sibling=service, error=str(exc)[:200])
                self._discovery_failing = True
            # Better the last known address than none: the sibling may well be fine while Redis is down.
            if known is not None:
                return known[1]
            raise
        if self._discovery_failing:
            logger.info("grpc_discovery_recovered", sibling=service)
            self._discovery_failing = False
        with self._lock:
            self._known[service] = (now, found)
            self._close_unlisted()
        return found

    def pick(self, service: str) -> ServiceInstance:
        """The instance calls go to: the current one while it stays listed, else the first healthy one."""
        candidates = self.instances(service)
        if not candidates:
            raise NoInstanceAvailable(f"no live instance of {service!r} in discovery")
        current = self._chosen.get(service)
        for instance in candidates:
            if instance.instance_id == current and instance.grpc_target:
                return instance
        usable = [i for i in candidates if i.grpc_target]
        if not usable:
            raise NoInstanceAvailable(f"no instance of {service!r} advertises a gRPC port")
        preferred = [i for i in usable if i.status == "active" and i.health in {"healthy", "unknown"}] or usable
        chosen = preferred[0]
        self._chosen[service] = chosen.instance_id
        logger.info("grpc_sibling_selected", sibling=service, instance=chosen.instance_id, target=chosen.grpc_target)
        return chosen

    def channel_for(self, instance: ServiceInstance) -> grpc.Channel:
        target = instance.grpc_target
        if target is None:
            raise NoInstanceAvailable(f"{instance.instance_id} advertises no gRPC port")
        channel = self._channels.get(target)
        if channel is None:
            with self._lock:
                channel = self._channels.get(target)
                if channel is None:
                    channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
                    self._channels[target] = channel
        return channel

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()

    # --- internals ------------------------------------------------------------------------------------------

    def _guarded(self, service: str, attempt: Callable[[], T]) -> T:
        guard = self._breaker(service)
        if guard.rejects_now():
            raise pybreaker.CircuitBreakerError(f"circuit breaker for {service!r} is open")
        try:
            result = attempt()
        except Exception as exc:
            # Counts the failure (or not, for excluded errors); raises exc, or CircuitBreakerError when it trips.
            guard.breaker.call(_replay_error, exc)
            raise
        try:
            guard.breaker.call(_replay_result, result)
        except pybreaker.CircuitBreakerError:
            pass  # another thread tripped the breaker meanwhile; this call still succeeded
        return result

    def _breaker(self, service: str) -> _Breaker:
        guard = self._breakers.get(service)
        if guard is None:
            with self._lock:
                guard = self._breakers.setdefault(
                    service,
                    _Breaker(
                        service,
                        fail_max=self.fail_max,
                        reset_timeout=self.reset_timeout,
                        success_threshold=self.success_threshold,
                    ),
                )
        return guard

    def _is_self(self, instance: ServiceInstance) -> bool:
        return instance.service_name == self.self_service and instance.instance_id == self.self_instance

    def _expire_discovery(self, service: str) -> None:
        known = self._known.get(service)
        if known is not None:
            self._known[service] = (0.0, known[1])
        self._chosen.pop(service, None)

    def _close_unlisted(self) -> None:
        """Close channels to targets no service lists any more (called with the lock held)."""
        still = {i.grpc_target for _, found in self._known.values() for i in found}
        for target in [t for t in self._channels if t not in still]:
            self._channels.pop(target).close()


def health_status(channel: grpc.Channel, service_name: str, timeout: float) -> str:
    """``grpc.health.v1.Health/Check`` for the service's own name, falling back to the server as a whole ("")
    for siblings that register only the empty name."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=timeout)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
            raise
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


_default: SiblingClients | None = None
_default_guard = threading.Lock()


def sibling_clients() -> SiblingClients:
    """The process-wide manager, so every caller shares its channels and breakers."""
    global _default
    if _default is None:
        with _default_guard:
            if _default is None:
                _default = SiblingClients()
    return _default

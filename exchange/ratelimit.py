"""Named rate limiters: at most ``limit`` hits per key in a window of ``window`` seconds.

    failures = Limiter("auth_failures", limit=20, window=60)
    decision = failures.hit(client_address)      # counts one hit
    if not decision.allowed: ... 429 with Retry-After: decision.retry_after
    failures.peek(client_address)                # the same decision, without counting

A window opens with a key's first hit and lasts ``window`` seconds (a fixed window per key, as exchanges count
request weight per minute); the count of a key resets when it ends. Counters live in Redis when ``REDIS_URL`` is
set, shared by every worker and instance: one atomic script increments the key and sets its expiry on the first
hit, so no hit is lost and no key outlives its window. When Redis is absent or does not answer (200 ms), the
limiter degrades to a counter in process memory (per worker, so looser by the number of workers) and logs it once
(``ratelimit_degraded``); it tries Redis again after ``RETRY_REDIS_AFTER`` seconds (``ratelimit_recovered``).
A limiter never fails a request because of its storage.

This is the shared mechanism: failed API-key authentication is throttled with it per client address
(``accounts.authentication``), and per-key request and order limits use the same ``Limiter``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings

logger = structlog.get_logger("exchange.ratelimit")

RETRY_REDIS_AFTER = 5.0
REDIS_TIMEOUT = 0.2
MEMORY_MAX_KEYS = 100_000

# KEYS[1] the counter; ARGV[1] the window (s); ARGV[2] 1 to count a hit, 0 to look; ARGV[3] the hit's weight.
# Returns {count, ttl ms}.
_SCRIPT = """
local count
if ARGV[2] == '1' then
    local weight = tonumber(ARGV[3] or '1')
    count = redis.call('INCRBY', KEYS[1], weight)
    if count == weight then redis.call('PEXPIRE', KEYS[1], ARGV[1] * 1000) end
else
    count = tonumber(redis.call('GET', KEYS[1]) or '0')
end
return {count, redis.call('PTTL', KEYS[1])}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    count: int  # hits in the current window, this one included
    limit: int
    retry_after: int  # whole seconds until the window ends (0 when no window is open)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


class _Memory:
    """Per-process counters: key -> (count, window end on the monotonic clock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, tuple[int, float]] = {}

    def count(self, key: str, window: float, hit: bool, weight: int = 1) -> tuple[int, float]:
        now = time.monotonic()
        with self.lock:
            count, ends = self.counts.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            if hit:
                count += weight
                if len(self.counts) >= MEMORY_MAX_KEYS:
                    self._evict(now)
                self.counts[key] = (count, ends)
            return count, max(0.0, ends - now) if count else 0.0

    def _evict(self, now: float) -> None:
        expired = [k for k, (_, ends) in self.counts.items() if ends <= now]
        for k in expired or list(self.counts)[: MEMORY_MAX_KEYS // 10]:
            del self.counts[k]


class _Store:
    """Redis when configured and answering, else memory; one per process, shared by every limiter."""

    def __init__(self) -> None:
        self.memory = _Memory()
        self._client: Any = None
        self._script: Any = None
        self._url: str | None = None
        self._down_until = 0.0
        self._degraded = False

    def _redis(self) -> Any:
        url = settings.REDIS_URL
        if not url:
            return None
        if self._client is None or self._url != url:
            import redis

            self._client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
            self._script, self._url, self._down_until = self._client.register_script(_SCRIPT), url, 0.0
        return None if time.monotonic() < self._down_until else self._client

    def count(self, key: str, window: float, hit: bool, weight: int = 1) -> tuple[int, float]:
        if self._redis() is not None:
            try:
                count, ttl_ms = self._script(keys=[key], args=[window, 1 if hit else 0, weight])
            except Exception as exc:  # any failure of the store degrades; it never fails the request
                self._down_until = time.monotonic() + RETRY_REDIS_AFTER
                if not self._degraded:
                    self._degraded = True
                    logger.warning("ratelimit_degraded", store="memory", error=f"{type(exc).__name__}: {exc}")
            else:
                if self._degraded:
                    self._degraded = False
                    logger.info("ratelimit_recovered", store="redis")
                return int(count), max(0, int(ttl_ms)) / 1000
        return self.memory.count(key, window, hit, weight)

    def reset(self) -> None:
        """Forget every counter of this service (tests call it between tests)."""
        with self.memory.lock:
            self.memory.counts.clear()
        client = self._redis()
        if client is not None:
            try:
                keys = list(client.scan_iter(match=f"{_prefix()}*", count=1000))
                if keys:
                    client.delete(*keys)
            except Exception:  # noqa: S110 - nothing to reset when Redis is down
                pass


_store = _Store()


def _prefix() -> str:
    return f"ratelimit:{settings.SERVICE_NAME}:"


class Limiter:
    """At most ``limit`` hits per key and ``window`` seconds, counted per name (limiters never share counts)."""

    def __init__(self, name: str, *, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a limiter needs a limit of at least 1 and a positive window")
        self.name, self.limit, self.window = name, limit, window

    def _decide(self, key: str, *, hit: bool, weight: int = 1) -> Decision:
        count, remaining_s = _store.count(f"{_prefix()}{self.name}:{key}", self.window, hit, weight)
        over = count > self.limit if hit else count >= self.limit
        retry_after = math.ceil(remaining_s) if count else 0
        return Decision(allowed=not over, count=count, limit=self.limit, retry_after=retry_after)

    def hit(self, key: str, weight: int = 1) -> Decision:
        """Count one hit (of ``weight``); ``allowed`` is False once the key is over its limit in this window."""
        return self._decide(key, hit=True, weight=weight)

    def peek(self, key: str) -> Decision:
        """Whether one more hit would be allowed, without counting it."""
        return self._decide(key, hit=False)


def reset_all() -> None:
    _store.reset()


def client_address(request: Any) -> str:
    """The caller's address: ``REMOTE_ADDR``, the peer of the TCP connection. ``X-Forwarded-For`` is anyone's to
    write, so it is read only with ``TRUST_X_FORWARDED_FOR`` on (a proxy we run sits in front and appends the
    address it saw), and then its last entry, the one our proxy wrote."""
    meta = request.META
    return _address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR", ""))


def scope_client_address(scope: Any) -> str:
    """``client_address`` of an ASGI connection (a WebSocket's): its ``client`` is what a2wsgi hands Django as
    ``REMOTE_ADDR``, so a caller has one address, and one failure budget, whichever way it connects."""
    peer = scope.get("client") or (None, 0)
    forwarded = b",".join(value for name, value in scope.get("headers") or () if name.lower() == b"x-forwarded-for")
    return _address(peer[0], forwarded.decode("latin-1"))


def _address(remote: Any, forwarded_for: str) -> str:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return str(remote or "unknown")

"""Binance's request limits: request weight per minute and orders per 10 seconds and per day.

One function, ``request_weigh``, counts a request's weight (and, for an order, one order) and answers the figures
Binance reports in ``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-ORDER-COUNT-10S``/``-1D``, or refuses it (429 with
``Retry-After``, -1003 for weight, -1015 for orders).

* With an API key: the key's limits of ``exchange/key_limits.py`` (``KEY_WEIGHT_LIMIT_1M``, ``KEY_ORDER_LIMIT_10S``,
  ``KEY_ORDER_LIMIT_1D`` when ``KEY_LIMITS_ENABLED``; a chaos injection tightens them), the same budget the key
  spends on /api/v1. A limit not in force is not counted and has no header.
* Public requests: weight per client address, ``BINANCE_WEIGHT_LIMIT_1M`` (6000), always counted, in fixed windows
  in Redis (shared by every worker) with a per-process fallback while Redis does not answer.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings

from binance_api import errors

logger = structlog.get_logger("exchange.binance_api")

REDIS_TIMEOUT = 0.2
RETRY_REDIS_AFTER = 5.0

# KEYS[1] the counter; ARGV[1] window (s), ARGV[2] the amount to add. Returns {count, ttl ms}.
_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1] * 1000) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1] * 1000) ttl = ARGV[1] * 1000 end
return {count, ttl}
"""


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.memory: dict[str, tuple[int, float]] = {}
        self.client: Any = None
        self.script: Any = None
        self.url: str | None = None
        self.down_until = 0.0

    def add(self, key: str, amount: int, window: int) -> tuple[int, float]:
        url = settings.REDIS_URL
        if url and time.monotonic() >= self.down_until:
            try:
                if self.client is None or self.url != url:
                    import redis

                    self.client = redis.Redis.from_url(
                        url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
                    )
                    self.script, self.url = self.client.register_script(_SCRIPT), url
                count, ttl_ms = self.script(keys=[key], args=[window, amount])
                return int(count), max(0, int(ttl_ms)) / 1000
            except Exception as exc:  # never fail a request because of the counters' storage
                self.down_until = time.monotonic() + RETRY_REDIS_AFTER
                logger.warning("binance_weight_degraded", store="memory", error=f"{type(exc).__name__}"[:100])
        now = time.monotonic()
        with self.lock:
            count, ends = self.memory.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            count += amount
            if len(self.memory) > 100_000:
                self.memory.clear()
            self.memory[key] = (count, ends)
            return count, ends - now

    def reset(self) -> None:
        with self.lock:
            self.memory.clear()


_counters = _Counters()


def reset_all() -> None:
    _counters.reset()


@dataclass
class Usage:
    headers: dict[str, str] = field(default_factory=dict)


def _prefix() -> str:
    return f"ratelimit:{settings.SERVICE_NAME}:binance:"


def request_weigh(*, caller: str, weight: int, order_key: str | None = None, key_id: str | None = None) -> Usage:
    """Count ``weight`` (and, with ``order_key``, one order). A request with an API key (``key_id``) is charged to
    the key's limits (exchange/key_limits.py: one budget per key with /api/v1, tightened by chaos injections);
    a public one to its address (``caller``, ``BINANCE_WEIGHT_LIMIT_1M``). Raises BinanceError 429 over a limit;
    else returns the headers to send."""
    if key_id is not None:
        return _charge_key(key_id, weight=weight, orders=1 if order_key is not None else 0)
    usage = Usage()
    limit = settings.BINANCE_WEIGHT_LIMIT_1M
    used, remaining_s = _counters.add(f"{_prefix()}w1m:{caller}", weight, 60)
    usage.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    if used > limit:
        raise _with(errors.too_much_weight(limit, max(1, math.ceil(remaining_s))), usage)
    return usage


def _charge_key(key_id: str, *, weight: int, orders: int) -> Usage:
    from exchange import errors as domain_errors
    from exchange import key_limits

    try:
        return Usage(headers=key_limits.charge(key_id, weight=weight, orders=orders))
    except domain_errors.RateLimited as exc:
        usage = Usage(headers=dict(getattr(exc, "headers", {}) or {}))
        which, allowed = exc.details.get("limit"), int(exc.details.get("allowed") or 0)
        retry = max(1, exc.retry_after or 1)
        if which == "orders_10s":
            raise _with(errors.too_many_orders(allowed, "10 SECOND", retry), usage) from None
        if which == "orders_1d":
            raise _with(errors.too_many_orders(allowed, "1 DAY", retry), usage) from None
        raise _with(errors.too_much_weight(allowed, retry), usage) from None


def _with(error: errors.BinanceError, usage: Usage) -> errors.BinanceError:
    error.headers = usage.headers  # type: ignore[attr-defined]
    return error

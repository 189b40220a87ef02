"""Binance's request limits: request weight per minute and orders per 10 seconds and per day.

One function, ``request_weigh``, counts a request's weight (and, for an order, one order) and answers the figures
Binance reports in ``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-ORDER-COUNT-10S``/``-1D``, or refuses it (429 with
``Retry-After``, -1003 for weight, -1015 for orders). Weight is counted per API key when the request carries one and
per client address otherwise; orders per key. The counters are fixed windows in Redis (shared by every worker),
each started by its first hit, with a per-process fallback while Redis does not answer, as ``exchange/ratelimit.py``
does; unlike its ``Limiter`` they add a weight, not one, per hit. Once per-key limits exist in
``exchange/key_limits.py`` this function is the one place to switch over.

The limits are settings: ``BINANCE_WEIGHT_LIMIT_1M`` (6000), ``BINANCE_ORDER_LIMIT_10S`` (100),
``BINANCE_ORDER_LIMIT_1D`` (200000), as Binance's defaults.
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


def request_weigh(*, caller: str, weight: int, order_key: str | None = None) -> Usage:
    """Count ``weight`` against ``caller`` (a key's prefix or ``ip:<address>``) and, when ``order_key`` is given,
    one order against it. Raises BinanceError 429 when a limit is passed; else returns the headers to send."""
    usage = Usage()
    limit = settings.BINANCE_WEIGHT_LIMIT_1M
    used, remaining_s = _counters.add(f"{_prefix()}w1m:{caller}", weight, 60)
    usage.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    if used > limit:
        raise _with(errors.too_much_weight(limit, max(1, math.ceil(remaining_s))), usage)
    if order_key is not None:
        for interval, window, limit, label in (
            ("10S", 10, settings.BINANCE_ORDER_LIMIT_10S, "10 SECOND"),
            ("1D", 86400, settings.BINANCE_ORDER_LIMIT_1D, "1 DAY"),
        ):
            count, remaining_s = _counters.add(f"{_prefix()}o{interval}:{order_key}", 1, window)
            usage.headers[f"X-MBX-ORDER-COUNT-{interval}"] = str(count)
            if count > limit:
                raise _with(errors.too_many_orders(limit, label, max(1, math.ceil(remaining_s))), usage)
    return usage


def _with(error: errors.BinanceError, usage: Usage) -> errors.BinanceError:
    error.headers = usage.headers  # type: ignore[attr-defined]
    return error

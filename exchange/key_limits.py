"""Rate limits per API key, as a venue counts them: request weight per minute, orders per 10 seconds and per day.

    from exchange import key_limits

    headers = key_limits.charge(key_id, weight=1, orders=1)   # counts; raises errors.RateLimited when over
    # headers: {"X-MBX-USED-WEIGHT-1M": "17", "X-MBX-ORDER-COUNT-10S": "3", "X-MBX-ORDER-COUNT-1D": "40"}
    key_limits.peek(key_id)                                   # the same headers, counting nothing

``charge`` counts first and then decides (a request over the limit is counted too, as Binance does), so a client
that keeps hammering stays refused until the window ends. Over a limit it raises ``errors.RateLimited`` (429
``rate_limited``) with ``retry_after`` (whole seconds until that window ends: the ``Retry-After`` header) and
``details`` {"limit": "weight_1m" | "orders_10s" | "orders_1d", "used", "allowed"}; the exception's ``headers``
attribute carries the X-MBX headers for the 429 as well. Fixed windows per key, opened by its first request
(exchange/ratelimit.py): the counters live in Redis when ``REDIS_URL`` is set (shared by every worker and instance),
in each process's memory otherwise (per worker, so looser by the number of workers).

Limits: ``KEY_WEIGHT_LIMIT_1M``, ``KEY_ORDER_LIMIT_10S``, ``KEY_ORDER_LIMIT_1D`` when ``KEY_LIMITS_ENABLED`` (off in
local and test settings, on in production); a chaos injection (``POST /chaos/tighten-rate-limits``) lowers them for
a while, also when they are off. A limit that is not in force is not counted and has no header.

The REST API charges every authenticated request through ``KeyLimitThrottle`` (a DRF throttle, so it runs after
authentication): weight 1 per request (``WEIGHTS`` names heavier ones) and one order per order placed; the
middleware (chaos/middleware.py) copies the headers onto the response. Another facade (the Binance-style /api/v3)
calls ``charge`` itself with its own weights and sets the returned headers on its responses.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from exchange import errors
from exchange.ratelimit import Limiter

WINDOWS = {"weight_1m": 60.0, "orders_10s": 10.0, "orders_1d": 86400.0}
HEADERS = {
    "weight_1m": "X-MBX-USED-WEIGHT-1M",
    "orders_10s": "X-MBX-ORDER-COUNT-10S",
    "orders_1d": "X-MBX-ORDER-COUNT-1D",
}
_CHAOS_NAMES = {"weight_1m": "weight_limit_1m", "orders_10s": "order_limit_10s", "orders_1d": "order_limit_1d"}
# Request weight by DRF view name (default 1): lists cost more than single reads, as at a venue.
WEIGHTS = {
    "OrderListCreateApi:GET": 5,
    "TradeListApi:GET": 5,
    "AccountTransactionsApi:GET": 5,
    "HistoryApi:GET": 5,
}


def limits_in_force(key_id: str | None = None) -> dict[str, int]:
    """{"weight_1m": n, "orders_10s": n, "orders_1d": n}: the limits that apply now (each absent when off)."""
    from chaos.effects import rate_limits

    limits: dict[str, int] = {}
    if settings.KEY_LIMITS_ENABLED:
        limits = {
            "weight_1m": settings.KEY_WEIGHT_LIMIT_1M,
            "orders_10s": settings.KEY_ORDER_LIMIT_10S,
            "orders_1d": settings.KEY_ORDER_LIMIT_1D,
        }
    chaos = rate_limits(key_id=key_id)
    for name, chaos_name in _CHAOS_NAMES.items():
        tightened = chaos.get(chaos_name)
        if tightened:
            limits[name] = min(tightened, limits.get(name, tightened))
    return {name: value for name, value in limits.items() if value and value > 0}


def _count(key_id: str, *, weight: int, orders: int, hit: bool) -> tuple[dict[str, str], Any]:
    headers: dict[str, str] = {}
    refused = None
    for name, limit in limits_in_force(key_id).items():
        amount = weight if name == "weight_1m" else orders
        limiter = Limiter(f"key_{name}", limit=limit, window=WINDOWS[name])
        if hit and amount > 0:
            decision = limiter.hit(key_id, weight=amount)
            over = decision.count > limit
        else:
            decision = limiter.peek(key_id)
            over = False
        headers[HEADERS[name]] = str(decision.count)
        if over and (refused is None or decision.retry_after > refused[1].retry_after):
            refused = (name, decision)
    return headers, refused


def charge(key_id: str, *, weight: int = 1, orders: int = 0) -> dict[str, str]:
    """Count a request of ``weight`` that places ``orders`` orders for the key; the headers to send. Raises
    errors.RateLimited (with ``headers`` and ``retry_after``) when a limit is exceeded."""
    headers, refused = _count(key_id, weight=weight, orders=orders, hit=True)
    if refused is not None:
        name, decision = refused
        error = errors.RateLimited(
            f"Too many requests: the {name.replace('_', ' per ')} limit of this API key is {decision.limit}.",
            details={"limit": name, "used": decision.count, "allowed": decision.limit},
            retry_after=max(1, decision.retry_after),
        )
        error.headers = headers  # type: ignore[attr-defined]
        raise error
    return headers


def peek(key_id: str) -> dict[str, str]:
    """The headers as they stand, counting nothing."""
    return _count(key_id, weight=0, orders=0, hit=False)[0]


class KeyLimitThrottle:
    """DRF throttle: charges every request made with an API key (weight per ``WEIGHTS``, one order per order
    placed) and keeps the headers on the request for the middleware to send."""

    def allow_request(self, request: Any, view: Any) -> bool:
        key = request.auth
        key_id = getattr(key, "pk", None)
        if key_id is None:
            return True
        if not settings.KEY_LIMITS_ENABLED and not _tightened():
            return True
        name = f"{type(view).__name__}:{request.method}"
        orders = 1 if name == "OrderListCreateApi:POST" else 0
        try:
            headers = charge(str(key_id), weight=WEIGHTS.get(name, 1), orders=orders)
        except errors.RateLimited as exc:
            request._request.key_limit_headers = exc.headers  # type: ignore[attr-defined]
            raise
        request._request.key_limit_headers = headers
        return True

    def wait(self) -> float | None:
        return None


def _tightened() -> bool:
    from chaos.state import in_force

    return bool(in_force("rate_limits"))

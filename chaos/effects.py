"""Where the faults act: small functions the request path, the order path and the house's ladder call.

* ``downtime()``: the downtime in force, if any (chaos/middleware.py answers 503; readiness and gRPC health fail);
* ``latency(...)``: the delay before a request is handled (chaos/asgi.py sleeps it on the event loop);
* ``order_faults(...)``: for an order being placed, the rejection, the fill cap and the lost answer that apply;
* ``ladder_adjust(...)``: the house's spread and size per level on a market, widened or thinned;
* ``rate_limits()``: per-key limits a chaos action tightened (exchange/key_limits.py).

Each returns quickly from the per-process snapshot (chaos/state.py) and counts what it acted on.

Another API in front of the same order path (the Binance-style facade) gets rejections, fill caps and the ladder
for free (orders.services.order_place applies them), and downtime and latency too (they act on /api/v3 paths); to
lose answers as well it checks ``placed.chaos.unknown_outcome`` after ``order_place`` and answers
``lost_answer(...)`` (or its own 5xx) instead of the order.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from chaos import services, state
from chaos.models import ChaosType

# The latency injections that delayed the request being handled (comma-separated ids; chaos/asgi.py, middleware.py).
REQUEST_LATENCY: contextvars.ContextVar[str] = contextvars.ContextVar("chaos_request_latency", default="")


def _account_keys(account: Any) -> frozenset[str]:
    if account is None:
        return frozenset()
    keys = {str(getattr(account, "account_id", "")), getattr(account, "label", "") or ""}
    owner = getattr(account, "_state", None) and account._state.fields_cache.get("owner")
    if owner is not None:
        keys.add(owner.username)
    return frozenset(k for k in keys if k)


def downtime() -> state.Active | None:
    found = state.in_force(ChaosType.DOWNTIME)
    return found[0] if found else None


def latency(
    *, operation: str, account_keys: frozenset[str], symbol: str | None, key: str | None
) -> tuple[float, list[str]]:
    """Seconds to wait before the request is handled, and the injections that asked for it."""
    delay, ids = 0.0, []
    for injection in state.in_force(ChaosType.LATENCY):
        if not injection.covers(operation=operation, account_keys=account_keys, symbol=symbol):
            continue
        probability = Decimal(injection.params.get("probability", "1"))
        if probability < 1 and Decimal(str(state.draw(injection, f"p:{key}" if key else None))) >= probability:
            continue
        jitter = int(injection.params.get("jitter_ms", 0))
        extra = state.draw(injection, f"j:{key}" if key else None) * jitter if jitter else 0.0
        wanted = (int(injection.params.get("delay_ms", 0)) + extra) / 1000
        delay = max(delay, min(wanted, settings.CHAOS_MAX_LATENCY))
        ids.append(injection.chaos_id)
        services.affected_add(injection)
    return delay, ids


@dataclass
class OrderFaults:
    """What chaos does to one order being placed. ``chaos_ids``: every injection that acted on it, the first the
    one recorded on the order (a rejection, then a lost answer, a fill cap, the ladder)."""

    reject_reason: str | None = None
    reject_message: str = ""
    reject_id: str | None = None
    max_fill_fraction: Decimal | None = None
    unknown_outcome: str | None = None  # "timeout" | "drop"
    chaos_ids: list[str] = field(default_factory=list)
    injections: list[state.Active] = field(default_factory=list)

    @property
    def chaos_id(self) -> str:
        return self.chaos_ids[0] if self.chaos_ids else ""

    def acted(self, injection: state.Active, *, count: bool = True) -> None:
        self.chaos_ids.append(injection.chaos_id)
        if count:
            self.injections.append(injection)

    def counted(self) -> None:
        """The order was stored: count it for each injection that acted on it."""
        for injection in self.injections:
            services.affected_add(injection)


NO_FAULTS = OrderFaults()


def _hit(injection: state.Active, rate: str, key: str | None, salt: str) -> bool:
    probability = Decimal(str(rate))
    if probability >= 1:
        return True
    if probability <= 0:
        return False
    return Decimal(str(state.draw(injection, f"{salt}:{key}" if key else None))) < probability


def order_faults(*, account: Any, symbol: str, client_order_id: str | None) -> OrderFaults:
    """The faults that act on an order being placed by ``account`` on ``symbol``. Decisions are drawn from each
    injection's seed and the client_order_id (when given), so a replay of the same orders decides the same."""
    active = state.in_force()
    if not active:
        return NO_FAULTS
    faults = OrderFaults()
    delayed = set(REQUEST_LATENCY.get().split(",")) - {""}
    keys = _account_keys(account)
    ranked = sorted(
        (i for i in active if i.covers(operation="place_order", account_keys=keys, symbol=symbol)),
        key=lambda i: (
            [ChaosType.REJECT_ORDERS, ChaosType.UNKNOWN_OUTCOME, ChaosType.PARTIAL_FILLS].index(i.type)
            if i.type in (ChaosType.REJECT_ORDERS, ChaosType.UNKNOWN_OUTCOME, ChaosType.PARTIAL_FILLS)
            else 3
        ),
    )
    for injection in ranked:
        params = injection.params
        if injection.type == ChaosType.REJECT_ORDERS and faults.reject_reason is None:
            if _hit(injection, params.get("rejection_rate", "1"), client_order_id, "reject"):
                faults.reject_reason = params.get("reason", "insufficient_liquidity")
                faults.reject_message = f"Rejected by chaos injection {injection.chaos_id} ({faults.reject_reason})."
                faults.reject_id = injection.chaos_id
                faults.acted(injection)
        elif injection.type == ChaosType.UNKNOWN_OUTCOME and faults.unknown_outcome is None:
            if _hit(injection, params.get("probability", "1"), client_order_id, "unknown"):
                mode = params.get("mode", "timeout")
                if mode == "mixed":
                    mode = (
                        "drop"
                        if state.draw(injection, f"mode:{client_order_id}" if client_order_id else None) < 0.5
                        else "timeout"
                    )
                faults.unknown_outcome = mode
                faults.acted(injection)
        elif injection.type == ChaosType.PARTIAL_FILLS and faults.max_fill_fraction is None:
            if _hit(injection, params.get("probability", "1"), client_order_id, "partial"):
                faults.max_fill_fraction = Decimal(params.get("max_fill_fraction", "0.5"))
                faults.acted(injection)
        elif injection.type in (ChaosType.SPREADS, ChaosType.LIQUIDITY) and injection.type not in [
            i.type for i in faults.injections
        ]:
            faults.acted(injection)
    for injection in active:  # counted already, as a request
        if injection.chaos_id in delayed:
            faults.acted(injection, count=False)
    return faults if faults.chaos_ids else NO_FAULTS


def ladder_adjust(*, symbol: str, spread_bps: Decimal, size: Decimal) -> tuple[Decimal, Decimal]:
    """The house's spread and size per level on ``symbol`` under the spread and liquidity injections in force.
    Several multiply; the spread stays below 100 % (a bid above zero)."""
    active = state.in_force()
    if not active:
        return spread_bps, size
    for injection in active:
        if injection.markets and symbol not in injection.markets:
            continue
        if injection.type == ChaosType.SPREADS:
            spread_bps = spread_bps * Decimal(injection.params.get("multiplier", "1"))
        elif injection.type == ChaosType.LIQUIDITY:
            size = size * (1 - Decimal(injection.params.get("reduction_factor", "0")))
    return min(spread_bps, Decimal("19998")), size


def rate_limits(*, key_id: str | None = None) -> dict[str, int]:
    """The tightest per-key limits the rate-limit injections in force ask for (empty: none)."""
    limits: dict[str, int] = {}
    for injection in state.in_force(ChaosType.RATE_LIMITS):
        if injection.accounts and key_id not in injection.accounts:
            continue
        for name in ("weight_limit_1m", "order_limit_10s", "order_limit_1d"):
            value = injection.params.get(name)
            if value:
                limits[name] = min(int(value), limits.get(name, int(value)))
    return limits


DROP_HEADER = "X-Chaos-Drop"


def lost_answer(*, order_id: str, mode: str, chaos: OrderFaults) -> Any:
    """The answer to an order whose outcome chaos hides: 504 ``execution_status_unknown`` (the order is committed;
    the client finds it by client_order_id). For "drop" the response carries ``X-Chaos-Drop`` and the ASGI layer
    (chaos/asgi.py) closes the connection instead of sending it."""
    from rest_framework.response import Response

    from exchange import errors
    from exchange.exception_handler import envelope

    error = errors.ExecutionStatusUnknown()
    response = Response(envelope(error.code, error.message, {"chaos_id": chaos.chaos_id}), status=error.status_code)
    if mode == "drop":
        response[DROP_HEADER] = "1"
    return response

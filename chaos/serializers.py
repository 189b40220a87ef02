"""The chaos API's input and output shapes.

Input is tolerant, as the ecosystem is inconsistent (``normalize`` runs before validation): keys in the Go
clients' spelling (``DelayMS``, ``Operations``, ``Duration``, ``Accounts``: CamelCase becomes snake_case),
``duration_s`` (seconds) or ``duration`` ("20m", "30s", "1h", "250ms", or a Go ``time.Duration`` in nanoseconds),
``operations`` as a list or ``operation``, ``affected_accounts`` (or ``accounts``, ``account``), ``symbols`` (or
``symbol``, ``markets``) in any spelling. The schema documents the canonical names.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework import serializers

from chaos.state import OPERATIONS
from exchange import errors
from exchange.api import PatternField, StrictIntegerField, TextField, any_case
from markets.fields import SYMBOL_HELP, SYMBOLS
from markets.reference_data import MARKETS
from orders.matching import RejectReason

DURATION_RE = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)(ns|us|ms|s|m|h)?$")
UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Operation names as the ecosystem's clients spell them.
OPERATION_ALIASES = {
    "submit_order": "place_order",
    "create_order": "place_order",
    "new_order": "place_order",
    "order": "place_order",
    "orders": "place_order",
    "cancel": "cancel_order",
    "cancel_orders": "cancel_order",
    "order_status": "get_order",
    "query_order": "get_order",
    "get_orders": "get_order",
    "trades": "get_trades",
    "my_trades": "get_trades",
    "orderbook": "market_data",
    "order_book": "market_data",
    "book": "market_data",
    "ticker": "market_data",
    "quotes": "market_data",
    "balance": "get_balance",
    "balances": "get_balance",
    "get_balances": "get_balance",
    "accounts": "account",
}
KEY_ALIASES = {
    "accounts": "affected_accounts",
    "account": "affected_accounts",
    "account_ids": "affected_accounts",
    "account_id": "affected_accounts",
    "symbol": "symbols",
    "markets": "symbols",
    "market": "symbols",
    "operation": "operations",
    "op": "operations",
    "delay": "delay_ms",
    "latency_ms": "delay_ms",
    "jitter": "jitter_ms",
    "rate": "rejection_rate",
    "reject_rate": "rejection_rate",
    "fill_fraction": "max_fill_fraction",
    "fraction": "max_fill_fraction",
    "fill_ratio": "max_fill_fraction",
    "max_fill_ratio": "max_fill_fraction",
    "message": "error_message",
    "factor": "reduction_factor",
    "spread_multiplier": "multiplier",
    "duration_seconds": "duration_s",
    "durations": "duration_s",
}


def _snake(name: str) -> str:
    """DelayMS -> delay_ms, RejectionRate -> rejection_rate, durationS -> duration_s."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.replace("-", "_").lower()


def duration_seconds(value: Any) -> float:
    """Seconds from a number (seconds) or a string such as "20m"; a Go time.Duration (an integer of nanoseconds,
    at least 10^6) is read as nanoseconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 20m")
    if isinstance(value, (int, float, Decimal)):
        if isinstance(value, int) and value >= 1_000_000:
            return value / 1e9
        return float(value)
    match = DURATION_RE.fullmatch(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError("a duration is a number of seconds or a string such as 20m, 30s, 1h, 250ms")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def normalize(data: Any) -> dict[str, Any]:
    """The body with canonical keys and list-or-single values as lists (see the module docstring)."""
    if not isinstance(data, dict):
        raise errors.ValidationFailed("The body must be a JSON object.")
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        snake = _snake(str(raw_key))
        key = KEY_ALIASES.get(snake, snake)
        if key in ("affected_accounts", "symbols", "operations") and value is not None:
            # A single value under another name (operation, symbol, account) is a list of one; the canonical
            # names take lists only, as the schema says.
            if not isinstance(value, list) and (raw_key != key):
                value = [value]
            if key in out and isinstance(out[key], list) and isinstance(value, list):
                value = [*out[key], *value]
        out[key] = value
    duration = out.get("duration")
    if duration is not None and not isinstance(duration, str):
        # A Go time.Duration (nanoseconds) or a number of seconds under "Duration".
        try:
            out["duration_s"] = duration_seconds(out.pop("duration"))
        except ValueError as exc:
            raise errors.ValidationFailed(details={"fields": {"duration": [str(exc)]}}) from None
    if isinstance(out.get("operations"), list):
        out["operations"] = [
            OPERATION_ALIASES.get(_snake(o), _snake(o)) if isinstance(o, str) else o for o in out["operations"]
        ]
    return out


class _StrictFloat(serializers.FloatField):
    """A JSON number only (the schema says number): a string or a boolean is refused."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, (bool, str)):
            self.fail("invalid")
        return super().to_internal_value(data)


class _Number(_StrictFloat):
    """A JSON number, validated in range and kept as a Decimal (never a float in what is stored: the parameters
    are written as decimal strings)."""

    def run_validation(self, data: Any = serializers.empty) -> Any:
        value = super().run_validation(data)
        if data is serializers.empty or value is None or isinstance(value, Decimal):
            return value
        return Decimal(str(data)) if isinstance(data, (Decimal, int)) else Decimal(repr(value))


class _Fraction(_Number):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 1)
        super().__init__(**kwargs)


def chaos_symbol_pattern() -> str:
    """The listed markets in every spelling SymbolField accepts, and each pair named the other way round."""
    pairs = [(m["base"], m["quote"]) for m in MARKETS] + [(m["quote"], m["base"]) for m in MARKETS]
    spellings = sorted(f"{any_case(a)}[-/_]?{any_case(b)}" for a, b in pairs)
    return rf"^(?:{'|'.join(spellings)})$"


class ChaosSymbolField(PatternField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 21)
        kwargs.setdefault("help_text", SYMBOL_HELP + " The pair may also be named the other way round (USD-BTC).")
        super().__init__(chaos_symbol_pattern(), code=errors.UnknownSymbol.code, **kwargs)
        self.error_messages[errors.UnknownSymbol.code] = f"Unknown market symbol; the markets: {', '.join(SYMBOLS)}."


MAX_LATENCY_MS = int(settings.CHAOS_MAX_LATENCY * 1000)


class InjectionIn(serializers.Serializer):
    """What every injection accepts: its duration, seed and scope."""

    duration_s = _StrictFloat(
        required=False,
        min_value=0.001,
        max_value=settings.CHAOS_MAX_DURATION,
        help_text="How long it lasts, in seconds (or send duration); default CHAOS_DEFAULT_DURATION, at most "
        "CHAOS_MAX_DURATION.",
    )
    duration = PatternField(
        DURATION_RE.pattern,
        required=False,
        max_length=30,
        help_text='How long it lasts, as a string such as "20m", "30s", "1h", "250ms" (instead of duration_s).',
    )
    seed = StrictIntegerField(
        required=False, min_value=0, max_value=2**62, help_text="Seed of its random decisions; drawn if absent."
    )
    operations = serializers.ListField(
        child=serializers.ChoiceField(choices=OPERATIONS),
        required=False,
        max_length=len(OPERATIONS),
        help_text="Operations it applies to (or send operation); empty or absent: every operation.",
    )
    affected_accounts = serializers.ListField(
        child=TextField(max_length=100),
        required=False,
        max_length=100,
        help_text="Account ids or labels it applies to; absent: every account.",
    )
    symbols = serializers.ListField(
        child=ChaosSymbolField(),
        required=False,
        max_length=50,
        help_text="Markets it applies to, in any spelling (BTC-USD, BTC/USD, btc_usd); absent: every market.",
    )


class LatencyIn(InjectionIn):
    delay_ms = StrictIntegerField(
        min_value=0, max_value=MAX_LATENCY_MS, help_text="Fixed delay before the request is handled."
    )
    jitter_ms = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=MAX_LATENCY_MS,
        default=0,
        help_text="Up to this much more, drawn per request; delay plus jitter is capped at CHAOS_MAX_LATENCY.",
    )
    probability = _Fraction(required=False, default=Decimal(1), help_text="Share of requests delayed.")


class RejectOrdersIn(InjectionIn):
    rejection_rate = _Fraction(required=False, default=Decimal(1), help_text="Share of orders rejected (0 to 1).")
    reason = serializers.ChoiceField(
        choices=[r.value for r in RejectReason],
        required=False,
        default=RejectReason.INSUFFICIENT_LIQUIDITY.value,
        help_text="The rejection reason recorded on the order (and its error code).",
    )


class DowntimeIn(InjectionIn):
    error_message = TextField(
        required=False, max_length=200, default="exchange_maintenance", help_text="The 503 answers' message."
    )


class SpreadsIn(InjectionIn):
    multiplier = _Number(
        min_value=0.0001,
        max_value=float(settings.CHAOS_MAX_SPREAD_MULTIPLIER),
        help_text="Times the house's spread (at most CHAOS_MAX_SPREAD_MULTIPLIER).",
    )


class LiquidityIn(InjectionIn):
    reduction_factor = _Fraction(
        required=False,
        default=Decimal("0.5"),
        help_text="Share of the house's depth removed: each level quotes (1 - reduction_factor) of its size.",
    )


class RestoreLiquidityIn(serializers.Serializer):
    symbols = serializers.ListField(
        child=ChaosSymbolField(), required=False, max_length=50, help_text="Markets; absent: every market."
    )


class PartialFillsIn(InjectionIn):
    max_fill_fraction = _Fraction(
        min_value=0.000001,
        max_value=0.999999,
        required=False,
        default=Decimal("0.5"),
        help_text="At most this share of what a match could fill is filled, one match per order; the rest as "
        "the order's time in force says.",
    )
    probability = _Fraction(required=False, default=Decimal(1), help_text="Share of orders capped.")


class UnknownOutcomeIn(InjectionIn):
    probability = _Fraction(required=False, default=Decimal(1), help_text="Share of orders whose answer is lost.")
    mode = serializers.ChoiceField(
        choices=["timeout", "drop", "mixed"],
        required=False,
        default="timeout",
        help_text="timeout: 504 execution_status_unknown; drop: the connection is closed without an answer; mixed.",
    )


DEFAULT_TIGHT_WEIGHT = 60


class RateLimitsIn(InjectionIn):
    """Any of the three limits; none given: a request weight of 60 per minute."""

    weight_limit_1m = StrictIntegerField(required=False, min_value=1, help_text="Request weight per key and minute.")
    order_limit_10s = StrictIntegerField(required=False, min_value=1, help_text="Orders per key and 10 seconds.")
    order_limit_1d = StrictIntegerField(required=False, min_value=1, help_text="Orders per key and day.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not any(attrs.get(n) for n in ("weight_limit_1m", "order_limit_10s", "order_limit_1d")):
            attrs["weight_limit_1m"] = DEFAULT_TIGHT_WEIGHT
        return attrs


class ScopeOut(serializers.Serializer):
    operations = serializers.ListField(child=serializers.CharField())
    accounts = serializers.ListField(child=serializers.CharField())
    markets = serializers.ListField(child=serializers.CharField())


class InjectionOut(serializers.Serializer):
    chaos_id = serializers.CharField()
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=["active", "expired", "cleared"])
    params = serializers.DictField(help_text="What the fault does; numbers as strings.")
    scope = ScopeOut()
    seed = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    remaining_s = serializers.FloatField(help_text="Seconds until it ends on its own (0 once it has ended).")
    cleared_at = serializers.DateTimeField(allow_null=True)
    cleared_reason = serializers.CharField(allow_blank=True)
    affected = serializers.IntegerField(help_text="Requests and orders it acted on so far.")


class StatusOut(serializers.Serializer):
    enabled = serializers.BooleanField()
    count = serializers.IntegerField()
    active = InjectionOut(many=True)
    rate_limits = serializers.DictField(help_text="The per-key limits in force (tightened by chaos or not).")


class ClearedOut(serializers.Serializer):
    chaos_id = serializers.CharField(help_text="This action's id (restore-liquidity) or the first cleared.")
    cleared = serializers.ListField(child=serializers.CharField())
    count = serializers.IntegerField()

"""Input and output shapes of the markets API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exchange.api import AmountField, AssetAmountField, StrictIntegerField, TextField, format_amount
from ledger.reference_data import ASSET_CHOICES
from ledger.selectors import asset_map
from markets.market_data import INTERVALS, best_prices
from markets.models import Market, MarketStatus
from markets.services import effective_fee_bps, effective_maker_fee_bps, effective_spread_bps, ladder_settings


def _fmt(value: Decimal | None, asset_code: str | None) -> str | None:
    asset = asset_map().get(asset_code or "")
    return format_amount(value, asset.decimals if asset else None)


DECIMAL = {"type": "string", "format": "decimal"}
# A price that does not exist when that side of the book (or the tape) is empty.
DECIMAL_OR_NULL = {"type": "string", "format": "decimal", "nullable": True}


class MarketOut(serializers.Serializer):
    symbol = serializers.CharField()
    base_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="base_asset_id")
    quote_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="quote_asset_id")
    status = serializers.ChoiceField(choices=MarketStatus.choices)
    price = AssetAmountField(source="reference_price", asset="quote_asset_id", help_text="Reference (mid) price.")
    bid = serializers.SerializerMethodField(help_text="Best bid of the book (house and customers).")
    ask = serializers.SerializerMethodField(help_text="Best ask of the book (house and customers).")
    spread_bps = serializers.SerializerMethodField(help_text="The house's quoted spread around the price.")
    taker_fee_bps = serializers.SerializerMethodField()
    maker_fee_bps = serializers.SerializerMethodField()
    price_tick = serializers.SerializerMethodField(help_text="Limit prices are multiples of this.")
    quantity_step = serializers.SerializerMethodField()
    min_quantity = serializers.SerializerMethodField()
    min_notional = serializers.SerializerMethodField()
    max_notional = serializers.SerializerMethodField()
    house_quoting = serializers.BooleanField()
    ladder = serializers.SerializerMethodField(help_text="The house's ladder: levels per side, spacing, size.")
    book_sequence = serializers.IntegerField()
    price_updated_at = serializers.DateTimeField()

    def _best(self, obj: Market) -> tuple[Decimal | None, Decimal | None]:
        """(bid, ask), read once per market for both fields."""
        cached = getattr(obj, "_best_cache", None)
        if cached is None:
            cached = best_prices(market=obj)
            obj._best_cache = cached  # type: ignore[attr-defined]
        return cached

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_bid(self, obj: Market) -> str | None:
        return _fmt(self._best(obj)[0], obj.quote_asset_id)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_ask(self, obj: Market) -> str | None:
        return _fmt(self._best(obj)[1], obj.quote_asset_id)

    @extend_schema_field(DECIMAL)
    def get_spread_bps(self, obj: Market) -> str | None:
        return format_amount(effective_spread_bps(obj))

    @extend_schema_field(DECIMAL)
    def get_taker_fee_bps(self, obj: Market) -> str | None:
        return format_amount(effective_fee_bps(obj))

    @extend_schema_field(DECIMAL)
    def get_maker_fee_bps(self, obj: Market) -> str | None:
        return format_amount(effective_maker_fee_bps(obj))

    @extend_schema_field(DECIMAL)
    def get_price_tick(self, obj: Market) -> str | None:
        return format_amount(obj.price_tick)

    @extend_schema_field(DECIMAL)
    def get_quantity_step(self, obj: Market) -> str | None:
        return format_amount(obj.quantity_step)

    @extend_schema_field(DECIMAL)
    def get_min_quantity(self, obj: Market) -> str | None:
        return format_amount(obj.min_quantity)

    @extend_schema_field(DECIMAL)
    def get_min_notional(self, obj: Market) -> str | None:
        return format_amount(obj.min_notional)

    @extend_schema_field(DECIMAL)
    def get_max_notional(self, obj: Market) -> str | None:
        return format_amount(obj.max_notional)

    @extend_schema_field(
        {
            "type": "object",
            "properties": {"levels": {"type": "integer"}, "step_bps": DECIMAL, "size": DECIMAL},
            "required": ["levels", "step_bps", "size"],
        }
    )
    def get_ladder(self, obj: Market) -> dict[str, Any]:
        settings = ladder_settings(obj)
        return {
            "levels": settings.levels,
            "step_bps": format_amount(settings.step_bps),
            "size": format_amount(settings.size),
        }


def _levels(levels: list[tuple[Decimal, Decimal]], market: Market) -> list[list[str | None]]:
    return [[_fmt(p, market.quote_asset_id), _fmt(q, market.base_asset_id)] for p, q in levels]


def book_out(view: Any, market: Market) -> dict[str, Any]:
    return {
        "symbol": view.symbol,
        "sequence": view.sequence,
        "timestamp": view.timestamp.isoformat().replace("+00:00", "Z"),
        "bids": _levels(view.bids, market),
        "asks": _levels(view.asks, market),
    }


_LEVELS = {
    "type": "array",
    "items": {"type": "array", "items": DECIMAL, "minItems": 2, "maxItems": 2},
    "description": "[price, quantity] pairs, best price first.",
}


class BookOut(serializers.Serializer):
    """The book's shape (``book_out`` renders it: levels are [price, quantity] decimal string pairs)."""

    symbol = serializers.CharField()
    sequence = serializers.IntegerField(help_text="Increases with every change of the book.")
    timestamp = serializers.DateTimeField()
    bids = serializers.SerializerMethodField()
    asks = serializers.SerializerMethodField()

    @extend_schema_field(_LEVELS)
    def get_bids(self, obj: Any) -> list[list[str]]:
        return obj["bids"]

    @extend_schema_field(_LEVELS)
    def get_asks(self, obj: Any) -> list[list[str]]:
        return obj["asks"]


class TapeTradeOut(serializers.Serializer):
    trade_id = serializers.UUIDField()
    price = AssetAmountField(asset="market.quote_asset_id")
    quantity = AssetAmountField(asset="market.base_asset_id")
    taker_side = serializers.ChoiceField(choices=[("buy", "buy"), ("sell", "sell")])
    executed_at = serializers.DateTimeField(source="created_at")


class TapeOut(serializers.Serializer):
    symbol = serializers.CharField()
    trades = TapeTradeOut(many=True, help_text="Newest first.")


class TickerOut(serializers.Serializer):
    symbol = serializers.CharField()
    last = serializers.SerializerMethodField()
    bid = serializers.SerializerMethodField()
    ask = serializers.SerializerMethodField()
    open = serializers.SerializerMethodField()
    high = serializers.SerializerMethodField()
    low = serializers.SerializerMethodField()
    volume = serializers.SerializerMethodField()
    quote_volume = serializers.SerializerMethodField()
    trades = serializers.IntegerField()
    change_percent = serializers.SerializerMethodField()
    timestamp = serializers.DateTimeField()

    def _q(self, value: Decimal | None) -> str | None:
        return _fmt(value, self.context["market"].quote_asset_id)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_last(self, obj: Any) -> str | None:
        return self._q(obj.last)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_bid(self, obj: Any) -> str | None:
        return self._q(obj.bid)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_ask(self, obj: Any) -> str | None:
        return self._q(obj.ask)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_open(self, obj: Any) -> str | None:
        return self._q(obj.open)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_high(self, obj: Any) -> str | None:
        return self._q(obj.high)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_low(self, obj: Any) -> str | None:
        return self._q(obj.low)

    @extend_schema_field(DECIMAL)
    def get_volume(self, obj: Any) -> str | None:
        return _fmt(obj.volume, self.context["market"].base_asset_id)

    @extend_schema_field(DECIMAL)
    def get_quote_volume(self, obj: Any) -> str | None:
        return self._q(obj.quote_volume)

    @extend_schema_field(DECIMAL_OR_NULL)
    def get_change_percent(self, obj: Any) -> str | None:
        return format_amount(obj.change_percent)


class CandleOut(serializers.Serializer):
    open_time = serializers.DateTimeField()
    open = serializers.SerializerMethodField()
    high = serializers.SerializerMethodField()
    low = serializers.SerializerMethodField()
    close = serializers.SerializerMethodField()
    volume = serializers.SerializerMethodField()
    quote_volume = serializers.SerializerMethodField()
    trades = serializers.IntegerField()

    def _q(self, value: Decimal) -> str | None:
        return _fmt(value, self.context["market"].quote_asset_id)

    @extend_schema_field(DECIMAL)
    def get_open(self, obj: Any) -> str | None:
        return self._q(obj.open)

    @extend_schema_field(DECIMAL)
    def get_high(self, obj: Any) -> str | None:
        return self._q(obj.high)

    @extend_schema_field(DECIMAL)
    def get_low(self, obj: Any) -> str | None:
        return self._q(obj.low)

    @extend_schema_field(DECIMAL)
    def get_close(self, obj: Any) -> str | None:
        return self._q(obj.close)

    @extend_schema_field(DECIMAL)
    def get_volume(self, obj: Any) -> str | None:
        return _fmt(obj.volume, self.context["market"].base_asset_id)

    @extend_schema_field(DECIMAL)
    def get_quote_volume(self, obj: Any) -> str | None:
        return self._q(obj.quote_volume)


class CandlesOut(serializers.Serializer):
    symbol = serializers.CharField()
    interval = serializers.ChoiceField(choices=sorted(INTERVALS))
    candles = CandleOut(many=True, help_text="Oldest first; only intervals that had trades.")


class BookIn(serializers.Serializer):
    depth = StrictIntegerField(required=False, min_value=1, max_value=500, default=20, help_text="Levels per side.")


class TapeIn(serializers.Serializer):
    limit = StrictIntegerField(required=False, min_value=1, max_value=1000, default=50)


class CandlesIn(serializers.Serializer):
    interval = serializers.ChoiceField(choices=sorted(INTERVALS), required=False, default="1m")
    limit = StrictIntegerField(required=False, min_value=1, max_value=1000, default=100)


class MarketListOut(serializers.Serializer):
    markets = MarketOut(many=True)


class MarketPriceIn(serializers.Serializer):
    # At most 10^12 (markets.services.market_price_parse), at the quote asset's precision.
    price = AmountField(integer_digits=12, help_text="The new reference (mid) price.")
    reason = TextField(max_length=100, required=False, allow_blank=True, default="")


class MarketStatusIn(serializers.Serializer):
    reason = TextField(max_length=100, required=False, allow_blank=True, default="")

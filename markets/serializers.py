"""Input and output shapes of the markets API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exchange.api import AmountField, AssetAmountField, TextField, format_amount
from ledger.reference_data import ASSET_CHOICES
from ledger.selectors import asset_map
from markets.models import Market, MarketStatus
from markets.pricing import quote_prices
from markets.services import effective_fee_bps, effective_spread_bps


def _fmt(value: Decimal | None, asset_code: str | None) -> str | None:
    asset = asset_map().get(asset_code or "")
    return format_amount(value, asset.decimals if asset else None)


DECIMAL = {"type": "string", "format": "decimal"}


class MarketOut(serializers.Serializer):
    symbol = serializers.CharField()
    base_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="base_asset_id")
    quote_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="quote_asset_id")
    status = serializers.ChoiceField(choices=MarketStatus.choices)
    price = AssetAmountField(source="reference_price", asset="quote_asset_id", help_text="Reference (mid) price.")
    bid = serializers.SerializerMethodField()
    ask = serializers.SerializerMethodField()
    spread_bps = serializers.SerializerMethodField()
    taker_fee_bps = serializers.SerializerMethodField()
    quantity_step = serializers.SerializerMethodField()
    min_quantity = serializers.SerializerMethodField()
    min_notional = serializers.SerializerMethodField()
    max_notional = serializers.SerializerMethodField()
    price_updated_at = serializers.DateTimeField()

    def _quotes(self, obj: Market) -> tuple[Decimal, Decimal]:
        """(bid, ask), computed once per market: both fields and the spread read the same configuration."""
        cached = getattr(obj, "_quotes_cache", None)
        if cached is None:
            cached = quote_prices(
                reference=obj.reference_price,
                spread_bps=effective_spread_bps(obj),
                quote_quantum=asset_map()[obj.quote_asset_id].quantum,
            )
            obj._quotes_cache = cached  # type: ignore[attr-defined]
        return cached

    @extend_schema_field(DECIMAL)
    def get_bid(self, obj: Market) -> str | None:
        return _fmt(self._quotes(obj)[0], obj.quote_asset_id)

    @extend_schema_field(DECIMAL)
    def get_ask(self, obj: Market) -> str | None:
        return _fmt(self._quotes(obj)[1], obj.quote_asset_id)

    @extend_schema_field(DECIMAL)
    def get_spread_bps(self, obj: Market) -> str | None:
        return format_amount(effective_spread_bps(obj))

    @extend_schema_field(DECIMAL)
    def get_taker_fee_bps(self, obj: Market) -> str | None:
        return format_amount(effective_fee_bps(obj))

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


class MarketListOut(serializers.Serializer):
    markets = MarketOut(many=True)


class MarketPriceIn(serializers.Serializer):
    # At most 10^12 (markets.services.market_price_parse), at the quote asset's precision.
    price = AmountField(integer_digits=12, help_text="The new reference (mid) price.")
    reason = TextField(max_length=100, required=False, allow_blank=True, default="")


class MarketStatusIn(serializers.Serializer):
    reason = TextField(max_length=100, required=False, allow_blank=True, default="")

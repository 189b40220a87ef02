"""Input and output shapes of the markets API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from exchange.api import AmountField, AssetAmountField, format_amount
from ledger.selectors import asset_map
from markets.models import Market
from markets.pricing import quote_prices
from markets.services import effective_fee_bps, effective_spread_bps


def _fmt(value: Decimal | None, asset_code: str | None) -> str | None:
    asset = asset_map().get(asset_code or "")
    return format_amount(value, asset.decimals if asset else None)


class MarketOut(serializers.Serializer):
    symbol = serializers.CharField()
    base_asset = serializers.CharField(source="base_asset_id")
    quote_asset = serializers.CharField(source="quote_asset_id")
    status = serializers.CharField()
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

    def get_bid(self, obj: Market) -> str | None:
        return _fmt(self._quotes(obj)[0], obj.quote_asset_id)

    def get_ask(self, obj: Market) -> str | None:
        return _fmt(self._quotes(obj)[1], obj.quote_asset_id)

    def get_spread_bps(self, obj: Market) -> str | None:
        return format_amount(effective_spread_bps(obj))

    def get_taker_fee_bps(self, obj: Market) -> str | None:
        return format_amount(effective_fee_bps(obj))

    def get_quantity_step(self, obj: Market) -> str | None:
        return format_amount(obj.quantity_step)

    def get_min_quantity(self, obj: Market) -> str | None:
        return format_amount(obj.min_quantity)

    def get_min_notional(self, obj: Market) -> str | None:
        return format_amount(obj.min_notional)

    def get_max_notional(self, obj: Market) -> str | None:
        return format_amount(obj.max_notional)


class MarketPriceIn(serializers.Serializer):
    price = AmountField()
    reason = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class MarketStatusIn(serializers.Serializer):
    reason = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

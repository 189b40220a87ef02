"""Input and output shapes of the markets, orders and trades API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from exchange.api import AmountField, AssetAmountField, format_amount
from ledger.selectors import asset_map
from orders.models import Market, Order, OrderStatus, Side
from orders.pricing import quote_prices


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
            from orders.services import effective_spread_bps

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
        from orders.services import effective_spread_bps

        return format_amount(effective_spread_bps(obj))

    def get_taker_fee_bps(self, obj: Market) -> str | None:
        from orders.services import effective_fee_bps

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


class TradeOut(serializers.Serializer):
    trade_id = serializers.UUIDField()
    order_id = serializers.UUIDField(source="order.order_id")
    account_id = serializers.UUIDField(source="account.account_id")
    symbol = serializers.CharField(source="market.symbol")
    side = serializers.CharField()
    quantity = AssetAmountField(asset="market.base_asset_id")
    price = AssetAmountField(asset="market.quote_asset_id")
    quote_amount = AssetAmountField(asset="market.quote_asset_id")
    fee = AssetAmountField(asset="fee_asset_id")
    fee_asset = serializers.CharField(source="fee_asset_id")
    liquidity = serializers.CharField()
    reference_price = AssetAmountField(asset="market.quote_asset_id")
    journal_entry_id = serializers.UUIDField(source="journal_entry.entry_id")
    created_at = serializers.DateTimeField()


class OrderFillOut(TradeOut):
    """A fill inside an order (the order's own ids are not repeated)."""

    order_id = None  # type: ignore[assignment]
    account_id = None  # type: ignore[assignment]
    symbol = None  # type: ignore[assignment]


class OrderOut(serializers.Serializer):
    order_id = serializers.UUIDField()
    account_id = serializers.UUIDField(source="account.account_id")
    client_order_id = serializers.CharField(allow_null=True)
    symbol = serializers.CharField(source="market.symbol")
    side = serializers.CharField()
    order_type = serializers.CharField()
    status = serializers.CharField()
    quantity = AssetAmountField(asset="market.base_asset_id")
    quote_quantity = AssetAmountField(asset="market.quote_asset_id")
    price = AssetAmountField(asset="market.quote_asset_id", help_text="Limit price; null for market orders.")
    filled_quantity = AssetAmountField(asset="market.base_asset_id")
    average_price = AssetAmountField(asset="market.quote_asset_id")
    fee = AssetAmountField(asset="market.quote_asset_id")
    fee_asset = serializers.CharField(source="fee_asset_id", allow_null=True)
    reject_reason = serializers.SerializerMethodField()
    reject_message = serializers.SerializerMethodField()
    fills = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    filled_at = serializers.DateTimeField(allow_null=True)

    def get_reject_reason(self, obj: Order) -> str | None:
        return obj.reject_reason or None

    def get_reject_message(self, obj: Order) -> str | None:
        return obj.reject_message or None

    def get_fills(self, obj: Order) -> list[dict[str, Any]]:
        if not self.context.get("with_fills", True):
            return []
        fills = sorted(obj.fills.all(), key=lambda t: t.pk)
        for fill in fills:
            fill.market = obj.market  # already loaded; saves a query per fill
        return OrderFillOut(fills, many=True).data  # type: ignore[return-value]


class OrderIn(serializers.Serializer):
    account_id = serializers.UUIDField()
    symbol = serializers.CharField(max_length=20)
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = serializers.CharField(max_length=20)
    quantity = AmountField(required=False, allow_null=True, default=None)
    quote_quantity = AmountField(required=False, allow_null=True, default=None)
    client_order_id = serializers.RegexField(r"^[A-Za-z0-9._:\-]{1,64}$", required=False, allow_null=True, default=None)


class OrderFilterIn(serializers.Serializer):
    account_id = serializers.UUIDField(required=False)
    symbol = serializers.CharField(required=False, max_length=20)
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)


class TradeFilterIn(OrderFilterIn):
    status = None  # type: ignore[assignment]
    order_id = serializers.UUIDField(required=False)

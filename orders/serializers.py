"""Input and output shapes of the orders and trades API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from exchange.api import AmountField, AssetAmountField, format_amount
from ledger.selectors import asset_map
from orders.models import Order, OrderStatus, Side


def _fmt(value: Decimal | None, asset_code: str | None) -> str | None:
    asset = asset_map().get(asset_code or "")
    return format_amount(value, asset.decimals if asset else None)


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

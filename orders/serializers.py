"""Input and output shapes of the orders and trades API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from exchange.api import AmountField, AssetAmountField, ShallowFieldsMixin
from orders.models import OrderStatus, SelfTradePrevention, Side


class TradeOut(serializers.Serializer):
    """One trade as the account that took part in it sees it: its own order, side, amounts and fee."""

    trade_id = serializers.UUIDField(source="trade.trade_id")
    order_id = serializers.UUIDField(source="order.order_id")
    account_id = serializers.UUIDField(source="account.account_id")
    symbol = serializers.CharField(source="market.symbol")
    side = serializers.CharField()
    liquidity = serializers.CharField(help_text="maker (its order rested in the book) or taker")
    quantity = AssetAmountField(asset="market.base_asset_id")
    price = AssetAmountField(asset="market.quote_asset_id")
    quote_amount = AssetAmountField(
        asset="market.quote_asset_id", help_text="What this side paid (buy) or received before its fee (sell)."
    )
    fee = AssetAmountField(asset="fee_asset_id")
    fee_asset = serializers.CharField(source="fee_asset_id")
    reference_price = AssetAmountField(source="trade.reference_price", asset="market.quote_asset_id")
    journal_entry_id = serializers.UUIDField(source="trade.journal_entry.entry_id")
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
    time_in_force = serializers.SerializerMethodField()
    post_only = serializers.BooleanField()
    self_trade_prevention = serializers.CharField()
    status = serializers.CharField()
    quantity = AssetAmountField(asset="market.base_asset_id")
    quote_quantity = AssetAmountField(asset="market.quote_asset_id")
    price = AssetAmountField(asset="market.quote_asset_id", help_text="Limit price; null for market orders.")
    remaining_quantity = AssetAmountField(
        asset="market.base_asset_id", help_text="quantity - filled_quantity; null for an order sized by quote."
    )
    filled_quantity = AssetAmountField(asset="market.base_asset_id")
    filled_quote = AssetAmountField(asset="market.quote_asset_id", help_text="Quote value of the fills, before fees.")
    average_price = AssetAmountField(asset="market.quote_asset_id")
    fee = AssetAmountField(asset="market.quote_asset_id")
    fee_asset = serializers.CharField(source="fee_asset_id", allow_null=True)
    reserved = serializers.SerializerMethodField(help_text="What the resting order still holds locked.")
    reserved_asset = serializers.SerializerMethodField()
    reject_reason = serializers.SerializerMethodField()
    reject_message = serializers.SerializerMethodField()
    end_reason = serializers.SerializerMethodField(help_text="Why the order ended cancelled or expired.")
    fills = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    filled_at = serializers.DateTimeField(allow_null=True)

    def get_time_in_force(self, obj: Any) -> str | None:
        return obj.time_in_force or None

    def _reserved_asset(self, obj: Any) -> str:
        return obj.market.quote_asset_id if obj.side == Side.BUY else obj.market.base_asset_id

    def get_reserved(self, obj: Any) -> str | None:
        from exchange.api import format_amount
        from ledger.selectors import asset_map

        return format_amount(obj.locked, asset_map()[self._reserved_asset(obj)].decimals)

    def get_reserved_asset(self, obj: Any) -> str:
        return self._reserved_asset(obj)

    def get_reject_reason(self, obj: Any) -> str | None:
        return obj.reject_reason or None

    def get_reject_message(self, obj: Any) -> str | None:
        return obj.reject_message or None

    def get_end_reason(self, obj: Any) -> str | None:
        return obj.end_reason or None

    def get_fills(self, obj: Any) -> list[dict[str, Any]]:
        if not self.context.get("with_fills", True):
            return []
        fills = self.context.get("fills")
        if fills is None:
            fills = sorted(obj.fills.all(), key=lambda f: f.pk)
        for fill in fills:
            fill.market = obj.market  # already loaded; saves a query per fill
        return OrderFillOut(fills, many=True).data  # type: ignore[return-value]


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean only: "true", 1 and the like are refused (the schema says boolean)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class OrderIn(ShallowFieldsMixin, serializers.Serializer):
    account_id = serializers.UUIDField()
    symbol = serializers.CharField(max_length=20)
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = serializers.CharField(max_length=20, help_text="market or limit")
    quantity = AmountField(required=False, allow_null=True, default=None)
    quote_quantity = AmountField(required=False, allow_null=True, default=None)
    price = AmountField(required=False, allow_null=True, default=None, help_text="Limit price (limit orders only).")
    time_in_force = serializers.CharField(
        max_length=10, required=False, allow_null=True, default=None, help_text="gtc (default), ioc or fok"
    )
    post_only = StrictBooleanField(required=False, default=False)
    self_trade_prevention = serializers.ChoiceField(
        choices=SelfTradePrevention.choices, required=False, default=SelfTradePrevention.EXPIRE_TAKER
    )
    client_order_id = serializers.RegexField(r"^[A-Za-z0-9._:\-]{1,64}$", required=False, allow_null=True, default=None)


class OrderFilterIn(serializers.Serializer):
    account_id = serializers.UUIDField(required=False)
    symbol = serializers.CharField(required=False, max_length=20)
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    status = serializers.ChoiceField(
        choices=OrderStatus.choices,
        required=False,
        help_text="open lists every resting order (open and partially_filled).",
    )
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)


class TradeFilterIn(OrderFilterIn):
    status = None  # type: ignore[assignment]
    order_id = serializers.UUIDField(required=False)


class CancelAllIn(serializers.Serializer):
    account_id = serializers.UUIDField()
    symbol = serializers.CharField(required=False, max_length=20)

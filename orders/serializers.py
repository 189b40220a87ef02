"""Input and output shapes of the orders and trades API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exchange.api import (
    AmountField,
    AssetAmountField,
    PageIn,
    PatternField,
    StrictDateTimeField,
    StrictUUIDField,
    TextField,
    exactly_one_of,
    format_amount,
)
from ledger.reference_data import ASSET_CHOICES
from ledger.selectors import asset_map
from markets.fields import SymbolField
from orders.models import Order, OrderStatus, OrderType, Side

# What POST /orders accepts today; anything else is 400 unsupported_order_type.
SUPPORTED_ORDER_TYPES = [OrderType.MARKET.value]


def _fmt(value: Decimal | None, asset_code: str | None) -> str | None:
    asset = asset_map().get(asset_code or "")
    return format_amount(value, asset.decimals if asset else None)


class TradeOut(serializers.Serializer):
    trade_id = serializers.UUIDField()
    order_id = serializers.UUIDField(source="order.order_id")
    account_id = serializers.UUIDField(source="account.account_id")
    symbol = serializers.CharField(source="market.symbol")
    side = serializers.ChoiceField(choices=Side.choices)
    quantity = AssetAmountField(asset="market.base_asset_id")
    price = AssetAmountField(asset="market.quote_asset_id")
    quote_amount = AssetAmountField(asset="market.quote_asset_id")
    fee = AssetAmountField(asset="fee_asset_id")
    fee_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="fee_asset_id")
    liquidity = serializers.ChoiceField(choices=[("taker", "taker"), ("maker", "maker")])
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
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    quantity = AssetAmountField(asset="market.base_asset_id")
    quote_quantity = AssetAmountField(asset="market.quote_asset_id")
    price = AssetAmountField(asset="market.quote_asset_id", help_text="Limit price; null for market orders.")
    filled_quantity = AssetAmountField(asset="market.base_asset_id")
    average_price = AssetAmountField(asset="market.quote_asset_id")
    fee = AssetAmountField(asset="market.quote_asset_id")
    fee_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="fee_asset_id", allow_null=True)
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

    @extend_schema_field(OrderFillOut(many=True))
    def get_fills(self, obj: Order) -> list[dict[str, Any]]:
        if not self.context.get("with_fills", True):
            return []
        fills = sorted(obj.fills.all(), key=lambda t: t.pk)
        for fill in fills:
            fill.market = obj.market  # already loaded; saves a query per fill
        return OrderFillOut(fills, many=True).data  # type: ignore[return-value]


@extend_schema_field({"type": "string", "enum": SUPPORTED_ORDER_TYPES})
class OrderTypeField(TextField):
    """Any other type is refused by the service as 400 unsupported_order_type (the schema lists the supported)."""


class OrderIn(serializers.Serializer):
    """Exactly one of quantity and quote_quantity sizes the order (the service refuses both or neither); the
    schema says so with one variant each (ORDER_IN_SCHEMA)."""

    account_id = StrictUUIDField()
    symbol = SymbolField()
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = OrderTypeField(max_length=20)
    quantity = AmountField(required=False, allow_null=True, default=None, help_text="Base asset.")
    quote_quantity = AmountField(required=False, allow_null=True, default=None, help_text="Quote asset.")
    client_order_id = PatternField(
        r"^[A-Za-z0-9._:\-]{1,64}$", max_length=64, required=False, allow_null=True, default=None
    )


ORDER_IN_SCHEMA = exactly_one_of(OrderIn, "quantity", "quote_quantity")


class OrderFilterIn(PageIn):
    account_id = StrictUUIDField(required=False)
    symbol = SymbolField(required=False)
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    since = StrictDateTimeField(required=False, help_text="From this time (inclusive).")
    until = StrictDateTimeField(required=False, help_text="Before this time (exclusive).")


class TradeFilterIn(OrderFilterIn):
    status = None  # type: ignore[assignment]
    order_id = StrictUUIDField(required=False)

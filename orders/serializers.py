"""Input and output shapes of the orders and trades API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from exchange.api import (
    ABSENT_MARKER,
    AmountField,
    AssetAmountField,
    PageIn,
    PatternField,
    ShallowFieldsMixin,
    StrictDateTimeField,
    StrictUUIDField,
    TextField,
)
from ledger.reference_data import ASSET_CHOICES
from markets.fields import SymbolField
from orders.matching import EndReason
from orders.models import Liquidity, OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce

# What POST /orders accepts; anything else is 400 unsupported_order_type.
SUPPORTED_ORDER_TYPES = OrderType.values
# The schema's variants of an order (ORDER_IN_SCHEMA) fix these (named enums in exchange/settings ENUM_NAME_OVERRIDES).
MARKET_ONLY, LIMIT_ONLY, GTC_ONLY = ["market"], ["limit"], ["gtc"]
DECIMAL = {"type": "string", "format": "decimal"}


class TradeOut(serializers.Serializer):
    """One trade as the account that took part in it sees it: its own order, side, amounts and fee."""

    trade_id = serializers.UUIDField(source="trade.trade_id")
    order_id = serializers.UUIDField(source="order.order_id")
    account_id = serializers.UUIDField(source="account.account_id")
    symbol = serializers.CharField(source="market.symbol")
    side = serializers.ChoiceField(choices=Side.choices)
    liquidity = serializers.ChoiceField(
        choices=Liquidity.choices, help_text="maker (its order rested in the book) or taker"
    )
    quantity = AssetAmountField(asset="market.base_asset_id")
    price = AssetAmountField(asset="market.quote_asset_id")
    quote_amount = AssetAmountField(
        asset="market.quote_asset_id", help_text="What this side paid (buy) or received before its fee (sell)."
    )
    fee = AssetAmountField(asset="fee_asset_id")
    fee_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="fee_asset_id")
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
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    time_in_force = serializers.SerializerMethodField(help_text="gtc, ioc or fok; null for a market order.")
    post_only = serializers.BooleanField()
    self_trade_prevention = serializers.ChoiceField(choices=SelfTradePrevention.choices)
    status = serializers.ChoiceField(choices=OrderStatus.choices)
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
    fee_asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="fee_asset_id", allow_null=True)
    reserved = serializers.SerializerMethodField(help_text="What the resting order still holds locked.")
    reserved_asset = serializers.SerializerMethodField()
    reject_reason = serializers.SerializerMethodField()
    reject_message = serializers.SerializerMethodField()
    end_reason = serializers.SerializerMethodField(help_text="Why the order ended cancelled or expired.")
    chaos_id = serializers.SerializerMethodField(
        help_text="The chaos injection that acted on the order (GET /chaos/history), or null."
    )
    fills = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    filled_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field({"type": "string", "enum": TimeInForce.values, "nullable": True})
    def get_time_in_force(self, obj: Any) -> str | None:
        return obj.time_in_force or None

    def _reserved_asset(self, obj: Any) -> str:
        return obj.market.quote_asset_id if obj.side == Side.BUY else obj.market.base_asset_id

    @extend_schema_field(DECIMAL)
    def get_reserved(self, obj: Any) -> str | None:
        from exchange.api import format_amount
        from ledger.selectors import asset_map

        return format_amount(obj.locked, asset_map()[self._reserved_asset(obj)].decimals)

    @extend_schema_field({"type": "string", "enum": [code for code, _ in ASSET_CHOICES]})
    def get_reserved_asset(self, obj: Any) -> str:
        return self._reserved_asset(obj)

    def get_reject_reason(self, obj: Any) -> str | None:
        return obj.reject_reason or None

    def get_reject_message(self, obj: Any) -> str | None:
        return obj.reject_message or None

    @extend_schema_field({"type": "string", "enum": list(EndReason), "nullable": True})
    def get_end_reason(self, obj: Any) -> str | None:
        return obj.end_reason or None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_chaos_id(self, obj: Any) -> str | None:
        return obj.chaos_id or None

    @extend_schema_field(OrderFillOut(many=True))
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
    """A JSON boolean only: "true", 1 and the like are refused (the schema says boolean); null means the default."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return True, self.default
        return super().validate_empty_values(data)


@extend_schema_field({"type": "string", "enum": SUPPORTED_ORDER_TYPES})
class OrderTypeField(TextField):
    """Any other type is refused by the service as 400 unsupported_order_type (the schema lists the supported)."""


class OrderIn(ShallowFieldsMixin, serializers.Serializer):
    """What the view validates: every parameter of every kind of order. Which ones go together (a market order
    sized by quantity or by quote quantity, a limit order, a post-only order) is checked by the service and said in
    the schema with one variant per kind (ORDER_IN_SCHEMA)."""

    account_id = StrictUUIDField()
    symbol = SymbolField()
    side = serializers.ChoiceField(choices=Side.choices)
    order_type = OrderTypeField(max_length=20)
    quantity = AmountField(required=False, allow_null=True, default=None, help_text="Base asset.")
    quote_quantity = AmountField(required=False, allow_null=True, default=None, help_text="Quote asset.")
    price = AmountField(
        integer_digits=12, required=False, allow_null=True, default=None, help_text="Limit price (limit orders)."
    )
    time_in_force = serializers.ChoiceField(
        choices=TimeInForce.choices, required=False, allow_null=True, default=None, help_text="gtc (default), ioc, fok"
    )
    post_only = StrictBooleanField(required=False, allow_null=True, default=False)
    self_trade_prevention = serializers.ChoiceField(
        choices=SelfTradePrevention.choices, required=False, default=SelfTradePrevention.EXPIRE_TAKER
    )
    client_order_id = PatternField(
        r"^[A-Za-z0-9._:\-]{1,64}$", max_length=64, required=False, allow_null=True, default=None
    )


@extend_schema_field({ABSENT_MARKER: True, "description": "Absent or null in this variant."})
class _Absent(serializers.Field):
    """Schema only: a parameter this kind of order leaves out (or sends as null)."""


def _variant(name: str, order_type: str, **fields: serializers.Field) -> type[serializers.Serializer]:
    """One kind of order for the schema: OrderIn's common parameters, ``order_type`` fixed, the given fields, and
    every other parameter absent."""
    common = {
        n: f
        for n, f in OrderIn._declared_fields.items()
        if n in ("account_id", "symbol", "side", "self_trade_prevention", "client_order_id")
    }
    sized = ("quantity", "quote_quantity", "price", "time_in_force", "post_only")
    attrs: dict[str, Any] = {
        **{n: type(f)(*f._args, **f._kwargs) for n, f in common.items()},
        "order_type": serializers.ChoiceField(choices=[order_type]),
        **{n: _Absent(required=False) for n in sized},
        **fields,
        "__module__": __name__,
    }
    return type(name, (serializers.Serializer,), attrs)


ORDER_IN_SCHEMA = PolymorphicProxySerializer(
    component_name="OrderIn",
    resource_type_field_name=None,
    serializers=[
        _variant("MarketOrderByQuantityIn", "market", quantity=AmountField(help_text="Base asset.")),
        _variant("MarketOrderByQuoteQuantityIn", "market", quote_quantity=AmountField(help_text="Quote asset.")),
        _variant(
            "LimitOrderIn",
            "limit",
            price=AmountField(integer_digits=12, help_text="Limit price, on the market's price tick."),
            quantity=AmountField(help_text="Base asset."),
            time_in_force=serializers.ChoiceField(choices=TimeInForce.choices, required=False, allow_null=True),
        ),
        _variant(
            "PostOnlyOrderIn",
            "limit",
            price=AmountField(integer_digits=12, help_text="Limit price, on the market's price tick."),
            quantity=AmountField(help_text="Base asset."),
            post_only=extend_schema_field({"type": "boolean", "enum": [True]})(type("P", (serializers.Field,), {}))(
                help_text="Rejected (post_only_would_take) if it would match at once."
            ),
            time_in_force=serializers.ChoiceField(choices=GTC_ONLY, required=False, allow_null=True),
        ),
    ],
)


class OrderFilterIn(PageIn):
    account_id = StrictUUIDField(required=False)
    symbol = SymbolField(required=False)
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    status = serializers.ChoiceField(
        choices=OrderStatus.choices,
        required=False,
        help_text="open lists every resting order (open and partially_filled).",
    )
    since = StrictDateTimeField(required=False, help_text="From this time (inclusive).")
    until = StrictDateTimeField(required=False, help_text="Before this time (exclusive).")


class TradeFilterIn(OrderFilterIn):
    status = None  # type: ignore[assignment]
    order_id = StrictUUIDField(required=False)


class CancelAllIn(serializers.Serializer):
    account_id = StrictUUIDField()
    symbol = SymbolField(required=False)


class CancelledOrdersOut(serializers.Serializer):
    orders = OrderOut(many=True, help_text="Every order this call cancelled, with its reservation released.")

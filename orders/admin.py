"""Operator screens for orders, trades and fills (read-only: orders change only through the services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from exchange.api import money_text
from ledger.admin import ReadOnlyAdmin
from orders.models import Fill, Order, Trade


def _base(obj: Any, value: Any) -> str:
    return money_text(value, obj.market.base_asset_id) if value is not None else "-"


def _quote(obj: Any, value: Any) -> str:
    return money_text(value, obj.market.quote_asset_id) if value is not None else "-"


class MoneyColumns:
    """Money at its asset's precision with the asset code: base quantities, quote amounts and prices, fees."""

    @admin.display(description="quantity", ordering="quantity")
    def quantity_text(self, obj: Any) -> str:
        return _base(obj, obj.quantity)

    @admin.display(description="price", ordering="price")
    def price_text(self, obj: Any) -> str:
        return _quote(obj, obj.price)

    @admin.display(description="fee", ordering="fee")
    def fee_text(self, obj: Any) -> str:
        return money_text(obj.fee, obj.fee_asset_id) if obj.fee_asset_id else "-"

    @admin.display(description="market", ordering="market__symbol")
    def symbol(self, obj: Any) -> str:
        return obj.market.symbol

    @admin.display(description="account", ordering="account__account_id")
    def account_public_id(self, obj: Any) -> str:
        return str(obj.account.account_id)


class FillInline(MoneyColumns, admin.TabularInline):
    model = Fill
    fields = (
        "trade",
        "side",
        "liquidity",
        "quantity_text",
        "price_text",
        "quote_amount_text",
        "fee_text",
        "created_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="quote amount")
    def quote_amount_text(self, obj: Fill) -> str:
        return _quote(obj, obj.quote_amount)


@admin.register(Order)
class OrderAdmin(MoneyColumns, ReadOnlyAdmin, SimpleHistoryAdmin):
    list_display = (
        "order_id",
        "account_public_id",
        "symbol",
        "side",
        "order_type",
        "time_in_force",
        "status",
        "price_text",
        "quantity_text",
        "quote_quantity_text",
        "filled_quantity_text",
        "remaining_quantity_text",
        "average_price_text",
        "fee_text",
        "reject_reason",
        "end_reason",
        "created_at",
    )
    list_filter = ("status", "side", "order_type", "time_in_force", "market", "reject_reason", "created_at")
    search_fields = ("order_id", "client_order_id", "account__account_id", "account__owner__username")
    list_select_related = ("account", "market")
    date_hierarchy = "created_at"
    inlines = [FillInline]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        order = self.get_object(request, object_id)
        extra = {**(extra_context or {}), **({"title": f"Order {order.order_id}"} if order else {})}
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="quote quantity")
    def quote_quantity_text(self, obj: Order) -> str:
        return _quote(obj, obj.quote_quantity)

    @admin.display(description="filled")
    def filled_quantity_text(self, obj: Order) -> str:
        return _base(obj, obj.filled_quantity)

    @admin.display(description="remaining")
    def remaining_quantity_text(self, obj: Order) -> str:
        return _base(obj, obj.remaining_quantity)

    @admin.display(description="average price")
    def average_price_text(self, obj: Order) -> str:
        return _quote(obj, obj.average_price)


@admin.register(Trade)
class TradeAdmin(MoneyColumns, ReadOnlyAdmin):
    list_display = (
        "trade_id",
        "symbol",
        "taker_side",
        "quantity_text",
        "price_text",
        "taker_order",
        "maker_order",
        "taker_fee_text",
        "maker_fee_text",
        "created_at",
    )
    list_filter = ("market", "taker_side", "created_at")
    search_fields = ("trade_id", "taker_order__order_id", "maker_order__order_id")
    # fee_asset is a column too: without it every row costs a query.
    list_select_related = ("market", "taker_order", "maker_order", "fee_asset")
    date_hierarchy = "created_at"

    @admin.display(description="taker fee")
    def taker_fee_text(self, obj: Trade) -> str:
        return money_text(obj.taker_fee, obj.fee_asset_id)

    @admin.display(description="maker fee")
    def maker_fee_text(self, obj: Trade) -> str:
        return money_text(obj.maker_fee, obj.fee_asset_id)


@admin.register(Fill)
class FillAdmin(MoneyColumns, ReadOnlyAdmin):
    list_display = (
        "trade",
        "order",
        "account_public_id",
        "symbol",
        "side",
        "liquidity",
        "quantity_text",
        "price_text",
        "fee_text",
        "created_at",
    )
    list_filter = ("market", "side", "liquidity", "created_at")
    search_fields = ("trade__trade_id", "order__order_id", "account__account_id")
    list_select_related = ("trade", "order", "account", "market", "fee_asset")
    date_hierarchy = "created_at"

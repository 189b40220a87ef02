"""Operator screens for orders and trades (read-only: orders change only through the services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from exchange.api import money_text
from ledger.admin import ReadOnlyAdmin
from orders.models import Order, Trade


class MoneyColumns:
    """Money at its asset's precision with the asset code: base quantities, quote amounts and prices, fees."""

    @admin.display(description="quantity", ordering="quantity")
    def quantity_text(self, obj: Any) -> str:
        return money_text(obj.quantity, obj.market.base_asset_id) if obj.quantity is not None else "-"

    @admin.display(description="price", ordering="price")
    def price_text(self, obj: Any) -> str:
        return money_text(obj.price, obj.market.quote_asset_id) if obj.price is not None else "-"

    @admin.display(description="fee", ordering="fee")
    def fee_text(self, obj: Any) -> str:
        return money_text(obj.fee, obj.fee_asset_id) if obj.fee_asset_id else "-"

    @admin.display(description="market", ordering="market__symbol")
    def symbol(self, obj: Any) -> str:
        return obj.market.symbol

    @admin.display(description="account", ordering="account__account_id")
    def account_public_id(self, obj: Any) -> str:
        return str(obj.account.account_id)


class TradeInline(MoneyColumns, admin.TabularInline):
    model = Trade
    fields = ("trade_id", "quantity_text", "price_text", "quote_amount_text", "fee_text", "journal_entry", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="quote amount")
    def quote_amount_text(self, obj: Trade) -> str:
        return money_text(obj.quote_amount, obj.market.quote_asset_id)


@admin.register(Order)
class OrderAdmin(MoneyColumns, ReadOnlyAdmin, SimpleHistoryAdmin):
    list_display = (
        "order_id",
        "account_public_id",
        "symbol",
        "side",
        "order_type",
        "status",
        "quantity_text",
        "quote_quantity_text",
        "filled_quantity_text",
        "average_price_text",
        "fee_text",
        "reject_reason",
        "created_at",
    )
    list_filter = ("status", "side", "order_type", "market", "reject_reason", "created_at")
    search_fields = ("order_id", "client_order_id", "account__account_id", "account__owner__username")
    list_select_related = ("account", "market")
    date_hierarchy = "created_at"
    inlines = [TradeInline]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        order = self.get_object(request, object_id)
        extra = {**(extra_context or {}), **({"title": f"Order {order.order_id}"} if order else {})}
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="quote quantity")
    def quote_quantity_text(self, obj: Order) -> str:
        return money_text(obj.quote_quantity, obj.market.quote_asset_id) if obj.quote_quantity is not None else "-"

    @admin.display(description="filled")
    def filled_quantity_text(self, obj: Order) -> str:
        return money_text(obj.filled_quantity, obj.market.base_asset_id)

    @admin.display(description="average price")
    def average_price_text(self, obj: Order) -> str:
        return money_text(obj.average_price, obj.market.quote_asset_id) if obj.average_price is not None else "-"


@admin.register(Trade)
class TradeAdmin(MoneyColumns, ReadOnlyAdmin):
    list_display = (
        "trade_id",
        "order",
        "account_public_id",
        "symbol",
        "side",
        "quantity_text",
        "price_text",
        "quote_amount_text",
        "fee_text",
        "created_at",
    )
    list_filter = ("market", "side", "created_at")
    search_fields = ("trade_id", "order__order_id", "account__account_id")
    # fee_asset is a column too: without it every row costs a query.
    list_select_related = ("order", "order__market", "account", "market", "fee_asset")
    date_hierarchy = "created_at"

    @admin.display(description="quote amount")
    def quote_amount_text(self, obj: Trade) -> str:
        return money_text(obj.quote_amount, obj.market.quote_asset_id)

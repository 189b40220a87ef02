"""Operator screens for orders and trades (read-only: orders change only through the services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from ledger.admin import ReadOnlyAdmin
from orders.models import Fill, Order, Trade


class FillInline(admin.TabularInline):
    model = Fill
    fields = ("trade", "side", "liquidity", "quantity", "price", "quote_amount", "fee", "fee_asset", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin, SimpleHistoryAdmin):
    list_display = (
        "order_id",
        "account",
        "market",
        "side",
        "order_type",
        "time_in_force",
        "status",
        "price",
        "quantity",
        "filled_quantity",
        "remaining_quantity",
        "average_price",
        "fee",
        "reject_reason",
        "end_reason",
        "created_at",
    )
    list_filter = ("status", "side", "order_type", "time_in_force", "market", "reject_reason", "created_at")
    search_fields = ("order_id", "client_order_id", "account__account_id", "account__owner__username")
    list_select_related = ("account", "market")
    date_hierarchy = "created_at"
    inlines = [FillInline]


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = (
        "trade_id",
        "market",
        "taker_side",
        "quantity",
        "price",
        "taker_order",
        "maker_order",
        "taker_fee",
        "maker_fee",
        "fee_asset",
        "created_at",
    )
    list_filter = ("market", "taker_side", "created_at")
    search_fields = ("trade_id", "taker_order__order_id", "maker_order__order_id")
    # fee_asset is a column too: without it every row costs a query.
    list_select_related = ("market", "taker_order", "maker_order", "fee_asset")
    date_hierarchy = "created_at"


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = (
        "trade",
        "order",
        "account",
        "market",
        "side",
        "liquidity",
        "quantity",
        "price",
        "fee",
        "created_at",
    )
    list_filter = ("market", "side", "liquidity", "created_at")
    search_fields = ("trade__trade_id", "order__order_id", "account__account_id")
    list_select_related = ("trade", "order", "account", "market")
    date_hierarchy = "created_at"

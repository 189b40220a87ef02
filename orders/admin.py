"""Operator screens for orders and trades (read-only: orders change only through the services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from ledger.admin import ReadOnlyAdmin
from orders.models import Order, Trade


class TradeInline(admin.TabularInline):
    model = Trade
    fields = (
        "trade_id",
        "quantity",
        "price",
        "quote_amount",
        "fee",
        "fee_asset",
        "reference_price",
        "journal_entry",
        "created_at",
    )
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
        "status",
        "quantity",
        "quote_quantity",
        "filled_quantity",
        "average_price",
        "fee",
        "reject_reason",
        "created_at",
    )
    list_filter = ("status", "side", "order_type", "market", "reject_reason", "created_at")
    search_fields = ("order_id", "client_order_id", "account__account_id", "account__owner__username")
    list_select_related = ("account", "market")
    date_hierarchy = "created_at"
    inlines = [TradeInline]


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = (
        "trade_id",
        "order",
        "account",
        "market",
        "side",
        "quantity",
        "price",
        "quote_amount",
        "fee",
        "fee_asset",
        "created_at",
    )
    list_filter = ("market", "side", "created_at")
    search_fields = ("trade_id", "order__order_id", "account__account_id")
    # fee_asset is a column too: without it every row costs a query.
    list_select_related = ("order", "account", "market", "fee_asset")
    date_hierarchy = "created_at"

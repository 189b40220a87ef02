"""Operator screens for markets: editable (every change kept in history, prices set through the service)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from exchange import errors
from markets import services
from markets.models import Market, MarketStatus
from orders import services as order_services


class MarketForm(forms.ModelForm):
    def clean_reference_price(self) -> Any:
        # The service's own rules (positive, the quote asset's decimals), shown as a field error instead of
        # failing in save_model.
        price = self.cleaned_data["reference_price"]
        try:
            return services.market_price_parse(market=self.instance, price=price)
        except errors.InvalidAmount as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Market)
class MarketAdmin(SimpleHistoryAdmin):
    form = MarketForm
    list_display = (
        "symbol",
        "status",
        "reference_price",
        "spread_bps",
        "taker_fee_bps",
        "min_notional",
        "max_notional",
        "price_updated_at",
    )
    list_filter = ("status", "quote_asset")
    search_fields = ("symbol",)
    readonly_fields = ("symbol", "base_asset", "quote_asset", "price_updated_at", "updated_at")
    actions = ["halt", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Market, form: Any, change: bool) -> None:
        # The price goes through the service (validation, lock, history with the operator); the trading rules
        # are plain settings saved with the operator recorded in history.
        price = obj.reference_price
        obj._history_user = request.user  # type: ignore[attr-defined]
        if "reference_price" in form.changed_data:
            original = Market.objects.get(pk=obj.pk)
            obj.reference_price = original.reference_price
            super().save_model(request, obj, form, change)
            order_services.market_price_set(market=obj, price=price, actor=request.user, reason="admin")
            obj.refresh_from_db()
        else:
            super().save_model(request, obj, form, change)

    @admin.action(description="Halt trading on selected markets")
    def halt(self, request: HttpRequest, queryset: Any) -> None:
        for market in queryset:
            order_services.market_status_set(
                market=market, status=MarketStatus.HALTED, actor=request.user, reason="admin: halt"
            )

    @admin.action(description="Resume trading on selected markets")
    def resume(self, request: HttpRequest, queryset: Any) -> None:
        for market in queryset:
            order_services.market_status_set(
                market=market, status=MarketStatus.TRADING, actor=request.user, reason="admin: resume"
            )

"""Operator screens for markets: editable (every change kept in history, prices set through the service)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from exchange import errors
from exchange.admin_actions import ALREADY, DONE, ActionForm, ObjectAction, action_links, action_urls
from exchange.api import money_text
from markets import services
from markets.models import Market, MarketStatus
from orders import services as order_services

# The settings the house's ladder is derived from (markets/ladder.py): changing one moves the book.
LADDER_FIELDS = {"spread_bps", "house_quoting", "ladder_levels", "ladder_step_bps", "ladder_size", "price_tick"}


class PriceForm(ActionForm):
    price = forms.CharField(max_length=40, help_text="The new reference (mid) price, at the quote asset's precision.")
    reason = forms.CharField(max_length=100, required=False, help_text="Kept in the market's history.")


class StatusForm(ActionForm):
    reason = forms.CharField(max_length=100, required=False, help_text="Kept in the market's history.")


def _set_price(request: HttpRequest, market: Market, data: dict[str, Any]) -> tuple[int, str]:
    market = services.market_set_price(
        market=market, price=data["price"].strip(), actor=request.user, reason=data.get("reason") or "admin: price"
    )
    return DONE, f"{market.symbol} reference price set to {money_text(market.reference_price, market.quote_asset_id)}."


def _set_status(status: str) -> Any:
    def perform(request: HttpRequest, market: Market, data: dict[str, Any]) -> tuple[int, str]:
        market.refresh_from_db(fields=["status"])
        if market.status == status:
            return ALREADY, f"{market.symbol} is already {status}."
        services.market_set_status(
            market=market, status=status, actor=request.user, reason=data.get("reason") or f"admin: {status}"
        )
        return DONE, f"{market.symbol} is now {status}."

    return perform


MARKET_ACTIONS = [
    ObjectAction("set-price", "Set price", PriceForm, _set_price),
    ObjectAction(
        "halt",
        "Halt",
        StatusForm,
        _set_status(MarketStatus.HALTED),
        help="Orders on a halted market are rejected (market_halted) until it resumes.",
        danger=True,
    ),
    ObjectAction("resume", "Resume", StatusForm, _set_status(MarketStatus.TRADING)),
]


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
        "price_text",
        "spread_bps",
        "taker_fee_bps",
        "min_notional",
        "max_notional",
        "price_updated_at",
    )
    list_filter = ("status", "quote_asset")
    search_fields = ("symbol",)
    readonly_fields = ("symbol", "base_asset", "quote_asset", "book_sequence", "price_updated_at", "updated_at")
    actions = ["halt", "resume"]
    change_form_template = "admin/exchange/change_form_with_actions.html"

    def get_urls(self) -> list[Any]:
        return action_urls(self, MARKET_ACTIONS) + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        market = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if market is not None:
            extra["title"] = f"Market {market.symbol} ({market.status})"
            extra["object_actions"] = action_links(self, market, MARKET_ACTIONS)
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="reference price", ordering="reference_price")
    def price_text(self, obj: Market) -> str:
        return money_text(obj.reference_price, obj.quote_asset_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Market, form: Any, change: bool) -> None:
        # Only the fields the operator edited are written: the rest of the row (the book's sequence, a price or a
        # status set meanwhile) is not written back as the form last saw it. The price and the status go through
        # their services (validation, lock, history with the operator, the house's quotes sweeping what they
        # cross); so does any other change of the house's ladder.
        obj._history_user = request.user  # type: ignore[attr-defined]
        price, status = obj.reference_price, obj.status
        rules = [name for name in form.changed_data if name not in ("reference_price", "status")]
        if rules:
            original = Market.objects.get(pk=obj.pk)
            obj.reference_price, obj.status = original.reference_price, original.status
            obj.save(update_fields=[*rules, "updated_at"])
        if "reference_price" in form.changed_data:
            order_services.market_price_set(market=obj, price=price, actor=request.user, reason="admin")
        elif LADDER_FIELDS & set(rules):
            order_services.market_quotes_refresh(market=obj, actor=request.user, reason="admin: house quotes")
        if "status" in form.changed_data:
            order_services.market_status_set(market=obj, status=status, actor=request.user, reason="admin")
        obj.refresh_from_db()

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

"""Input and output shapes of the markets API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from exchange.api import AmountField, AssetAmountField, format_amount
from ledger.selectors import asset_map
from markets.market_data import INTERVALS, best_prices
from markets.models import Market
from markets.services import effective_fee_bps, effective_maker_fee_bps, effective_spread_bps, ladder_settings


def _fmt(value: Decimal | None, asset_code: str | None) -> str | None:
    asset = asset_map().get(asset_code or "")
    return format_amount(value, asset.decimals if asset else None)


class MarketOut(serializers.Serializer):
    symbol = serializers.CharField()
    base_asset = serializers.CharField(source="base_asset_id")
    quote_asset = serializers.CharField(source="quote_asset_id")
    status = serializers.CharField()
    price = AssetAmountField(source="reference_price", asset="quote_asset_id", help_text="Reference (mid) price.")
    bid = serializers.SerializerMethodField(help_text="Best bid of the book (house and customers).")
    ask = serializers.SerializerMethodField(help_text="Best ask of the book (house and customers).")
    spread_bps = serializers.SerializerMethodField(help_text="The house's quoted spread around the price.")
    taker_fee_bps = serializers.SerializerMethodField()
    maker_fee_bps = serializers.SerializerMethodField()
    price_tick = serializers.SerializerMethodField(help_text="Limit prices are multiples of this.")
    quantity_step = serializers.SerializerMethodField()
    min_quantity = serializers.SerializerMethodField()
    min_notional = serializers.SerializerMethodField()
    max_notional = serializers.SerializerMethodField()
    house_quoting = serializers.BooleanField()
    ladder = serializers.SerializerMethodField(help_text="The house's ladder: levels per side, spacing, size.")
    book_sequence = serializers.IntegerField()
    price_updated_at = serializers.DateTimeField()

    def _best(self, obj: Market) -> tuple[Decimal | None, Decimal | None]:
        """(bid, ask), read once per market for both fields."""
        cached = getattr(obj, "_best_cache", None)
        if cached is None:
            cached = best_prices(market=obj)
            obj._best_cache = cached  # type: ignore[attr-defined]
        return cached

    def get_bid(self, obj: Market) -> str | None:
        return _fmt(self._best(obj)[0], obj.quote_asset_id)

    def get_ask(self, obj: Market) -> str | None:
        return _fmt(self._best(obj)[1], obj.quote_asset_id)

    def get_spread_bps(self, obj: Market) -> str | None:
        return format_amount(effective_spread_bps(obj))

    def get_taker_fee_bps(self, obj: Market) -> str | None:
        return format_amount(effective_fee_bps(obj))

    def get_maker_fee_bps(self, obj: Market) -> str | None:
        return format_amount(effective_maker_fee_bps(obj))

    def get_price_tick(self, obj: Market) -> str | None:
        return format_amount(obj.price_tick)

    def get_quantity_step(self, obj: Market) -> str | None:
        return format_amount(obj.quantity_step)

    def get_min_quantity(self, obj: Market) -> str | None:
        return format_amount(obj.min_quantity)

    def get_min_notional(self, obj: Market) -> str | None:
        return format_amount(obj.min_notional)

    def get_max_notional(self, obj: Market) -> str | None:
        return format_amount(obj.max_notional)

    def get_ladder(self, obj: Market) -> dict[str, Any]:
        settings = ladder_settings(obj)
        return {
            "levels": settings.levels,
            "step_bps": format_amount(settings.step_bps),
            "size": format_amount(settings.size),
        }


def _levels(levels: list[tuple[Decimal, Decimal]], market: Market) -> list[list[str | None]]:
    return [[_fmt(p, market.quote_asset_id), _fmt(q, market.base_asset_id)] for p, q in levels]


def book_out(view: Any, market: Market) -> dict[str, Any]:
    return {
        "symbol": view.symbol,
        "sequence": view.sequence,
        "timestamp": view.timestamp.isoformat().replace("+00:00", "Z"),
        "bids": _levels(view.bids, market),
        "asks": _levels(view.asks, market),
    }


class BookOut(serializers.Serializer):
    """Documentation of the book's shape (``book_out`` renders it: levels are [price, quantity] string pairs)."""

    symbol = serializers.CharField()
    sequence = serializers.IntegerField(help_text="Increases with every change of the book.")
    timestamp = serializers.DateTimeField()
    bids = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    asks = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))


class TapeTradeOut(serializers.Serializer):
    trade_id = serializers.UUIDField()
    price = AssetAmountField(asset="market.quote_asset_id")
    quantity = AssetAmountField(asset="market.base_asset_id")
    taker_side = serializers.CharField()
    executed_at = serializers.DateTimeField(source="created_at")


class TickerOut(serializers.Serializer):
    symbol = serializers.CharField()
    last = serializers.SerializerMethodField()
    bid = serializers.SerializerMethodField()
    ask = serializers.SerializerMethodField()
    open = serializers.SerializerMethodField()
    high = serializers.SerializerMethodField()
    low = serializers.SerializerMethodField()
    volume = serializers.SerializerMethodField()
    quote_volume = serializers.SerializerMethodField()
    trades = serializers.IntegerField()
    change_percent = serializers.SerializerMethodField()
    timestamp = serializers.DateTimeField()

    def _q(self, value: Decimal | None) -> str | None:
        return _fmt(value, self.context["market"].quote_asset_id)

    def get_last(self, obj: Any) -> str | None:
        return self._q(obj.last)

    def get_bid(self, obj: Any) -> str | None:
        return self._q(obj.bid)

    def get_ask(self, obj: Any) -> str | None:
        return self._q(obj.ask)

    def get_open(self, obj: Any) -> str | None:
        return self._q(obj.open)

    def get_high(self, obj: Any) -> str | None:
        return self._q(obj.high)

    def get_low(self, obj: Any) -> str | None:
        return self._q(obj.low)

    def get_volume(self, obj: Any) -> str | None:
        return _fmt(obj.volume, self.context["market"].base_asset_id)

    def get_quote_volume(self, obj: Any) -> str | None:
        return self._q(obj.quote_volume)

    def get_change_percent(self, obj: Any) -> str | None:
        return format_amount(obj.change_percent)


class CandleOut(serializers.Serializer):
    open_time = serializers.DateTimeField()
    open = serializers.SerializerMethodField()
    high = serializers.SerializerMethodField()
    low = serializers.SerializerMethodField()
    close = serializers.SerializerMethodField()
    volume = serializers.SerializerMethodField()
    quote_volume = serializers.SerializerMethodField()
    trades = serializers.IntegerField()

    def _q(self, value: Decimal) -> str | None:
        return _fmt(value, self.context["market"].quote_asset_id)

    def get_open(self, obj: Any) -> str | None:
        return self._q(obj.open)

    def get_high(self, obj: Any) -> str | None:
        return self._q(obj.high)

    def get_low(self, obj: Any) -> str | None:
        return self._q(obj.low)

    def get_close(self, obj: Any) -> str | None:
        return self._q(obj.close)

    def get_volume(self, obj: Any) -> str | None:
        return _fmt(obj.volume, self.context["market"].base_asset_id)

    def get_quote_volume(self, obj: Any) -> str | None:
        return self._q(obj.quote_volume)


class BookIn(serializers.Serializer):
    depth = serializers.IntegerField(required=False, min_value=1, max_value=500, default=20)


class TapeIn(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=50)


class CandlesIn(serializers.Serializer):
    interval = serializers.ChoiceField(choices=sorted(INTERVALS), required=False, default="1m")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


class MarketPriceIn(serializers.Serializer):
    price = AmountField()
    reason = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class MarketStatusIn(serializers.Serializer):
    reason = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

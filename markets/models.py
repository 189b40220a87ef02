"""Markets: what can be traded, at which reference price, under which rules.

A market's row is also the lock that serializes matching on it (exchange/locking.py, level 1). Every change to a
market (price, spread, fees, status, rules) is kept in its history, so the price behind every fill is traceable.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from ledger.models import money_field


class MarketStatus(models.TextChoices):
    TRADING = "trading", "Trading"
    HALTED = "halted", "Halted"


class Market(models.Model):
    symbol = models.CharField(max_length=20, unique=True)
    base_asset = models.ForeignKey("ledger.Asset", on_delete=models.PROTECT, related_name="base_markets")
    quote_asset = models.ForeignKey("ledger.Asset", on_delete=models.PROTECT, related_name="quote_markets")
    quantity_step = money_field(help_text="Order quantities (base) must be a multiple of this.")
    min_quantity = money_field()
    price_tick = money_field(
        default=Decimal("0.01"), help_text="Limit prices (quote per base) must be a multiple of this."
    )
    min_notional = money_field(help_text="In the quote asset.")
    max_notional = money_field(help_text="In the quote asset.")
    status = models.CharField(max_length=10, choices=MarketStatus.choices, default=MarketStatus.TRADING)
    reference_price = money_field(help_text="Mid price in the quote asset, set by operators.")
    # Empty means "the configured default" (configuration service keys trading.default_spread_bps,
    # trading.default_taker_fee_bps, trading.default_maker_fee_bps, market_making.*).
    spread_bps = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="House quotes: distance between its best bid and ask.",
    )
    taker_fee_bps = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    maker_fee_bps = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    # The house's ladder of quotes around the reference price (markets/ladder.py). It is derived from these
    # settings, the reference price and the house's inventory on every read, never stored as order rows.
    house_quoting = models.BooleanField(default=True, help_text="Whether the house quotes a ladder in this market.")
    ladder_levels = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Price levels per side.")
    ladder_step_bps = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True, help_text="Distance between two levels."
    )
    ladder_size = money_field(
        null=True, blank=True, help_text="Base quantity the house quotes at each level (empty: the configured default)."
    )
    # Increases with every change of the book (an order resting, filled or cancelled, or the house's ladder moving
    # with the reference price), under the market's row lock.
    book_sequence = models.BigIntegerField(default=0)
    price_updated_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Every price, spread, fee and status change is kept, so the price behind every fill can be traced.
    history = HistoricalRecords(excluded_fields=["book_sequence"])

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(condition=Q(reference_price__gt=0), name="market_price_positive"),
            models.CheckConstraint(condition=Q(quantity_step__gt=0), name="market_step_positive"),
            models.CheckConstraint(
                condition=Q(min_notional__lte=models.F("max_notional")), name="market_notional_range"
            ),
            models.CheckConstraint(
                condition=Q(spread_bps__isnull=True) | Q(spread_bps__gte=0, spread_bps__lt=10000),
                name="market_spread_range",
            ),
            models.CheckConstraint(
                condition=Q(taker_fee_bps__isnull=True) | Q(taker_fee_bps__gte=0, taker_fee_bps__lt=10000),
                name="market_fee_range",
            ),
            models.CheckConstraint(
                condition=Q(maker_fee_bps__isnull=True) | Q(maker_fee_bps__gte=0, maker_fee_bps__lt=10000),
                name="market_maker_fee_range",
            ),
            models.CheckConstraint(condition=Q(price_tick__gt=0), name="market_tick_positive"),
            models.CheckConstraint(
                condition=Q(ladder_step_bps__isnull=True) | Q(ladder_step_bps__gte=0, ladder_step_bps__lt=10000),
                name="market_ladder_step_range",
            ),
            models.CheckConstraint(
                condition=Q(ladder_size__isnull=True) | Q(ladder_size__gte=0), name="market_ladder_size_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.symbol


class Candle(models.Model):
    """One minute of a market's trading (open, high, low, close, volumes), kept up to date by every trade in the
    same transaction, so candles and the 24-hour ticker cost a bounded read whatever the number of trades.
    Longer intervals (5m ... 1d) are aggregated from these at read time."""

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="candles")
    open_time = models.DateTimeField()
    open = money_field()
    high = money_field()
    low = money_field()
    close = money_field()
    volume = money_field(default=Decimal(0), help_text="Base quantity traded.")
    quote_volume = money_field(default=Decimal(0), help_text="Quote value traded (taker's side).")
    trades = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["market", "open_time"], name="candle_market_minute_uniq")]

    def __str__(self) -> str:
        return f"{self.market_id} {self.open_time:%Y-%m-%d %H:%M}"

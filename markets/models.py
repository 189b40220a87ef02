"""Markets: what can be traded, at which reference price, under which rules.

A market's row is also the lock that serializes matching on it (exchange/locking.py, level 1). Every change to a
market (price, spread, fees, status, rules) is kept in its history, so the price behind every fill is traceable.
"""

from __future__ import annotations

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
    min_notional = money_field(help_text="In the quote asset.")
    max_notional = money_field(help_text="In the quote asset.")
    status = models.CharField(max_length=10, choices=MarketStatus.choices, default=MarketStatus.TRADING)
    reference_price = money_field(help_text="Mid price in the quote asset, set by operators.")
    # Empty means "the configured default" (configuration service key trading.default_spread_bps / _taker_fee_bps).
    spread_bps = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    taker_fee_bps = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    price_updated_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Every price, spread, fee and status change is kept, so the price behind every fill can be traced.
    history = HistoricalRecords()

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
        ]

    def __str__(self) -> str:
        return self.symbol

"""Orders and trades (fills).

A market order fills at once against house liquidity (see orders/services.py), so it ends ``filled`` or
``rejected``. The model already carries what limit orders need (a limit price, ``open`` and
``partially_filled`` states, filled quantities accumulated over several trades, cancellation), so they can come
later without a rewrite.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from ledger.models import money_field


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    OPEN = "open", "Open"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


CANCELABLE_STATUSES = (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class Order(models.Model):
    order_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="orders")
    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=10, choices=OrderType.choices)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    # Exactly one of quantity (base) and quote_quantity sizes the order.
    quantity = money_field(null=True, blank=True)
    quote_quantity = money_field(null=True, blank=True)
    price = money_field(null=True, blank=True, help_text="Limit price; empty for market orders.")
    # NULL, not "", when absent: the per-account uniqueness applies only to ids the client chose.
    client_order_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Fingerprint of the request's parameters: a retry with the same client_order_id must match it.
    request_hash = models.CharField(max_length=64, blank=True, default="")
    filled_quantity = money_field(default=Decimal(0))
    filled_quote = money_field(default=Decimal(0), help_text="Quote value of the fills, before fees.")
    average_price = money_field(null=True, blank=True)
    fee = money_field(default=Decimal(0))
    fee_asset = models.ForeignKey("ledger.Asset", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reject_reason = models.CharField(max_length=40, blank=True, default="")
    reject_message = models.CharField(max_length=300, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    # Status changes are audited with who and when.
    history = HistoricalRecords(excluded_fields=["request_hash"])

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"],
                condition=Q(client_order_id__isnull=False),
                name="order_client_order_id_per_account",
            ),
            models.CheckConstraint(
                condition=Q(quantity__isnull=False) | Q(quote_quantity__isnull=False), name="order_has_size"
            ),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(fee__gte=0), name="order_fills_non_negative"
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(reject_reason=""), name="order_rejection_has_reason"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-id"]),
            models.Index(fields=["market", "-id"]),
            models.Index(fields=["status", "-id"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.market_id} {self.order_id} ({self.status})"


class Trade(models.Model):
    """One fill of an order against the house, settled by exactly one journal entry."""

    trade_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="trades")
    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="trades")
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = money_field()
    price = money_field()
    quote_amount = money_field(help_text="quantity x price, rounded in the house's favour.")
    fee = money_field()
    fee_asset = models.ForeignKey("ledger.Asset", on_delete=models.PROTECT, related_name="+")
    liquidity = models.CharField(max_length=5, default="taker")
    # What priced the fill: the market's reference price, spread and fee at that moment.
    reference_price = money_field()
    spread_bps = models.DecimalField(max_digits=8, decimal_places=2)
    fee_bps = models.DecimalField(max_digits=8, decimal_places=2)
    journal_entry = models.OneToOneField("ledger.JournalEntry", on_delete=models.PROTECT, related_name="trade")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0) & Q(price__gt=0) & Q(fee__gte=0), name="trade_amounts_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-id"]),
            models.Index(fields=["market", "-id"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.market_id} @ {self.price}"

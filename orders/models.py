"""Orders, trades and fills: the central limit order book of each market.

* An ``Order`` is what a customer asked for (market or limit, size, time in force, post-only, self-trade
  prevention) and its state: ``open`` and ``partially_filled`` orders rest in the book; ``filled``, ``cancelled``,
  ``expired`` and ``rejected`` are final. ``filled_quantity + remaining_quantity = quantity`` always holds, and a
  resting order holds in ``locked`` exactly the part of its reservation it has not spent yet (orders/matching.py
  explains the arithmetic); the sum of ``locked`` over an account's resting orders equals its locked balance.
* A ``Trade`` is one match between a taker (the incoming order) and a maker (a resting order, or the house's
  quote when ``maker_order`` is empty), settled by exactly one balanced journal entry; it is the public tape.
* A ``Fill`` is one customer's side of a trade (its order, side, amounts, fee, maker or taker): what an account
  sees as its trades. A customer-to-customer trade has two fills, a trade with the house one.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from ledger.models import money_field


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"


class TimeInForce(models.TextChoices):
    GTC = "gtc", "Good till cancelled"
    IOC = "ioc", "Immediate or cancel"
    FOK = "fok", "Fill or kill"


class SelfTradePrevention(models.TextChoices):
    EXPIRE_TAKER = "expire_taker", "Expire the incoming order"
    EXPIRE_MAKER = "expire_maker", "Expire the resting order"
    EXPIRE_BOTH = "expire_both", "Expire both"


class OrderStatus(models.TextChoices):
    OPEN = "open", "Open"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


RESTING_STATUSES = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
FINAL_STATUSES = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class Liquidity(models.TextChoices):
    MAKER = "maker", "Maker"
    TAKER = "taker", "Taker"


class Order(models.Model):
    order_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="orders")
    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=10, choices=OrderType.choices)
    # Empty for market orders.
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, blank=True, default="")
    post_only = models.BooleanField(default=False)
    self_trade_prevention = models.CharField(
        max_length=12, choices=SelfTradePrevention.choices, default=SelfTradePrevention.EXPIRE_TAKER
    )
    status = models.CharField(max_length=20, choices=OrderStatus.choices)
    # Exactly one of quantity (base) and quote_quantity sizes the order; limit orders always have a quantity.
    quantity = money_field(null=True, blank=True)
    quote_quantity = money_field(null=True, blank=True)
    price = money_field(null=True, blank=True, help_text="Limit price; empty for market orders.")
    # NULL, not "", when absent: the per-account uniqueness applies only to ids the client chose.
    client_order_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Fingerprint of the request's parameters: a retry with the same client_order_id must match it.
    request_hash = models.CharField(max_length=64, blank=True, default="")
    # quantity - filled_quantity (the part not filled, also once the order is final); empty for an order sized by
    # quote_quantity.
    remaining_quantity = money_field(null=True, blank=True)
    # The remaining quantity when the order began to rest (its fills as a maker are rounded cumulatively from
    # there, see orders/matching.py), and the reservation it still holds (quote for a buy, base for a sell).
    rest_quantity = money_field(default=Decimal(0))
    locked = money_field(default=Decimal(0))
    # The fee rates of the market when the order was placed: they apply for the order's whole life.
    maker_fee_bps = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal(0))
    taker_fee_bps = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal(0))
    filled_quantity = money_field(default=Decimal(0))
    filled_quote = money_field(default=Decimal(0), help_text="Quote value of the fills, before fees.")
    average_price = money_field(null=True, blank=True)
    fee = money_field(default=Decimal(0))
    fee_asset = models.ForeignKey("ledger.Asset", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reject_reason = models.CharField(max_length=40, blank=True, default="")
    reject_message = models.CharField(max_length=300, blank=True, default="")
    # Why an order ended cancelled or expired (ExpireReason in orders/matching.py).
    end_reason = models.CharField(max_length=40, blank=True, default="")
    # The chaos injection that acted on the order (chaos/effects.py: a rejection, a lost answer, a fill cap, a
    # widened or thinned house ladder), empty when none did.
    chaos_id = models.CharField(max_length=40, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    filled_at = models.DateTimeField(null=True, blank=True)
    # Every state change is audited with who and when (written by the order path itself, see orders/store.py).
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
            models.CheckConstraint(condition=Q(locked__gte=0), name="order_locked_non_negative"),
            # filled + remaining = quantity is checked by PostgreSQL too (migration 0007; SQLite compares decimals
            # in floating point) and by reconciliation. A resting order has something left; a final one holds
            # nothing.
            models.CheckConstraint(
                condition=~Q(status__in=RESTING_STATUSES) | Q(remaining_quantity__gt=0), name="order_resting_has_rest"
            ),
            models.CheckConstraint(
                condition=Q(status__in=RESTING_STATUSES) | Q(locked=0), name="order_final_holds_nothing"
            ),
            models.CheckConstraint(
                condition=~Q(order_type="limit") | (Q(price__gt=0) & Q(quantity__gt=0)), name="order_limit_priced"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-id"]),
            models.Index(fields=["market", "-id"]),
            models.Index(fields=["status", "-id"]),
            models.Index(fields=["created_at"]),
            # The book: resting orders of a market and side in price-time priority (the id is the time).
            models.Index(
                fields=["market", "side", "price", "id"],
                condition=Q(status__in=RESTING_STATUSES),
                name="order_book_idx",
            ),
            models.Index(fields=["account", "market"], condition=Q(status__in=RESTING_STATUSES), name="order_open_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.market_id} {self.order_id} ({self.status})"

    @property
    def is_resting(self) -> bool:
        return self.status in RESTING_STATUSES


class Trade(models.Model):
    """One match: the taker (the incoming order; empty for the house taking crossed customer orders after its
    quotes moved) against the maker (a resting order; empty for the house's quote). Settled by one journal entry.

    Amounts: the buyer pays ``quote`` of its side and the seller receives ``quote`` of its side; the two differ by
    at most a unit of the quote asset's rounding (orders/matching.py), which goes to fee revenue with the fees."""

    trade_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="trades")
    price = money_field()
    quantity = money_field()
    taker_side = models.CharField(max_length=4, choices=Side.choices)
    taker_order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="taker_trades")
    taker_account = models.ForeignKey(
        "accounts.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="taker_trades"
    )
    taker_quote = money_field()
    taker_fee = money_field(default=Decimal(0))
    taker_fee_bps = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal(0))
    maker_order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="maker_trades")
    maker_account = models.ForeignKey(
        "accounts.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="maker_trades"
    )
    maker_quote = money_field()
    maker_fee = money_field(default=Decimal(0))
    maker_fee_bps = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal(0))
    fee_asset = models.ForeignKey("ledger.Asset", on_delete=models.PROTECT, related_name="+")
    # The market's reference price and house spread when the trade happened, so every price stays traceable.
    reference_price = money_field()
    spread_bps = models.DecimalField(max_digits=8, decimal_places=2)
    journal_entry = models.OneToOneField("ledger.JournalEntry", on_delete=models.PROTECT, related_name="trade")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0) & Q(price__gt=0) & Q(taker_fee__gte=0) & Q(maker_fee__gte=0),
                name="trade_amounts_positive",
            ),
            # At most one side is the house, and a customer side has both its order and its account.
            models.CheckConstraint(
                condition=Q(taker_order__isnull=False) | Q(maker_order__isnull=False), name="trade_has_a_customer"
            ),
            models.CheckConstraint(
                condition=Q(taker_order__isnull=True, taker_account__isnull=True)
                | Q(taker_order__isnull=False, taker_account__isnull=False),
                name="trade_taker_complete",
            ),
            models.CheckConstraint(
                condition=Q(maker_order__isnull=True, maker_account__isnull=True)
                | Q(maker_order__isnull=False, maker_account__isnull=False),
                name="trade_maker_complete",
            ),
            models.CheckConstraint(
                condition=Q(taker_account__isnull=True)
                | Q(maker_account__isnull=True)
                | ~Q(taker_account=F("maker_account")),
                name="trade_no_self_trade",
            ),
        ]
        indexes = [
            models.Index(fields=["market", "-id"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.taker_side} {self.quantity} {self.market_id} @ {self.price}"


class Fill(models.Model):
    """One customer's side of a trade: what ``GET /api/v1/trades`` lists for an account and what its order's
    ``fills`` show."""

    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="fills")
    market = models.ForeignKey("markets.Market", on_delete=models.PROTECT, related_name="fills")
    side = models.CharField(max_length=4, choices=Side.choices)
    liquidity = models.CharField(max_length=5, choices=Liquidity.choices)
    price = money_field()
    quantity = money_field()
    quote_amount = money_field(help_text="What this side paid (buy) or received before the fee (sell).")
    fee = money_field()
    fee_asset = models.ForeignKey("ledger.Asset", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trade", "order"], name="fill_one_per_trade_and_order"),
            models.CheckConstraint(condition=Q(quantity__gt=0) & Q(fee__gte=0), name="fill_amounts_positive"),
        ]
        indexes = [
            models.Index(fields=["account", "-id"]),
            models.Index(fields=["order", "id"]),
            models.Index(fields=["market", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.market_id} @ {self.price} ({self.liquidity})"

"""The double-entry journal that settles every balance change.

Design overview
---------------
* An ``Asset`` is a unit of account (BTC, ETH, USD, USDT) with its precision: amounts with more decimals than the
  asset allows are refused, never rounded.
* A ``LedgerAccount`` is one bucket of one asset: a customer account's *available* or *locked* funds, or one of the
  exchange's own books: *house liquidity* (the counterparty of every fill), *fee revenue*, and *external* (the
  outside world: deposits come from it, withdrawals go to it, so its balance is the negative of everything held).
  House liquidity and fee revenue are split into a few shards per asset so concurrent fills do not queue on one
  hot row; together the shards are the house's position.
* A ``JournalEntry`` is one business event (deposit, withdrawal, trade, adjustment ...) with two or more
  ``Posting`` rows. The postings of an entry sum to zero per asset; so the sum over every ledger account of an
  asset is always zero: money is never created or destroyed, only moved.
* Entries and postings are append-only. Corrections are new entries (reversals, adjustments).
* Balances are caches of the ledger: ``accounts.Balance`` for customers (available, locked) and
  ``LedgerAccount.balance`` for the exchange's books. They change only inside ``ledger.services.journal_post``, in
  the same database transaction as the postings, under row locks taken in one fixed order.

What the database itself enforces on PostgreSQL (migration 0003): a deferred constraint trigger refuses an entry
whose postings do not sum to zero per asset (or that has fewer than two postings, or an amount finer than its
asset's precision); triggers refuse UPDATE and DELETE on entries and postings; CHECK constraints keep customer and
house balances non-negative and posting amounts non-zero. ``python manage.py reconcile`` proves that the caches
equal the ledger sums.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

# Wide enough for any asset's smallest unit (18 decimals) and far beyond any plausible amount.
MONEY_MAX_DIGITS = 38
MONEY_DECIMAL_PLACES = 18


def money_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


class Asset(models.Model):
    code = models.CharField(max_length=10, primary_key=True)
    name = models.CharField(max_length=50)
    decimals = models.PositiveSmallIntegerField(help_text="Decimal places an amount of this asset may have.")
    # Only for valuing holdings in USD (total_equity_usd); the trading price comes from markets.
    is_fiat = models.BooleanField(default=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)


class LedgerAccountKind(models.TextChoices):
    CUSTOMER_AVAILABLE = "customer_available", "Customer available"
    CUSTOMER_LOCKED = "customer_locked", "Customer locked"
    HOUSE_LIQUIDITY = "house_liquidity", "House liquidity"
    FEE_REVENUE = "fee_revenue", "Fee revenue"
    EXTERNAL = "external", "External / custody"


CUSTOMER_KINDS = (LedgerAccountKind.CUSTOMER_AVAILABLE, LedgerAccountKind.CUSTOMER_LOCKED)
HOUSE_KINDS = (LedgerAccountKind.HOUSE_LIQUIDITY, LedgerAccountKind.FEE_REVENUE, LedgerAccountKind.EXTERNAL)


class LedgerAccount(models.Model):
    kind = models.CharField(max_length=24, choices=LedgerAccountKind.choices)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="ledger_accounts")
    # Set for the customer kinds, empty for the exchange's own books.
    account = models.ForeignKey(
        "accounts.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    shard = models.PositiveSmallIntegerField(default=0)
    # Cache of the sum of this account's postings, for the exchange's books. Customer balances are cached in
    # accounts.Balance instead (available and locked on one row), so this stays 0 for customer kinds.
    balance = money_field(default=Decimal(0))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "asset", "account"],
                condition=Q(account__isnull=False),
                name="ledger_account_customer_uniq",
            ),
            models.UniqueConstraint(
                fields=["kind", "asset", "shard"], condition=Q(account__isnull=True), name="ledger_account_house_uniq"
            ),
            models.CheckConstraint(
                condition=(Q(kind__in=CUSTOMER_KINDS) & Q(account__isnull=False))
                | (Q(kind__in=HOUSE_KINDS) & Q(account__isnull=True)),
                name="ledger_account_owner_matches_kind",
            ),
            # The house cannot give away what it does not hold; external is the outside world and goes negative.
            models.CheckConstraint(
                condition=Q(kind=LedgerAccountKind.EXTERNAL) | Q(balance__gte=0),
                name="ledger_account_balance_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["kind", "asset"])]

    def __str__(self) -> str:
        owner = f"account {self.account_id}" if self.account_id else f"shard {self.shard}"
        return f"{self.kind}:{self.asset_id} ({owner})"


class EntryKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    ADJUSTMENT = "adjustment", "Adjustment"
    TRADE = "trade", "Trade"
    RESERVATION = "reservation", "Reservation (available to locked, for a resting order)"
    RELEASE = "release", "Release (locked to available: a cancelled, expired or filled order)"
    FEE = "fee", "Fee"
    HOUSE_FUNDING = "house_funding", "House funding"
    REVERSAL = "reversal", "Reversal"


class JournalEntry(models.Model):
    entry_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=EntryKind.choices)
    # What caused the entry, e.g. ("order", "<order uuid>") or ("deposit", ""), for tracing.
    reference_type = models.CharField(max_length=30, blank=True, default="")
    reference_id = models.CharField(max_length=64, blank=True, default="")
    # A caller-supplied key that makes the operation safe to retry (a repeat returns this entry).
    idempotency_key = models.CharField(max_length=128, null=True, blank=True, unique=True)
    memo = models.CharField(max_length=500, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="journal_entries"
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = "journal entries"
        indexes = [models.Index(fields=["reference_type", "reference_id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.entry_id}"


class Posting(models.Model):
    # Indexed by (entry, asset) below, which also serves lookups by entry alone.
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="postings", db_index=False)
    ledger_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="postings")
    # Denormalised from the ledger account so per-asset sums and per-customer statements need no join.
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="postings")
    account = models.ForeignKey(
        "accounts.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="postings"
    )
    amount = money_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="posting_amount_non_zero")]
        indexes = [
            models.Index(fields=["account", "-id"]),
            models.Index(fields=["ledger_account"]),
            # The deferred balance check sums an entry's postings per asset: with this index its cost is that of
            # the entry, whatever the history, even before the planner has statistics (it walked the asset index
            # over every posting without it).
            models.Index(fields=["entry", "asset"], name="ledger_posting_entry_asset"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.asset_id} -> {self.ledger_account}"

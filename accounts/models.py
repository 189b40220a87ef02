"""Customer accounts, their per-asset balances (a cache of the ledger) and API keys."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager
from simple_history.models import HistoricalRecords

from ledger.models import money_field


class AccountStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CLOSED = "closed", "Closed"


class Account(models.Model):
    account_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="trading_accounts")
    label = models.CharField(max_length=100, blank=True, default="")
    account_type = models.CharField(max_length=10, default="spot", editable=False)
    status = models.CharField(max_length=10, choices=AccountStatus.choices, default=AccountStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(account_type="spot"), name="account_type_spot")]
        indexes = [models.Index(fields=["owner", "-id"])]

    def __str__(self) -> str:
        return f"{self.label or 'account'} ({self.account_id})"


class Balance(models.Model):
    """Cache of the ledger for one (account, asset): changed only by ledger.services.journal_post."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="balances")
    asset = models.ForeignKey("ledger.Asset", on_delete=models.PROTECT, related_name="balances")
    available = money_field(default=Decimal(0))
    locked = money_field(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="balance_account_asset_uniq"),
            models.CheckConstraint(condition=Q(available__gte=0), name="balance_available_non_negative"),
            models.CheckConstraint(condition=Q(locked__gte=0), name="balance_locked_non_negative"),
        ]
        ordering = ["asset_id"]

    def __str__(self) -> str:
        return f"{self.asset_id}: {self.available} available, {self.locked} locked"

    @property
    def total(self) -> Decimal:
        return self.available + self.locked


class Scope(models.TextChoices):
    READ = "read", "Read"
    TRADE = "trade", "Trade"
    OPERATOR = "operator", "Operator"
    MONITOR = "monitor", "Monitor (read-only oversight)"


# What each scope grants: trade includes read; monitor reads everything an operator reads (every account, risk,
# reconciliation, positions) and moves nothing; operator includes monitor and the operator actions (but not
# trading on other people's accounts: operators act on the books, not on behalf of customers).
SCOPE_GRANTS: dict[str, frozenset[str]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.TRADE: frozenset({Scope.READ, Scope.TRADE}),
    Scope.MONITOR: frozenset({Scope.READ, Scope.MONITOR}),
    Scope.OPERATOR: frozenset({Scope.READ, Scope.MONITOR, Scope.OPERATOR}),
}


class ApiKeyManager(APIKeyManager):
    def assign_key(self, obj: AbstractAPIKey) -> str:
        plain = super().assign_key(obj)
        # The library's primary key is "<prefix>.<hashed key>", which would copy the hash into every history row,
        # admin URL and access-log line. The prefix is unique on its own, so it alone is the id.
        obj.id = obj.prefix
        return plain


class ApiKey(AbstractAPIKey):
    """An API key of a user. Only a SHA-512 hash of the key is stored; the key is shown once, at creation."""

    objects: ClassVar[ApiKeyManager] = ApiKeyManager()

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    scopes = models.JSONField(default=list, help_text='Any of "read", "trade", "operator".')
    last_used_at = models.DateTimeField(null=True, blank=True)
    # The account this key trades on the Binance-compatible API (binance_api/): chosen when the key is made;
    # empty means the user's default account (their oldest open one) at the time of each request.
    account = models.ForeignKey(
        "accounts.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="api_keys"
    )
    # The HMAC signing secret of the Binance-compatible API, encrypted at rest (accounts/signing.py); the plain
    # secret is shown once, at creation. Empty for keys made before signing secrets existed.
    signing_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    history = HistoricalRecords(excluded_fields=["hashed_key", "last_used_at", "signing_secret_encrypted"])

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def granted(self) -> frozenset[str]:
        grants: set[str] = set()
        for scope in self.scopes or []:
            grants |= SCOPE_GRANTS.get(scope, frozenset())
        return frozenset(grants)

    def has_scope(self, scope: str) -> bool:
        return scope in self.granted()

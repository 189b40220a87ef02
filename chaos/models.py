"""Chaos injections: faults an operator or the ecosystem's test coordinator turns on, scoped and timed.

One row per injection, in the database, so every worker and every instance of the service sees the same faults
and an injection ends on its own at ``expires_at`` (also across a restart) or when it is cleared (``cleared_at``).
Rows are never deleted: ``GET /chaos/history`` lists them, and ``affected`` counts the requests and orders each
one acted on (``exchange_chaos_affected_total``). The order path reads the faults in force from a short-lived
per-process snapshot (chaos/state.py), not with a query per request.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ChaosType(models.TextChoices):
    LATENCY = "latency", "Latency"
    REJECT_ORDERS = "reject_orders", "Reject orders"
    DOWNTIME = "downtime", "Downtime"
    SPREADS = "spreads", "Wide spreads"
    LIQUIDITY = "liquidity", "Reduced liquidity"
    RESTORE_LIQUIDITY = "restore_liquidity", "Liquidity restored"
    PARTIAL_FILLS = "partial_fills", "Partial fills"
    UNKNOWN_OUTCOME = "unknown_outcome", "Unknown outcome"
    RATE_LIMITS = "rate_limits", "Tightened rate limits"


def new_chaos_id() -> str:
    return f"chaos_{secrets.token_hex(8)}"


class Injection(models.Model):
    chaos_id = models.CharField(max_length=40, unique=True, default=new_chaos_id, editable=False)
    type = models.CharField(max_length=20, choices=ChaosType.choices)
    # What the fault does (delay_ms, rejection_rate, multiplier, ...), as validated: numbers as strings (Decimal).
    params = models.JSONField(default=dict)
    # Scope: empty lists mean "every" operation, account, market.
    operations = models.JSONField(default=list)
    accounts = models.JSONField(default=list, help_text="Account ids or labels.")
    markets = models.JSONField(default=list, help_text="Market symbols, as BTC-USD.")
    # Every random decision of the injection derives from this seed (given, or drawn and reported).
    seed = models.BigIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_reason = models.CharField(max_length=100, blank=True, default="")
    affected = models.BigIntegerField(default=0, help_text="Requests and orders this injection acted on.")

    class Meta:
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(cleared_at__isnull=True), name="chaos_in_force_idx"),
            models.Index(fields=["type", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.chaos_id}"

    def in_force(self, now=None) -> bool:  # type: ignore[no-untyped-def]
        now = now or timezone.now()
        return self.cleared_at is None and self.expires_at > now

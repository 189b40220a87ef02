"""What moves a market on its own (docs/simulation.md): its price model, and the scenario that set the venue up.

A ``MarketSimulation`` is configuration, never money: the engine (``manage.py run_market``) reads it and sets the
market's reference price through ``orders.services.market_price_set``, so every tick is in the market's history and
the house's ladder fills the resting orders it crosses. A model's path is driven by time from its anchor (price and
moment): the price at a moment is the same whichever instance computes it, so a new leader continues the same path.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from ledger.models import money_field


class ModelKind(models.TextChoices):
    GBM = "gbm", "Geometric Brownian motion"
    OU = "ou", "Ornstein-Uhlenbeck mean reversion"
    REPLAY = "replay", "Replay of a CSV file"
    DERIVED = "derived", "Derived from the USD markets"
    FIXED = "fixed", "Fixed (moved only by set_price)"


class Scenario(models.Model):
    """A loaded scenario file; the newest ``current`` one is what runs (``GET /api/v1/scenarios/current``)."""

    name = models.CharField(max_length=100)
    seed = models.CharField(max_length=100)
    spec = models.JSONField(help_text="The scenario as loaded (validated).")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the canonical spec.")
    loaded_at = models.DateTimeField(auto_now_add=True)
    loaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    current = models.BooleanField(default=True)
    # Indexes of the schedule's halt/resume events already applied (shocks are part of the price paths).
    events_done = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-loaded_at", "-id"]

    def __str__(self) -> str:
        return self.name


class MarketSimulation(models.Model):
    market = models.OneToOneField("markets.Market", on_delete=models.CASCADE, related_name="simulation")
    scenario = models.ForeignKey(Scenario, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=10, choices=ModelKind.choices, default=ModelKind.GBM)
    # Model parameters as strings (simulation/paths.py ModelParams; derived: basis_bps, basis_volatility_bps).
    params = models.JSONField(default=dict, blank=True)
    interval_ms = models.PositiveIntegerField(default=1000, help_text="Tick interval, at least 100 ms.")
    seed = models.CharField(max_length=200)
    lower_bound = money_field(null=True, blank=True)
    upper_bound = money_field(null=True, blank=True)
    replay_file = models.CharField(max_length=500, blank=True)
    replay_speed = models.CharField(max_length=20, default="1x")
    replay_loop = models.BooleanField(default=True)
    # Shocks of the scenario's schedule: [{"at": seconds after the anchor, "percent": "-20"}].
    shocks = models.JSONField(default=list, blank=True)
    anchor_price = money_field(help_text="The path starts here ...")
    anchored_at = models.DateTimeField(help_text="... at this moment (an operator's set_price re-anchors it).")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(interval_ms__gte=100), name="simulation_interval_min"),
            models.CheckConstraint(condition=Q(anchor_price__gt=0), name="simulation_anchor_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.kind}"

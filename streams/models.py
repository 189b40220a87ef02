"""The outbox: one row per committed change a stream may publish (see streams/outbox.py for how rows are written
and streams/hub.py for how they are delivered)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Topic(models.TextChoices):
    ORDER = "order"  # an order row inserted or updated (placement, fill, cancel, expiry, rejection)
    FILL = "fill"  # one side of a trade, as the account that took part sees it
    TRADE = "trade"  # a trade on a market (public)
    BALANCE = "balance"  # a customer balance row changed (deposits, withdrawals, reservations, settlement)
    MARKET = "market"  # a market's book sequence, reference price or status changed


class Event(models.Model):
    """A change, written by a trigger in the transaction that made it (so it exists exactly when the change
    committed), with the row as it was written (``data``). ``seq`` is the delivery sequence, stamped after commit
    by one relay at a time, strictly increasing in stamping order (streams/hub.py); it is the ``id:`` of every
    server-sent event."""

    id = models.BigAutoField(primary_key=True)
    seq = models.BigIntegerField(null=True, unique=True)
    topic = models.CharField(max_length=16, choices=Topic.choices)
    account_id = models.BigIntegerField(null=True, help_text="Internal pk of the account concerned, if one.")
    market_id = models.BigIntegerField(null=True)
    data = models.JSONField(help_text="The row as written (to_jsonb of the new row).")
    created_at = models.DateTimeField(help_text="clock_timestamp() at insert: an upper bound of the commit time.")

    class Meta:
        indexes = [models.Index(fields=["id"], condition=Q(seq__isnull=True), name="streams_event_unstamped")]

    def __str__(self) -> str:
        return f"{self.topic} #{self.seq or '-'}"

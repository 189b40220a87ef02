"""``exchange_chaos_active{type}`` (injections in force) and ``exchange_chaos_affected_total{type}`` (requests and
orders they acted on), read from the table at scrape time, so every worker and instance reports the same figures
and the counter survives restarts (rows are never deleted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily

_registered = False


class ChaosCollector:
    def describe(self) -> Iterator[Any]:
        yield GaugeMetricFamily("exchange_chaos_active", "Chaos injections in force, by type.", labels=["type"])
        yield CounterMetricFamily(
            "exchange_chaos_affected", "Requests and orders chaos injections acted on, by type.", labels=["type"]
        )

    def collect(self) -> Iterator[Any]:
        from django.db.models import Count, Q, Sum
        from django.utils import timezone

        from chaos.models import ChaosType, Injection
        from chaos.services import affected_flush

        active = GaugeMetricFamily("exchange_chaos_active", "Chaos injections in force, by type.", labels=["type"])
        affected = CounterMetricFamily(
            "exchange_chaos_affected", "Requests and orders chaos injections acted on, by type.", labels=["type"]
        )
        try:
            affected_flush()
            rows = {
                row["type"]: row
                for row in Injection.objects.values("type").annotate(
                    active=Count("id", filter=Q(cleared_at__isnull=True, expires_at__gt=timezone.now())),
                    affected=Sum("affected"),
                )
            }
        except Exception:  # the database is down: no chaos figures in this scrape
            return
        for kind in ChaosType.values:
            row = rows.get(kind, {})
            active.add_metric([kind], row.get("active") or 0)
            affected.add_metric([kind], row.get("affected") or 0)
        yield active
        yield affected


def register() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(ChaosCollector())
        _registered = True

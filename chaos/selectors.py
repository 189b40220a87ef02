"""Reads of the chaos injections."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import serializers

from chaos.models import ChaosType, Injection
from exchange.api import PageIn


class HistoryFilterIn(PageIn):
    type = serializers.ChoiceField(choices=ChaosType.choices, required=False)


def injection_in_force() -> list[Injection]:
    """Every injection in force now, oldest first (from the table: the truth, not a process's snapshot)."""
    return list(Injection.objects.filter(cleared_at__isnull=True, expires_at__gt=timezone.now()).order_by("id"))


def injection_history(*, type: str | None = None, **_: Any) -> QuerySet[Injection]:
    qs = Injection.objects.all()
    if type:
        qs = qs.filter(type=type)
    return qs

from __future__ import annotations

from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "markets"
    verbose_name = "Markets"

from __future__ import annotations

from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    """The project package as an app, so it can own the cross-cutting management commands (serve, ...)."""

    name = "exchange"
    verbose_name = "Exchange service"

    def ready(self) -> None:
        from exchange import schema  # noqa: F401 - registers the OpenAPI extensions

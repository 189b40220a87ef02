from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ExchangeAdminConfig(AdminConfig):
    default_site = "exchange.admin_site.ExchangeAdminSite"


class ExchangeConfig(AppConfig):
    """The project package as an app, so it can own the cross-cutting management commands (serve, ...)."""

    name = "exchange"
    verbose_name = "Exchange service"

    def ready(self) -> None:
        from exchange import schema  # noqa: F401 - registers the OpenAPI extensions

"""The admin site operators run the exchange from: readable headings, the dashboard, and a link to it on the index."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path


class ExchangeAdminSite(admin.AdminSite):
    site_header = "exchange-simulator back office"
    site_title = "exchange-simulator admin"
    index_title = "Run the exchange"
    index_template = "admin/exchange/index.html"

    def get_urls(self) -> list[Any]:
        return [path("dashboard/", self.admin_view(self.dashboard), name="dashboard"), *super().get_urls()]

    def dashboard(self, request: HttpRequest) -> HttpResponse:
        from risk.dashboard import dashboard_view

        return dashboard_view(request, self)

"""URL configuration: the API under /api/v1, schema and docs, admin, and /metrics at the root (bearer token)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from exchange.metrics import metrics_view
from exchange.views import HealthApi, ReadyApi, local_only

api_v1 = [
    path("health", HealthApi.as_view(), name="health"),
    path("ready", ReadyApi.as_view(), name="ready"),
    path("", include("accounts.urls")),
    path("", include("markets.urls")),
    path("", include("orders.urls")),
    path("", include("risk.urls")),
    path("", include("ledger.urls")),
    path("", include("streams.urls")),
    path("", include("simulation.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    # Fault injection for the ecosystem's test coordinator (chaos/apis.py), at the root as it expects.
    path("chaos/", include("chaos.urls")),
    # The Binance Spot REST API over the same services (binance_api/).
    path("api/v3/", include("binance_api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", local_only(SpectacularSwaggerView.as_view(url_name="schema")), name="swagger-ui"),
    # drf-spectacular's ReDoc page links Google Fonts; ours is the same page without them.
    path(
        "api/redoc/",
        local_only(SpectacularRedocView.as_view(url_name="schema", template_name="exchange/redoc.html")),
        name="redoc",
    ),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="prometheus-django-metrics"),
]

handler400 = "exchange.exception_handler.handler400"
handler403 = "exchange.exception_handler.handler403"
handler404 = "exchange.exception_handler.handler404"
handler500 = "exchange.exception_handler.handler500"

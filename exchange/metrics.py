"""``GET /metrics``: Prometheus text format, behind a bearer token.

The metrics include operator figures (house inventory, net exposure, customer liabilities, fees) that the API shows
operators only, so they are not anonymous: Prometheus sends ``Authorization: Bearer <METRICS_TOKEN>`` (README,
"Health, readiness and metrics"). The token is compared in constant time. Without ``METRICS_TOKEN``:

* production settings (``METRICS_ALLOW_ANONYMOUS`` off) refuse every scrape with 401, so a deployment that forgot
  the token leaks nothing (the service still starts: metrics are not needed to trade);
* local and test settings serve anonymously, so ``make run`` and ``curl localhost:8080/metrics`` just work.
"""

from __future__ import annotations

import hmac
import os

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import multiprocess

from exchange import errors
from exchange.exception_handler import envelope


def _refused(message: str) -> JsonResponse:
    response = JsonResponse(envelope(errors.NotAuthenticated.code, message), status=401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def ExportToDjangoView(request: HttpRequest) -> HttpResponse:
    """django-prometheus's export (the multiprocess registry under gunicorn), plus the collectors that read the
    database at scrape time and so are the same in every worker (chaos/metrics.py)."""
    from chaos.metrics import ChaosCollector

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(ChaosCollector())
    else:
        registry = prometheus_client.REGISTRY
    return HttpResponse(prometheus_client.generate_latest(registry), content_type=prometheus_client.CONTENT_TYPE_LATEST)


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        if settings.METRICS_ALLOW_ANONYMOUS:
            return ExportToDjangoView(request)
        return _refused("Metrics are disabled: METRICS_TOKEN is not configured.")
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        return _refused("A valid bearer token is required for metrics.")
    return ExportToDjangoView(request)

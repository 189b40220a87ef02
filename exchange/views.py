"""Health endpoints (ECOSYSTEM.md "Ports and health")."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange.health import readiness, utc_now_rfc3339


class HealthApi(APIView):
    """Liveness: the process answers. Never touches a dependency, so a slow database does not get us killed."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {
                "status": serializers.ChoiceField(choices=["healthy"]),
                "timestamp": serializers.DateTimeField(),
                "service": serializers.CharField(),
                "instance": serializers.CharField(),
                "version": serializers.CharField(),
                "environment": serializers.CharField(),
            },
        ),
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "status": "healthy",
                "timestamp": utc_now_rfc3339(),
                "service": settings.SERVICE_NAME,
                "instance": settings.SERVICE_INSTANCE_NAME,
                "version": settings.SERVICE_VERSION,
                "environment": settings.ENVIRONMENT,
            }
        )


READINESS = inline_serializer(
    "Readiness",
    {
        "status": serializers.ChoiceField(choices=["ready", "degraded", "not_ready"]),
        "timestamp": serializers.DateTimeField(),
        "service": serializers.CharField(),
        "instance": serializers.CharField(),
        "checks": serializers.DictField(
            child=serializers.ChoiceField(choices=["ok", "fail", "disabled"]),
            help_text="One entry per dependency: database, redis; and maintenance (fail) while a simulated "
            "downtime is in force.",
        ),
        "details": serializers.DictField(
            child=inline_serializer(
                "ReadinessDetail",
                {
                    "required": serializers.BooleanField(),
                    "latency_ms": serializers.FloatField(),
                    "error": serializers.CharField(required=False),
                },
            )
        ),
        "price_engine": inline_serializer(
            "PriceEngineStatus",
            {
                "enabled": serializers.BooleanField(help_text="PRICE_ENGINE_ENABLED on this instance."),
                "leader": serializers.CharField(
                    allow_null=True, help_text="The process moving prices: <instance>@<host>:<pid>; null when none."
                ),
                "leader_is_this_instance": serializers.BooleanField(),
                "error": serializers.CharField(required=False),
            },
            required=False,
            help_text="Which instance's price engine moves prices (one per database).",
        ),
    },
)


class ReadyApi(APIView):
    """Readiness: 200 when every required dependency answers (Redis may be down: "degraded"), else 503."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    @extend_schema(
        responses={
            200: READINESS,
            503: OpenApiResponse(
                READINESS, description="A required dependency (the database) is down: status not_ready."
            ),
        },
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        result = readiness()
        return Response(result.as_dict(), status=200 if result.ready else 503)


# The docs pages may load nothing but this service's own files: ReDoc's bundle still asks a CDN for its logo, which
# this policy stops before any request leaves the browser (the logo just does not show). Inline scripts and styles
# are the pages' own; ReDoc runs its search in a worker made from a blob.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:"
)


def local_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response

    return wrapped

"""The product's URLs plus ``POST /bench/echo``: the framework's ceiling for an order-shaped request.

The view goes through everything an order request goes through before the service layer runs (every middleware,
API-key authentication with its database lookup, the scope permission, JSON parsing, rendering) and then does
nothing: its throughput is what the web stack alone allows on this machine.
"""

from __future__ import annotations

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import TradeScope
from exchange.urls import handler400, handler403, handler404, handler500
from exchange.urls import urlpatterns as product_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


class EchoApi(APIView):
    """Authenticated (trade scope, like placing an order), parses the JSON body, answers 201 with a small body."""

    permission_classes = [TradeScope]

    def post(self, request: Request) -> Response:
        return Response({"ok": True, "symbol": request.data.get("symbol")}, status=201)


urlpatterns = [path("bench/echo", EchoApi.as_view(), name="bench-echo"), *product_urlpatterns]

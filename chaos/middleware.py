"""Django's side of chaos and rate limits: simulated downtime answers every trading call 503 (the error envelope,
``Retry-After`` until it ends) before anything else runs; the per-key rate limit headers that
exchange/key_limits.py counted are added to the response."""

from __future__ import annotations

import math
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from chaos import effects, services
from chaos.requests import is_trading
from exchange import errors


class ChaosMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_trading(request.path):
            down = effects.downtime()
            if down is not None:
                from exchange.exception_handler import error_response

                services.affected_add(down)
                message = str(down.params.get("error_message") or errors.Maintenance.default_message)
                response = error_response(
                    errors.Maintenance(
                        message,
                        details={"chaos_id": down.chaos_id, "reason": message},
                        retry_after=max(1, math.ceil(down.remaining_s())),
                    )
                )
                response["X-Chaos-Id"] = down.chaos_id
                return response
        token = effects.REQUEST_LATENCY.set(request.META.get("HTTP_X_CHAOS_LATENCY", ""))
        try:
            response = self.get_response(request)
        finally:
            effects.REQUEST_LATENCY.reset(token)
        headers = getattr(request, "key_limit_headers", None)
        if headers:
            for name, value in headers.items():
                response[name] = value
        return response

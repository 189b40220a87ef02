"""Request id and access logging."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

access_log = structlog.get_logger("exchange.access")

# A caller's X-Request-ID is reused when it is short and plain, so ids can be followed across services;
# anything else (too long, odd characters, log-injection attempts) is replaced by a fresh one.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")


class RequestIdMiddleware:
    """Binds a request id to every log line written while handling the request; echoes it in X-Request-ID;
    writes one access line per request with method, route, status and duration."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        # fullmatch, not match: "$" also matches before a trailing newline, which would reach the response header.
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            match = getattr(request, "resolver_match", None)
            access_log.info(
                "request",
                method=request.method,
                route=("/" + match.route) if match and match.route else None,
                path=request.path,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            return response
        finally:
            structlog.contextvars.clear_contextvars()

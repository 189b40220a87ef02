"""Request id and access logging; database outages outside DRF views."""

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


class DatabaseOutageMiddleware:
    """Views outside DRF (the admin, Django's own) answer a database outage as DRF views do: 503
    ``service_unavailable`` with ``Retry-After``, one warning line, no traceback. (DRF views get the same from
    ``exchange.exception_handler``; an outage inside another middleware from ``handler500``.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from exchange.exception_handler import database_unavailable, error_response, is_database_outage

        if not is_database_outage(exception):
            return None
        return error_response(database_unavailable(exception))

"""The one DRF exception handler: every error becomes the project's envelope and the transaction rolls back."""

from __future__ import annotations

import sys
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from exchange import errors
from exchange.request_context import current_request_id

logger = structlog.get_logger("exchange.errors")

# DRF's own exceptions mapped onto our codes, so a client sees one vocabulary.
_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: errors.MalformedRequest.code,
    drf.ValidationError: errors.ValidationFailed.code,
    drf.AuthenticationFailed: errors.NotAuthenticated.code,
    drf.NotAuthenticated: errors.NotAuthenticated.code,
    drf.PermissionDenied: errors.PermissionDenied.code,
    drf.NotFound: errors.NotFound.code,
    drf.MethodNotAllowed: errors.MethodNotAllowed.code,
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: errors.UnsupportedMediaType.code,
    drf.Throttled: errors.RateLimited.code,
}


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": current_request_id(),
        }
    }


def _drf_message(exc: drf.APIException) -> tuple[str, dict[str, Any]]:
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            return "The request is invalid.", {"fields": detail}
        return "The request is invalid.", {"errors": detail}
    if isinstance(exc, drf.ParseError):
        return errors.MalformedRequest.default_message, {}
    if isinstance(exc, drf.Throttled) and exc.wait is not None:
        return str(exc.detail), {"retry_after_seconds": int(exc.wait)}
    return str(exc.detail), {}


# How long a client should wait before retrying when the database is unreachable: a restart or failover takes
# seconds, and the next request reconnects by itself.
DATABASE_RETRY_AFTER = 2


def is_database_outage(exc: BaseException | None) -> bool:
    """The database is down or the connection broke (connect refused or timed out, server restarted, backend
    terminated, statement timeout): the request could not be served now, and a retry may well be."""
    import psycopg
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError))


def database_unavailable(exc: BaseException) -> errors.ServiceUnavailable:
    """The 503 for a database outage, logged as one warning line (no traceback: nothing in our code is wrong)."""
    cause = exc.__cause__ or exc
    logger.warning("database_unavailable", error=f"{type(cause).__name__}: {str(cause).strip()[:300]}")
    return errors.ServiceUnavailable(
        "The database is unavailable; retry shortly.",
        details={"dependency": "database"},
        retry_after=DATABASE_RETRY_AFTER,
    )


def payload_too_large() -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(
        f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
        details={"limit_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    # Nothing half-done is committed, whatever the error (DRF's default handler does the same).
    set_rollback()
    headers: dict[str, str] = {}
    if isinstance(exc, RequestDataTooBig):
        # The client's doing, not a crash: one warning line, no traceback.
        logger.warning("request_body_too_large", limit_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        exc = payload_too_large()
    elif isinstance(exc, DisallowedHost):
        logger.warning("disallowed_host")
        exc = errors.BadRequest()
    elif is_database_outage(exc):
        exc = database_unavailable(exc)
    if isinstance(exc, errors.ExchangeError):
        status, body = exc.status_code, envelope(exc.code, exc.message, exc.details)
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, Http404):
        status, body = 404, envelope(errors.NotFound.code, errors.NotFound.default_message)
    elif isinstance(exc, DjangoPermissionDenied):
        status, body = 403, envelope(errors.PermissionDenied.code, errors.PermissionDenied.default_message)
    elif isinstance(exc, drf.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        message, details = _drf_message(exc)
        status, body = exc.status_code, envelope(code, message, details)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    else:
        # Logged once, with its traceback; the client sees no internals.
        logger.exception("unhandled_exception", exc_type=type(exc).__name__)
        status = 500
        body = envelope(errors.InternalError.code, errors.InternalError.default_message)
    return Response(body, status=status, headers=headers)


# --- Django-level handlers (errors raised outside DRF views) ------------------------------------------------
def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    # Django answers its SuspiciousOperation errors here (a disallowed Host, a body over the upload limit, ...).
    if isinstance(exception, RequestDataTooBig):
        return error_response(payload_too_large())
    return JsonResponse(envelope(errors.BadRequest.code, errors.BadRequest.default_message), status=400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(envelope(errors.PermissionDenied.code, errors.PermissionDenied.default_message), status=403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(envelope(errors.NotFound.code, "No such endpoint."), status=404)


def handler500(request: HttpRequest) -> JsonResponse:
    # Django calls this inside its ``except`` block, so the exception is at hand: a database outage raised by a
    # middleware (before any view) is a 503 like anywhere else.
    exc = sys.exc_info()[1]
    if is_database_outage(exc):
        return error_response(database_unavailable(exc))  # type: ignore[arg-type]
    return JsonResponse(envelope(errors.InternalError.code, errors.InternalError.default_message), status=500)


def error_response(error: errors.ExchangeError) -> JsonResponse:
    """A domain error as a plain Django response (outside DRF), with its Retry-After."""
    response = JsonResponse(envelope(error.code, error.message, error.details), status=error.status_code)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return JsonResponse(envelope("csrf_failed", "CSRF verification failed."), status=403)

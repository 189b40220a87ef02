"""Test-only endpoints that misbehave on purpose, mounted in front of the project's own URLs.

Used with ``@pytest.mark.urls("tests.foundation.urls")``. The project's handler404/handler500 are re-exported
because Django looks them up on the active URLconf, and a test URLconf without them would test Django's defaults.
"""

from __future__ import annotations

import logging

import structlog
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange import errors
from exchange.urls import handler400, handler403, handler404, handler500  # noqa: F401 - looked up by Django
from exchange.urls import urlpatterns as project_urlpatterns

# The message of the crash below: it must reach the log (with its traceback) and never the client.
CRASH_MESSAGE = "ledger invariant broken at /srv/exchange/ledger/services.py line 42"


class EchoApi(APIView):
    """Parses the body, so malformed JSON and unsupported media types reach the parsers."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def post(self, request: Request) -> Response:
        return Response({"received": request.data})


class CrashInTransactionApi(APIView):
    """Writes inside a transaction the way a service does (``@transaction.atomic``), then fails unexpectedly."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def post(self, request: Request) -> Response:
        with transaction.atomic():
            get_user_model().objects.create_user(username=request.data["username"])
            raise RuntimeError(CRASH_MESSAGE)


class WriteThenFailApi(APIView):
    """Writes with no transaction of its own, then fails: only a request-wide transaction can undo the write."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def post(self, request: Request) -> Response:
        get_user_model().objects.create_user(username=request.data["username"])
        if request.data.get("fail") == "business_rule":
            raise errors.BusinessRuleViolation("Refused after the write.")
        raise RuntimeError(CRASH_MESSAGE)


def plain_django_crash(request: HttpRequest) -> HttpResponse:
    """A non-DRF view: its crash goes through Django's handler500, not the DRF exception handler."""
    raise RuntimeError(CRASH_MESSAGE)


# What psycopg raises when the server went away mid-request, as Django re-raises it.
def _lost_connection() -> Exception:
    import psycopg
    from django.db import OperationalError

    try:
        raise psycopg.OperationalError("server closed the connection unexpectedly")
    except psycopg.OperationalError as cause:
        error = OperationalError(str(cause))
        error.__cause__ = cause
        return error


class DatabaseGoneApi(APIView):
    """A DRF view whose query meets a dead database connection."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def get(self, request: Request) -> Response:
        raise _lost_connection()


def plain_database_gone(request: HttpRequest) -> HttpResponse:
    """The same outside DRF (the admin's views are such views)."""
    raise _lost_connection()


class DatabaseGoneInMiddleware:
    """A middleware whose own query meets the dead connection, before any view runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/test/database-gone-in-middleware":
            raise _lost_connection()
        return self.get_response(request)


class ChattyApi(APIView):
    """Logs through structlog and through the standard library while handling the request, carelessly:
    credentials in event fields and in free text, the way real code sometimes does."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    def post(self, request: Request) -> Response:
        structlog.get_logger("tests.chatty").info(
            "login_attempt",
            api_key=request.headers.get("X-Api-Key"),
            password=request.data.get("password"),
            body=request.data,
        )
        logging.getLogger("tests.chatty.stdlib").warning("incoming headers: %s", dict(request.headers))
        structlog.get_logger("tests.chatty").warning(f"upstream replied to Authorization: {request.data.get('relay')}")
        return Response({"ok": True})


urlpatterns = [
    path("test/echo", EchoApi.as_view()),
    path("test/crash-in-transaction", CrashInTransactionApi.as_view()),
    path("test/write-then-fail", WriteThenFailApi.as_view()),
    path("test/plain-django-crash", plain_django_crash),
    path("test/chatty", ChattyApi.as_view()),
    path("test/database-gone", DatabaseGoneApi.as_view()),
    path("test/plain-database-gone", plain_database_gone),
    *project_urlpatterns,
]

"""Every error answers with the one envelope, never leaks internals, and leaves nothing half-done.

{"error": {"code": "...", "message": "...", "details": {...}, "request_id": "..."}}
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.http import HttpResponse

from tests.foundation.urls import CRASH_MESSAGE

pytestmark = pytest.mark.urls("tests.foundation.urls")


def error_of(response: HttpResponse, status: int, code: str) -> dict[str, Any]:
    """The envelope's ``error`` object, after checking the parts every error response shares."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    # The id in the body is the one in the header and in the log, so a report can be traced.
    assert error["request_id"] and error["request_id"] == response["X-Request-ID"]
    return error


def assert_no_internals(response: HttpResponse) -> None:
    text = response.content.decode()
    for leak in (CRASH_MESSAGE, "Traceback", "RuntimeError", "/srv/", ".py"):
        assert leak not in text, f"{leak!r} leaked into the response: {text}"


# --- 4xx -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/no/such/page", "/api/v1/no-such-endpoint", "/api/v1/health/extra"])
def test_unknown_url_answers_404_envelope(api_client, path):
    error_of(api_client.get(path), 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [("post", "/api/v1/health"), ("delete", "/api/v1/ready")])
def test_unsupported_method_answers_405_envelope(api_client, method, path):
    error = error_of(getattr(api_client, method)(path), 405, "method_not_allowed")
    assert method.upper() in error["message"]


def test_malformed_json_answers_400_malformed_json(api_client):
    response = api_client.post("/test/echo", data='{"asset": "BTC", "amount": ', content_type="application/json")

    error = error_of(response, 400, "malformed_json")
    # The parser's own wording (line/column, Python exception text) is not part of the contract.
    assert error["message"] == "The request body is not valid JSON."


def test_well_formed_json_reaches_the_view(api_client):
    response = api_client.post("/test/echo", data={"asset": "BTC"}, content_type="application/json")

    assert response.status_code == 200
    assert response.json() == {"received": {"asset": "BTC"}}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", "asset=BTC"), ("application/x-www-form-urlencoded", "asset=BTC"), ("application/xml", "<a/>")],
)
def test_non_json_body_answers_415(api_client, content_type, body):
    error_of(api_client.post("/test/echo", data=body, content_type=content_type), 415, "unsupported_media_type")


def test_disallowed_host_answers_400_envelope_outside_drf(api_client, settings):
    """Django rejects the Host header before any view runs; handler400 still answers with the envelope."""
    settings.ALLOWED_HOSTS = ["exchange.internal"]

    error_of(api_client.get("/api/v1/health", headers={"Host": "attacker.example"}), 400, "bad_request")


# --- 5xx -------------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_crash_in_drf_view_answers_500_without_internals(api_client, captured_log):
    response = api_client.post(
        "/test/crash-in-transaction", data={"username": "mallory"}, content_type="application/json"
    )

    error = error_of(response, 500, "internal_error")
    assert_no_internals(response)
    assert error["details"] == {}


@pytest.mark.django_db(transaction=True)
def test_crash_in_drf_view_is_logged_once_with_traceback_under_the_request_id(api_client, captured_log):
    response = api_client.post(
        "/test/crash-in-transaction", data={"username": "mallory"}, content_type="application/json"
    )

    request_id = response["X-Request-ID"]
    errors = [line for line in captured_log.lines if line["level"] in {"error", "critical"}]
    assert len(errors) == 1, errors
    [logged] = errors
    assert logged["request_id"] == request_id
    assert logged["message"] == "unhandled_exception"
    assert "Traceback (most recent call last)" in logged["exception"]
    assert f"RuntimeError: {CRASH_MESSAGE}" in logged["exception"]
    # The crash still gets its access line, so the request is never missing from the log.
    assert captured_log.where(logger="exchange.access", request_id=request_id, status=500)


@pytest.mark.django_db(transaction=True)
def test_crash_rolls_back_the_transaction_the_view_started(api_client):
    api_client.post("/test/crash-in-transaction", data={"username": "mallory"}, content_type="application/json")

    assert not get_user_model().objects.filter(username="mallory").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("fail", "status", "code"), [("crash", 500, "internal_error"), ("business_rule", 422, "business_rule_violation")]
)
def test_error_rolls_back_the_request_transaction_when_atomic_requests_is_on(
    api_client, monkeypatch, fail, status, code
):
    """With ATOMIC_REQUESTS the view's write lives in Django's request transaction, which sees no exception
    (DRF turned it into a response); only the handler's set_rollback() keeps the write out of the database."""
    monkeypatch.setitem(connections["default"].settings_dict, "ATOMIC_REQUESTS", True)

    response = api_client.post(
        "/test/write-then-fail", data={"username": "mallory", "fail": fail}, content_type="application/json"
    )

    error_of(response, status, code)
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_crash_outside_drf_answers_500_envelope_from_handler500(api_client, captured_log):
    response = api_client.get("/test/plain-django-crash")

    error_of(response, 500, "internal_error")
    assert_no_internals(response)
    errors = [line for line in captured_log.lines if line["level"] in {"error", "critical"}]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == response["X-Request-ID"]
    assert f"RuntimeError: {CRASH_MESSAGE}" in errors[0]["exception"]

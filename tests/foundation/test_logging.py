"""Structured logs: what every line carries, how request ids flow, and that credentials never get written."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from django.conf import settings
from django.test import Client

from exchange.logging import scrub_text
from tests.foundation.test_settings import PRODUCTION_ENV
from tests.support.commands import run_python

pytestmark = pytest.mark.urls("tests.foundation.urls")

IDENTITY_FIELDS = {"timestamp", "level", "logger", "message", "service", "instance", "environment", "request_id"}
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")

# Credentials in the shapes they arrive in. None of these strings may appear anywhere in the log.
API_KEY = "Xq7Lm2Pz.R4nd0mS3cr3tW1thThirtyTwoCharsAb"
X_API_KEY = "xk-live-7d1f0c2e9b8a4f6e"
PASSWORD = "correct-horse-battery-staple"
BEARER_TOKEN = "xyz-bearer-token-5f3e2d1c"


def test_every_line_is_json_with_the_service_identity(client, captured_log):
    client.post("/test/chatty", data={"relay": "none"}, content_type="application/json")

    assert len(captured_log.lines) >= 3
    for line in captured_log.lines:
        assert IDENTITY_FIELDS <= set(line), line
        assert line["service"] == settings.SERVICE_NAME
        assert line["instance"] == settings.SERVICE_INSTANCE_NAME
        assert line["environment"] == settings.ENVIRONMENT
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"]), line["timestamp"]


def test_every_line_written_during_a_request_carries_its_request_id(client, captured_log):
    response = client.post("/test/chatty", data={"relay": "none"}, content_type="application/json")

    request_id = response["X-Request-ID"]
    assert GENERATED_ID.match(request_id)
    # structlog and plain stdlib loggers alike, and the access line.
    assert {line["logger"] for line in captured_log.lines} >= {"tests.chatty", "tests.chatty.stdlib", "exchange.access"}
    assert {line["request_id"] for line in captured_log.lines} == {request_id}


def test_request_id_is_not_carried_over_to_lines_after_the_request(client, captured_log):
    import structlog

    client.get("/api/v1/health")
    structlog.get_logger("tests.after").info("between_requests")

    [after] = captured_log.where(logger="tests.after")
    assert after["request_id"] is None


@pytest.mark.parametrize("sane", ["trade-engine-7f3a", "0f8fad5b-d9cb-469f-a165-70867728950e", "risk:42.7_a"])
def test_sane_caller_request_id_is_reused_and_echoed(client, captured_log, sane):
    response = client.get("/api/v1/health", headers={"X-Request-ID": sane})

    assert response["X-Request-ID"] == sane
    [access] = captured_log.where(logger="exchange.access")
    assert access["request_id"] == sane


@pytest.mark.parametrize(
    "insane",
    [
        "a" * 129,  # too long to be an id; could flood every line
        "two words",
        "forged\nINFO fake log line",
        "trailing-newline\n",
        "<script>alert(1)</script>",
        "-starts-with-dash",
    ],
)
def test_unsafe_caller_request_id_is_replaced_by_a_fresh_one(client, captured_log, insane):
    response = client.get("/api/v1/health", headers={"X-Request-ID": insane})

    assert response.status_code == 200
    assert GENERATED_ID.match(response["X-Request-ID"])
    [access] = captured_log.where(logger="exchange.access")
    assert access["request_id"] == response["X-Request-ID"]
    assert insane not in captured_log.text


def test_one_access_line_per_request_with_method_route_status_and_duration(client, captured_log):
    client.get("/api/v1/health")
    client.post("/api/v1/ready")
    client.get("/no/such/page")

    access = captured_log.where(logger="exchange.access")
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("GET", "/api/v1/health", 200),
        ("POST", "/api/v1/ready", 405),
        ("GET", None, 404),  # no route matched: the path is still there
    ]
    assert access[2]["path"] == "/no/such/page"
    assert all(isinstance(a["duration_ms"], float | int) and a["duration_ms"] >= 0 for a in access)
    assert all(a["message"] == "request" and a["level"] == "info" for a in access)


@pytest.mark.parametrize(
    ("authorization", "secret"),
    [
        (f"Api-Key {API_KEY}", API_KEY),
        (f"Bearer {BEARER_TOKEN}", BEARER_TOKEN),
        ("Basic dXNlcjpodW50ZXIyLXNlY3JldA==", "dXNlcjpodW50ZXIyLXNlY3JldA=="),
        ("Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"),
    ],
)
def test_credentials_never_reach_the_log(client, captured_log, authorization, secret):
    """The view logs carelessly: headers as text, credentials as event fields, a relayed Authorization header
    inside a message. The scrubber is the last line of defence and must catch every one of them."""
    client.post(
        f"/test/chatty?api_key={API_KEY}",
        data={"username": "alice", "password": PASSWORD, "relay": f"Bearer {BEARER_TOKEN}"},
        content_type="application/json",
        headers={"Authorization": authorization, "X-Api-Key": X_API_KEY},
    )

    text = captured_log.text
    assert "login_attempt" in text and "incoming headers" in text and "upstream replied" in text
    for leaked in (secret, API_KEY, X_API_KEY, PASSWORD, BEARER_TOKEN):
        assert leaked not in text
    assert "[REDACTED]" in text
    # Scrubbing removes the credential, not the context around it.
    [attempt] = captured_log.where(message="login_attempt")
    assert attempt["body"]["username"] == "alice"


LOGGING_SCRIPT = textwrap.dedent(
    """
    import logging
    import django
    import structlog

    django.setup()
    log = structlog.get_logger("tests.child")
    log.debug("debug_event")
    log.info("info_event", order_id="o-1")
    log.warning("warning_event", api_key="%(api_key)s", password="%(password)s")
    logging.getLogger("tests.child.stdlib").info("stdlib info with Authorization: Bearer %(bearer)s")
    logging.getLogger("tests.child.stdlib").error("stdlib error")
    try:
        raise RuntimeError("connect failed: password=%(password)s")
    except RuntimeError:
        log.exception("crash_event")
    """
) % {"api_key": API_KEY, "password": PASSWORD, "bearer": BEARER_TOKEN}


def run_logging_script(**env: str) -> str:
    result = run_python(LOGGING_SCRIPT, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_log_level_is_honoured():
    lines = [json.loads(line) for line in run_logging_script(LOG_LEVEL="WARNING").splitlines()]

    assert [line["message"] for line in lines] == ["warning_event", "stdlib error", "crash_event"]


def test_debug_level_shows_everything():
    messages = [json.loads(line)["message"] for line in run_logging_script(LOG_LEVEL="DEBUG").splitlines()]

    assert messages[:3] == ["debug_event", "info_event", "warning_event"]


def test_json_format_scrubs_secrets_in_fields_messages_and_tracebacks():
    output = run_logging_script(LOG_FORMAT="json")

    assert "Traceback (most recent call last)" in output
    for leaked in (API_KEY, PASSWORD, BEARER_TOKEN):
        assert leaked not in output


def test_console_format_gives_readable_lines_and_still_scrubs():
    output = run_logging_script(LOG_FORMAT="console")

    lines = output.splitlines()
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    info = next(line for line in lines if "info_event" in line)
    assert "[info" in info and "order_id=o-1" in info and f"service={settings.SERVICE_NAME}" in info
    assert "Traceback (most recent call last)" in output
    for leaked in (API_KEY, PASSWORD, BEARER_TOKEN):
        assert leaked not in output


# --- What the scrubber lets through ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reason",
    [
        "CSRF token missing.",
        "CSRF token from POST incorrect.",
        "CSRF token from the 'X-Csrftoken' HTTP header has incorrect length.",
        "CSRF cookie not set.",
        "Referer checking failed - no Referer.",
    ],
)
def test_csrf_failure_reasons_are_no_secret(reason):
    line = f"Forbidden ({reason}): /admin/login/"

    assert scrub_text(line) == line


def test_a_csrf_rejection_is_logged_with_its_reason(captured_log):
    """Django's CSRF rejection says why in plain words; operators need them, and they carry no secret."""
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "a" * 32

    response = client.post("/admin/login/", {"username": "x", "password": PASSWORD})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    [line] = [line for line in captured_log.lines if line["logger"] == "django.security.csrf"]
    assert line["message"] == "Forbidden (CSRF token missing.): /admin/login/"
    assert PASSWORD not in captured_log.text


# --- The environment a line names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings_module", "env", "expected"),
    [
        ("exchange.settings.production", PRODUCTION_ENV, "production"),
        ("exchange.settings.test", {}, "test"),
        ("exchange.settings.local", {}, "development"),
        ("exchange.settings.production", {**PRODUCTION_ENV, "ENVIRONMENT": "staging"}, "staging"),
    ],
)
def test_environment_in_logs_follows_the_settings_module_unless_set(settings_module, env, expected):
    result = run_python(
        "import django, structlog; django.setup(); structlog.get_logger('t').warning('hello'); "
        "from django.conf import settings; print(settings.ENVIRONMENT)",
        env={**env, "LOG_FORMAT": "json"},
        settings_module=settings_module,
    )

    assert result.returncode == 0, result.stderr
    log_line, setting = result.stdout.strip().splitlines()
    assert json.loads(log_line)["environment"] == expected
    assert setting == expected

"""A database that is down or a connection that broke answers 503 ``service_unavailable`` with ``Retry-After``,
logged as one warning line without a traceback, from DRF views, plain Django views and middleware alike; and the
per-request connection check finds a dead connection without a round trip. (Real outages under load:
test_database_faults.py.)"""

from __future__ import annotations

import time

import pytest
from django.db import connection, connections

from tests.foundation.test_errors import error_of

pytestmark = pytest.mark.urls("tests.foundation.urls")

WITH_MIDDLEWARE_FAULT = "tests.foundation.urls.DatabaseGoneInMiddleware"


@pytest.mark.parametrize(
    "path", ["/test/database-gone", "/test/plain-database-gone", "/test/database-gone-in-middleware"]
)
def test_a_lost_database_connection_is_503_with_retry_after(api_client, captured_log, settings, path):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE[:3], WITH_MIDDLEWARE_FAULT, *settings.MIDDLEWARE[3:]]

    response = api_client.get(path)

    error = error_of(response, 503, "service_unavailable")
    assert error["details"] == {"dependency": "database"}
    assert int(response["Retry-After"]) > 0
    assert "Traceback" not in captured_log.text
    [line] = captured_log.where(message="database_unavailable")
    assert line["level"] == "warning" and "server closed the connection unexpectedly" in line["error"]
    assert not [entry for entry in captured_log.lines if entry["level"] in {"error", "critical"}]


@pytest.mark.django_db(transaction=True)
def test_the_connection_check_costs_no_round_trip_and_sees_a_terminated_backend(postgres):
    checked = connections.create_connection("default")
    try:
        checked.ensure_connection()
        with checked.connection.cursor() as cursor:
            cursor.execute("SELECT 42")
        pid = checked.connection.info.backend_pid

        assert all(checked.is_usable() for _ in range(3))
        with connection.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
            assert cursor.fetchone() == ("SELECT 42",)  # the checks sent nothing to the server
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

        deadline = time.monotonic() + 5
        while checked.is_usable() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not checked.is_usable()
    finally:
        checked.close()

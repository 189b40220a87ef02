"""Hostile request bodies get a 4xx envelope, change nothing and are logged in one line without a traceback:
JSON nested deeper than the parser can follow, and a body larger than the upload limit."""

from __future__ import annotations

import pytest
from django.conf import settings

from orders.models import Order
from tests.helpers import money_snapshot

pytestmark = pytest.mark.django_db

NESTED = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a": ' * 1000 + "1" + "}" * 1000


def _assert_logged_without_traceback(captured_log) -> None:
    assert "Traceback" not in captured_log.text
    assert not [line for line in captured_log.lines if line.get("level") in {"error", "critical"}]


@pytest.mark.parametrize("body", [NESTED, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_a_thousand_levels_is_malformed_json(alice_client, alice_account, captured_log, body):
    before, orders = money_snapshot(), Order.objects.count()

    response = alice_client.post("/api/v1/orders", data=body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_json"
    assert (money_snapshot(), Order.objects.count()) == (before, orders)
    _assert_logged_without_traceback(captured_log)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/v1/orders", "application/json"), ("/admin/login/", "application/x-www-form-urlencoded")],
    ids=["api", "outside-drf"],
)
def test_a_body_over_the_upload_limit_is_413_payload_too_large(
    alice_client, alice_account, captured_log, path, content_type
):
    pad = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)
    body = f'{{"pad": "{pad}"}}' if content_type == "application/json" else f"pad={pad}"
    before, orders = money_snapshot(), Order.objects.count()

    response = alice_client.post(path, data=body, content_type=content_type)

    assert response.status_code == 413, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in error["message"]
    assert (money_snapshot(), Order.objects.count()) == (before, orders)
    _assert_logged_without_traceback(captured_log)

"""A forged Host header is refused with the envelope, so it never reaches the absolute URLs Django builds from it
(pagination ``next`` links). Production refuses to start without an explicit ALLOWED_HOSTS (test_settings.py)."""

from __future__ import annotations

import pytest

from tests.factories import make_account

pytestmark = pytest.mark.django_db

HOST = "exchange.example.com"


@pytest.fixture
def many_accounts(alice):
    for i in range(3):
        make_account(owner=alice, label=f"a{i}")


@pytest.fixture
def production_hosts(settings):
    settings.ALLOWED_HOSTS = [HOST]


def test_a_forged_host_is_refused_with_the_envelope(production_hosts, alice_client, many_accounts, captured_log):
    response = alice_client.get("/api/v1/accounts?limit=1", HTTP_HOST="evil.example")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert "evil.example" not in response.content.decode()
    assert "Traceback" not in captured_log.text


def test_next_links_carry_only_an_allowed_host(production_hosts, alice_client, many_accounts):
    response = alice_client.get("/api/v1/accounts?limit=1", HTTP_HOST=HOST)

    assert response.status_code == 200
    assert response.json()["next"].startswith(f"http://{HOST}/api/v1/accounts?")

"""/metrics carries operator figures, so Prometheus must send the bearer token; production without a token serves
nobody, local development serves anonymously (exchange/metrics.py)."""

from __future__ import annotations

import pytest

TOKEN = "prometheus-scrape-token-0123456789"


def scrape(client, authorization: str | None = None):
    headers = {"Authorization": authorization} if authorization else {}
    return client.get("/metrics", headers=headers)


def assert_refused(response) -> None:
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"exchange_" not in response.content and b"django_http" not in response.content


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN


def test_metrics_with_the_bearer_token_are_served(client, token):
    response = scrape(client, f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"django_http_requests" in response.content


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, f"Api-Key {TOKEN}"],
    ids=["none", "wrong", "longer", "basic", "bare", "api-key"],
)
def test_metrics_without_the_right_token_are_refused(client, token, authorization):
    assert_refused(scrape(client, authorization))


def test_production_without_a_token_serves_metrics_to_nobody(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_ANONYMOUS = False

    assert_refused(scrape(client))
    assert_refused(scrape(client, "Bearer "))


def test_local_development_without_a_token_serves_metrics_anonymously(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_ANONYMOUS = True

    assert scrape(client).status_code == 200

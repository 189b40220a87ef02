"""Brute force is throttled: wrong API keys per client address (429 rate_limited with Retry-After, then even a
right key waits, or a right guess would show), and wrong admin passwords lock the username out (django-axes)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from exchange import ratelimit
from tests.factories import make_key

pytestmark = pytest.mark.django_db

LIMIT = 5


@pytest.fixture
def low_limit(settings):
    settings.AUTH_FAILURE_LIMIT = LIMIT
    settings.AUTH_FAILURE_WINDOW = 60


def call(key: str, address: str = "203.0.113.7", **headers: str):
    client = APIClient(REMOTE_ADDR=address)
    return client.get("/api/v1/accounts", HTTP_AUTHORIZATION=f"Api-Key {key}", **headers)


def test_wrong_keys_from_one_address_are_throttled_then_even_a_right_key_waits(low_limit, alice):
    good = make_key(user=alice, scopes=["read"])
    wrong = good.split(".")[0] + ".wrong-secret-wrong-secret-wrong-se"

    answers = [call(wrong).status_code for _ in range(LIMIT)]
    over = call(wrong)

    assert answers == [401] * LIMIT
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "rate_limited"
    assert 0 < int(over["Retry-After"]) <= 60
    assert over.json()["error"]["details"]["retry_after_seconds"] == int(over["Retry-After"])
    # A right guess now would still answer 429: the attacker learns nothing.
    assert call(good).status_code == 429
    # Another address is not affected, and a key without credentials is no attempt.
    assert call(good, address="198.51.100.9").status_code == 200
    assert APIClient(REMOTE_ADDR="203.0.113.7").get("/api/v1/accounts").status_code == 401


def test_forwarded_for_is_not_trusted_unless_configured(low_limit, settings):
    for i in range(LIMIT):
        call("nope.nope", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")

    assert call("nope.nope", HTTP_X_FORWARDED_FOR="10.0.0.99").status_code == 429

    ratelimit.reset_all()
    settings.TRUST_X_FORWARDED_FOR = True
    for _ in range(LIMIT):
        call("nope.nope", HTTP_X_FORWARDED_FOR="192.0.2.1, 10.1.1.1")
    assert call("nope.nope", HTTP_X_FORWARDED_FOR="192.0.2.1, 10.1.1.1").status_code == 429
    assert call("nope.nope", HTTP_X_FORWARDED_FOR="192.0.2.1, 10.1.1.2").status_code == 401


def test_the_limiter_counts_in_redis_and_degrades_to_memory_without_it(redis_url, settings, captured_log):
    limiter = ratelimit.Limiter("test_degrade", limit=2, window=30)

    assert [limiter.hit("k").allowed for _ in range(3)] == [True, True, False]
    assert limiter.peek("k").retry_after > 0
    import redis

    assert int(redis.Redis.from_url(redis_url).get("ratelimit:exchange-simulator:test_degrade:k")) == 3

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    down = ratelimit.Limiter("test_degrade_down", limit=1, window=30)
    assert [down.hit("k").allowed for _ in range(2)] == [True, False]
    assert [line["message"] for line in captured_log.lines].count("ratelimit_degraded") == 1


def _login(client, password: str):
    return client.post(reverse("admin:login"), {"username": "root", "password": password, "next": "/admin/"})


def test_admin_login_locks_out_after_repeated_wrong_passwords(client, settings):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root", "root@example.test", "right-password-123")

    answers = [_login(client, f"guess-{i}").status_code for i in range(settings.AXES_FAILURE_LIMIT)]
    locked = _login(client, "right-password-123")

    assert answers[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert locked.status_code == 429
    assert "/admin/" not in locked.get("Location", "")

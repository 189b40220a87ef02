"""API keys kept in memory: evicted the moment a revocation commits, and never trusted to move money.

These tests commit (transactional_db): a notification is only sent when a transaction commits.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.key_cache import key_cache
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, house_fund
from orders.models import Order
from tests.factories import UserFactory, make_account

pytestmark = pytest.mark.postgres


@pytest.fixture
def cache_on(settings, transactional_db, postgres):
    settings.API_KEY_CACHE = True
    key_cache.clear()
    assert key_cache.wait_until_listening(10), "the listener did not connect"
    yield key_cache
    key_cache.stop()  # closes its connection, so the test database can be dropped


def _client(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    return client


def _eventually(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_revoked_key_is_evicted_as_soon_as_the_revocation_commits(cache_on):
    user = UserFactory(username="carol")
    key, plain = api_key_create(user=user, name="carol", scopes=["read"])
    client = _client(plain)
    assert client.get("/api/v1/accounts").status_code == 200
    assert key.prefix in cache_on._entries  # the second request needs no query

    api_key_revoke(key=key)

    assert _eventually(lambda: key.prefix not in cache_on._entries)
    assert client.get("/api/v1/accounts").status_code == 401


def test_deactivating_the_user_evicts_every_key_of_theirs(cache_on):
    user = UserFactory(username="dave")
    _key, plain = api_key_create(user=user, name="dave", scopes=["read"])
    client = _client(plain)
    assert client.get("/api/v1/accounts").status_code == 200

    user.is_active = False
    user.save()

    assert _eventually(lambda: not cache_on._entries)
    assert client.get("/api/v1/accounts").status_code == 401


def test_an_order_with_a_revoked_key_is_refused_even_if_the_notification_was_missed(cache_on, monkeypatch):
    house_fund(asset="BTC", amount="10")
    user = UserFactory(username="erin")
    account = make_account(owner=user, label="erin", funds={"USD": "10000"})
    key, plain = api_key_create(user=user, name="erin", scopes=["trade"])
    client = _client(plain)
    assert client.get("/api/v1/accounts").status_code == 200
    monkeypatch.setattr(cache_on, "_evict", lambda payload: None)  # the notification is lost

    api_key_revoke(key=key)
    time.sleep(0.2)

    # Reading still answers from memory (that is the cache's bounded staleness)...
    assert client.get("/api/v1/accounts").status_code == 200
    # ...but an order checks its key again inside its own transaction, under the market's lock.
    order = {
        "account_id": str(account.account_id),
        "symbol": "BTC-USD",
        "side": "buy",
        "order_type": "market",
        "quantity": "0.01",
    }
    response = client.post("/api/v1/orders", order, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not Order.objects.exists()


def test_writing_last_used_at_notifies_nobody(cache_on):
    user = UserFactory(username="frank")
    key, _plain = api_key_create(user=user, name="frank", scopes=["read"])
    params = connection.get_connection_params()
    params = {k: v for k, v in params.items() if k not in ("cursor_factory", "context", "prepare_threshold")}
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute("LISTEN exchange_api_keys")
        ApiKey.objects.filter(pk=key.pk).update(last_used_at="2026-01-01T00:00:00Z")
        ApiKey.objects.filter(pk=key.pk).update(name="renamed")
        payloads = [n.payload for n in listener.notifies(timeout=1.0, stop_after=1)]
    assert payloads == [f"key:{key.prefix}"]


def test_while_the_listener_is_down_nothing_is_answered_from_memory(cache_on):
    user = UserFactory(username="gina")
    key, plain = api_key_create(user=user, name="gina", scopes=["read"])
    client = _client(plain)
    assert client.get("/api/v1/accounts").status_code == 200
    cache_on._listening.clear()  # as when its connection dropped
    cache_on.clear()
    try:
        assert client.get("/api/v1/accounts").status_code == 200
        assert key.prefix not in cache_on._entries  # read from the database, not kept
    finally:
        cache_on._listening.set()


def test_a_cached_key_brings_its_own_account_without_a_query(cache_on, django_assert_num_queries):
    """A Binance-style key trades one account (binance_api.auth.key_account): it is cached with the key, a copy
    per request like the key and its user."""
    from accounts.authentication import api_key_verify

    user = UserFactory(username="hana")
    account = make_account(owner=user, label="bot")
    _key, plain = api_key_create(user=user, name="hana", scopes=["trade"], account=account)
    first, _user = api_key_verify(raw=plain, address="192.0.2.10")
    assert first.account.account_id == account.account_id

    with django_assert_num_queries(0):
        key, _user = api_key_verify(raw=plain, address="192.0.2.10")
        assert key.account.account_id == account.account_id and key.account.owner_id == user.pk
    assert key.account is not first.account


def test_a_key_in_memory_does_not_let_a_right_guess_through_an_address_over_its_limit(cache_on, settings):
    """Only an address that has used the key rightly skips the failure counters (a client in good standing keeps
    working when others behind its address fail). A wrong guess with the key's prefix loads the key into memory
    too: that must not make the next, right guess from the same address over its limit answer 200."""
    from exchange import ratelimit

    settings.AUTH_FAILURE_LIMIT, settings.AUTH_FAILURE_WINDOW = 3, 60
    ratelimit.reset_all()
    user = UserFactory(username="erin")
    key, plain = api_key_create(user=user, name="erin", scopes=["read"])
    wrong = f"{key.prefix}.wrong-secret-wrong-secret-wrong-se"

    def call(raw: str, address: str) -> int:
        return APIClient(REMOTE_ADDR=address).get("/api/v1/accounts", HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code

    assert call(plain, "198.51.100.20") == 200  # the owner, from its own address
    assert [call(wrong, "203.0.113.50") for _ in range(3)] == [401, 401, 401]
    assert call(wrong, "203.0.113.50") == 429
    assert key.prefix in cache_on._entries
    assert call(plain, "203.0.113.50") == 429  # the right guess shows nothing
    assert call(plain, "198.51.100.20") == 200  # the owner is not locked out by someone else's failures

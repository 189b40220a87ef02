"""Shared fixtures: service access (skip on a laptop, fail in CI), reference data, and the roles used in tests.

Roles, as in the examples: ``alice`` owns accounts and trades, ``bob`` is another customer who must never see
alice's accounts, ``operator`` runs the back office. Each has an API client authenticated with a key of the
matching scope (``alice_reader`` is alice with a read-only key).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.support.logs import captured_log  # noqa: F401 - a fixture, for every test folder
from tests.support.services import drop_migrated_template, require_postgres, require_redis, scratch_database_url

_DB_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "postgres"}


@pytest.fixture(autouse=True)
def _reference_data(request: pytest.FixtureRequest) -> Iterator[None]:
    """Assets, house books (and markets): created by migrations, but a transactional test's flush empties every
    table, so tests that use the database get them back here (idempotent, a handful of queries).

    After the test, the books must still reconcile: whatever a test did through the product's code, every cached
    balance equals the ledger and every entry balances; and no closed account holds money. Tests that corrupt the
    books on purpose say so with ``@pytest.mark.corrupts_ledger``."""
    if not (request.node.get_closest_marker("django_db") or _DB_FIXTURES & set(request.fixturenames)):
        yield
        return
    request.getfixturevalue("_django_db_helper")
    from exchange.reference_data import ensure_all_reference_data

    ensure_all_reference_data()
    yield
    if request.node.get_closest_marker("corrupts_ledger"):
        return
    from ledger.reconciliation import reconcile

    report = reconcile()
    assert report.ok, f"the books do not reconcile after this test: {report.discrepancies}"
    from accounts.models import AccountStatus, Balance

    stranded = Balance.objects.filter(account__status=AccountStatus.CLOSED).exclude(available=0, locked=0)
    assert not stranded.exists(), f"money left on closed accounts: {list(stranded.values('account_id', 'asset_id'))}"


@pytest.fixture(autouse=True)
def _rate_limits() -> Iterator[None]:
    """Every test starts with no failed attempts counted (rate limits are per address, and every test client
    calls from 127.0.0.1)."""
    from exchange import ratelimit

    ratelimit.reset_all()
    yield


@pytest.fixture
def postgres(db: None) -> str:
    """The test needs PostgreSQL (row locks, triggers); skipped on SQLite, failed in CI."""
    return require_postgres()


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis URL; skipped when absent, failed in CI."""
    return require_redis()


@pytest.fixture
def service_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database for a service process the test starts (PostgreSQL in CI, SQLite locally)."""
    with scratch_database_url(tmp_path_factory) as url:
        yield url


@pytest.fixture
def migrated_service_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like ``service_database_url``, but already migrated (a copy of the session's template database): for tests
    of a running service rather than of its first start on an empty database, which is seconds faster."""
    with scratch_database_url(tmp_path_factory, migrated=True) as url:
        yield url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_migrated_template()


# --- Roles -------------------------------------------------------------------------------------------------
def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def alice(db: None) -> Any:
    from tests.factories import UserFactory

    return UserFactory(username="alice")


@pytest.fixture
def bob(db: None) -> Any:
    from tests.factories import UserFactory

    return UserFactory(username="bob")


@pytest.fixture
def operator_user(db: None) -> Any:
    from tests.factories import UserFactory

    return UserFactory(username="operator", is_staff=True)


@pytest.fixture
def alice_client(alice: Any) -> APIClient:
    """alice with a trade key (trade includes read)."""
    from tests.factories import make_key

    return _client(make_key(user=alice, scopes=["trade"]))


@pytest.fixture
def alice_reader(alice: Any) -> APIClient:
    """alice with a read-only key."""
    from tests.factories import make_key

    return _client(make_key(user=alice, scopes=["read"]))


@pytest.fixture
def bob_client(bob: Any) -> APIClient:
    from tests.factories import make_key

    return _client(make_key(user=bob, scopes=["trade"]))


@pytest.fixture
def operator_client(operator_user: Any) -> APIClient:
    from tests.factories import make_key

    return _client(make_key(user=operator_user, scopes=["operator"]))


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_account(alice: Any) -> Any:
    """alice's account holding 10,000 USD."""
    from tests.factories import make_account

    return make_account(owner=alice, label="main", funds={"USD": "10000"})


@pytest.fixture
def house(operator_user: Any) -> None:
    """House liquidity to trade against: 100 BTC, 2,000 ETH, 10 M USD and 10 M USDT."""
    from accounts.services import house_fund

    for asset, amount in {"BTC": "100", "ETH": "2000", "USD": "10000000", "USDT": "10000000"}.items():
        house_fund(asset=asset, amount=amount, actor=operator_user)

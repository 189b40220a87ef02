"""Shared fixtures: service access (skip on a laptop, fail in CI), processes, and the roles used in tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import require_postgres, require_redis, scratch_database_url


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

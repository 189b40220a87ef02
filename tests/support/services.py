"""Access to the real services tests may need (PostgreSQL, Redis), and the skip-or-fail rule.

A test that needs a service it cannot reach is skipped with the reason, so a newcomer's ``make test`` passes
on SQLite with nothing installed. In CI (CI=true) or with REQUIRE_SERVICES=1 the same situation fails the run:
CI must never pass by skipping what it was meant to test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest


def services_required() -> bool:
    flag = os.environ.get("REQUIRE_SERVICES", "") or os.environ.get("CI", "")
    return flag.strip().lower() in {"1", "true", "yes", "on"}


def service_missing(reason: str) -> None:
    """Skip (developer machine) or fail (CI) because a service the test needs is absent."""
    if services_required():
        pytest.fail(f"required service absent: {reason}", pytrace=False)
    pytest.skip(reason)


def database_url() -> str:
    return os.environ.get("DATABASE_URL", "") or os.environ.get("POSTGRES_URL", "")


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "")


def require_postgres() -> str:
    from django.db import connection

    if connection.vendor != "postgresql":
        service_missing("needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)")
    return database_url()


def require_redis() -> str:
    url = redis_url()
    if not url:
        service_missing("needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0 (CI does)")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:
        service_missing(f"Redis at REDIS_URL is unreachable: {exc}")
    return url


@contextmanager
def scratch_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for a server process the test starts: a new PostgreSQL database next to the
    test database when DATABASE_URL points at PostgreSQL, else a SQLite file. Dropped afterwards."""
    base = database_url()
    if not base.startswith(("postgres://", "postgresql://", "pgsql://")):
        path = tmp_path_factory.mktemp("db") / "service.sqlite3"
        yield f"sqlite:///{path}"
        return
    import psycopg

    parts = urlsplit(base)
    name = f"exsim_scratch_{uuid.uuid4().hex[:12]}"
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""Access to the real services tests may need (PostgreSQL, Redis), and the skip-or-fail rule.

A test that needs a service it cannot reach is skipped with the reason, so a newcomer's ``make test`` passes
on SQLite with nothing installed. In CI (CI=true) or with REQUIRE_SERVICES=1 the same situation fails the run:
CI must never pass by skipping what it was meant to test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
def scratch_database_url(tmp_path_factory: pytest.TempPathFactory, *, migrated: bool = False) -> Iterator[str]:
    """A fresh database for a server process the test starts: a new PostgreSQL database next to the test
    database when DATABASE_URL points at PostgreSQL, else a SQLite file. Dropped afterwards.

    Empty by default (what ``serve`` meets on a first deployment). ``migrated=True`` gives a copy of a database
    migrated once per test session (``CREATE DATABASE ... TEMPLATE``, a file copy on SQLite): the same schema and
    reference data a fresh ``migrate`` writes, without paying for the migrations at every service start-up. Tests
    of migrating from zero keep the empty database."""
    base = database_url()
    if not base.startswith(("postgres://", "postgresql://", "pgsql://")):
        path = tmp_path_factory.mktemp("db") / "service.sqlite3"
        if migrated:
            shutil.copyfile(_migrated_template(tmp_path_factory), path)
        yield f"sqlite:///{path}"
        return
    import psycopg

    parts = urlsplit(base)
    name = f"exsim_scratch_{uuid.uuid4().hex[:12]}"
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    template = f' TEMPLATE "{_migrated_template(tmp_path_factory)}"' if migrated else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The session's migrated template: a PostgreSQL database name or a SQLite file path, made on first use and dropped
# by ``drop_migrated_template`` when the session ends (tests/conftest.py).
_template: dict[str, str] = {}
_template_lock = threading.Lock()


def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    with _template_lock:
        if "name" not in _template:
            _template.update(_make_template(tmp_path_factory))
        return _template["name"]


def _make_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = database_url()
    if not base.startswith(("postgres://", "postgresql://", "pgsql://")):
        path = tmp_path_factory.mktemp("template") / "migrated.sqlite3"
        _migrate(f"sqlite:///{path}")
        return {"name": str(path), "vendor": "sqlite"}
    import psycopg

    parts = urlsplit(base)
    name = f"exsim_template_{uuid.uuid4().hex[:12]}"
    admin_url = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _migrate(urlunsplit(parts._replace(path=f"/{name}")))
    except BaseException:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        raise
    return {"name": name, "vendor": "postgresql", "admin_url": admin_url}


def _migrate(url: str) -> None:
    """``manage.py migrate`` in a subprocess with the environment a service process gets (tests/support/processes.py):
    its settings module, and none of the test session's database or Redis settings."""
    from tests.support.processes import ROOT

    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "POSTGRES_URL", "REDIS_URL"}}
    env.update({"DJANGO_SETTINGS_MODULE": "exchange.settings.local", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"migrating the template database failed:\n{result.stdout}{result.stderr}"


def drop_migrated_template() -> None:
    with _template_lock:
        if _template.get("vendor") == "postgresql":
            import psycopg

            with psycopg.connect(_template["admin_url"], autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{_template["name"]}" WITH (FORCE)')
        elif _template.get("vendor") == "sqlite":
            Path(_template["name"]).unlink(missing_ok=True)
        _template.clear()

"""Migrations: they apply to an empty database, leave nothing unapplied, match the models (no missing migration),
and leave books that reconcile with the reference data they create, on SQLite and on PostgreSQL.

Each database is a fresh one for a ``manage.py`` subprocess, so the test database is not involved.
"""

from __future__ import annotations

import json

import pytest

from tests.support.commands import run_manage
from tests.support.services import require_postgres, scratch_database_url

COUNTS = (
    "from django.apps import apps; import json; "
    "print(json.dumps({m: apps.get_model(*m.split('.')).objects.count() for m in "
    "['markets.Market', 'ledger.Asset', 'orders.Order', 'orders.Trade', 'markets.Candle']}))"
)


def _migrate_from_zero(url: str) -> None:
    env = {"DATABASE_URL": url}
    migrated = run_manage("migrate", "--noinput", env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    # Nothing left unapplied, and no model change without its migration.
    unapplied = run_manage("migrate", "--check", env=env)
    assert unapplied.returncode == 0, unapplied.stdout + unapplied.stderr
    missing = run_manage("makemigrations", "--check", "--dry-run", env=env)
    assert missing.returncode == 0, missing.stdout + missing.stderr
    assert "No changes detected" in missing.stdout
    counts = run_manage("shell", "-c", COUNTS, env=env)
    assert counts.returncode == 0, counts.stderr
    assert json.loads(counts.stdout.strip().splitlines()[-1]) == {
        "markets.Market": 5,
        "ledger.Asset": 4,
        "orders.Order": 0,
        "orders.Trade": 0,
        "markets.Candle": 0,
    }
    reconciled = run_manage("reconcile", env=env)
    assert reconciled.returncode == 0 and "reconciliation OK" in reconciled.stdout, reconciled.stdout


@pytest.mark.slow
def test_migrations_apply_from_zero_on_sqlite(tmp_path):
    _migrate_from_zero(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_migrations_apply_from_zero_on_postgresql(tmp_path_factory):
    require_postgres()
    with scratch_database_url(tmp_path_factory) as url:
        _migrate_from_zero(url)

"""End-to-end tests: the real service (``manage.py serve``: gunicorn and gRPC) on a fresh PostgreSQL database, set up
only through operator commands and driven only over HTTP, as the trading systems and operators use it.

Every process a test starts is stopped by pid in a fixture finalizer, so a failing assertion leaves nothing running.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import ServiceProcess
from tests.support.services import require_postgres, scratch_database_url


@pytest.fixture
def pg_service_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database for the service (row locks and the ledger's triggers are PostgreSQL's): skipped
    with the reason when DATABASE_URL is not PostgreSQL, failed in CI (REQUIRE_SERVICES)."""
    require_postgres()
    with scratch_database_url(tmp_path_factory) as url:
        yield url


@pytest.fixture
def service(pg_service_database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    """The service with two gunicorn workers, no demo data and no remote configuration (local defaults only)."""
    process = ServiceProcess(
        database_url=pg_service_database_url,
        log_dir=tmp_path,
        workers=2,
        env={"CONFIG_SERVICE_URL": "", "SERVICE_HOST": "127.0.0.1"},
        extra_args=["--no-seed"],
    )
    try:
        process.start()
        yield process
    finally:
        process.stop()


def manage(process: ServiceProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """An operator's ``manage.py`` command with exactly the service's environment (its DATABASE_URL and settings)."""
    return process.manage(*args, check=check, timeout=60)


def seed_keys(process: ServiceProcess, spec: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Run ``seed_accounts`` with a YAML file, as an operator would, and return the new API keys by username."""
    seed_file = tmp_path / "seed.yaml"
    seed_file.write_text(yaml.safe_dump(spec))
    keys_file = tmp_path / "keys.txt"
    manage(process, "seed_accounts", "--file", str(seed_file), "--keys-file", str(keys_file))
    assert keys_file.stat().st_mode & 0o777 == 0o600
    keys = {}
    for line in keys_file.read_text().splitlines():
        username, _scopes, key = line.split("\t")
        keys[username] = key
    return keys

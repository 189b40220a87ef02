"""End-to-end tests: the real service (``manage.py serve``: gunicorn and gRPC) on a fresh PostgreSQL database, set up
only through operator commands and driven only over HTTP, as the trading systems and operators use it.

Every process a test starts is stopped by pid in a fixture finalizer, so a failing assertion leaves nothing running.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.processes import ServiceProcess
from tests.support.services import require_postgres, scratch_database_url


@pytest.fixture
def pg_service_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database for the service (row locks and the ledger's triggers are PostgreSQL's): skipped
    with the reason when DATABASE_URL is not PostgreSQL, failed in CI (REQUIRE_SERVICES)."""
    require_postgres()
    with scratch_database_url(tmp_path_factory, migrated=True) as url:
        yield url


@pytest.fixture
def service_options() -> dict[str, Any]:
    """How ``service`` runs: a module that imports the fixture may override this one (workers, environment)."""
    return {"workers": 2, "env": {}}


@pytest.fixture
def service(pg_service_database_url: str, tmp_path: Path, service_options: dict[str, Any]) -> Iterator[ServiceProcess]:
    """The service with two gunicorn workers, no demo data and no remote configuration (local defaults only)."""
    process = ServiceProcess(
        database_url=pg_service_database_url,
        log_dir=tmp_path,
        workers=service_options["workers"],
        env={"CONFIG_SERVICE_URL": "", "SERVICE_HOST": "127.0.0.1", **service_options["env"]},
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


def client(service: ServiceProcess, key: str, *, timeout: float = 15) -> httpx.Client:
    """An HTTP client of the service's API, authenticated with ``key``."""
    return httpx.Client(
        base_url=f"{service.base_url}/api/v1", headers={"Authorization": f"Api-Key {key}"}, timeout=timeout
    )


def every(api: httpx.Client, path: str, results_key: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list, following ``next``."""
    items: list[dict[str, Any]] = []
    response = api.get(path, params={"limit": 500, **params})
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body[results_key])
        if not body["next"]:
            return items
        response = api.get(body["next"])

"""Run ``manage.py`` or a Python snippet in a fresh interpreter, for behaviour decided at settings import time
(start-up refusals, LOG_LEVEL, LOG_FORMAT, database selection) that one test process cannot re-decide."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.processes import ROOT

# Variables the settings read, removed from the child's environment unless a test sets them, so the developer's
# shell does not leak in. The connection URLs are set to empty rather than removed (the settings treat empty as
# unset): a developer's .env never overrides a variable that is present (django-environ's overwrite=False).
_SETTINGS_VARIABLES = (
    "SECRET_KEY",
    "DEBUG",
    "SERVICE_NAME",
    "SERVICE_INSTANCE_NAME",
    "ENVIRONMENT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "ALLOWED_HOSTS",
    "METRICS_TOKEN",
)
_CONNECTION_URLS = ("DATABASE_URL", "POSTGRES_URL", "REDIS_URL")


def child_env(env: dict[str, str] | None = None, *, settings_module: str = "exchange.settings.test") -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARIABLES}
    return {
        **inherited,
        **dict.fromkeys(_CONNECTION_URLS, ""),
        "DJANGO_SETTINGS_MODULE": settings_module,
        **(env or {}),
    }


def run_manage(
    *args: str, env: dict[str, str] | None = None, settings_module: str = "exchange.settings.test", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child_env(env, settings_module=settings_module),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_python(
    code: str,
    *,
    env: dict[str, str] | None = None,
    settings_module: str = "exchange.settings.test",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=child_env(env, settings_module=settings_module),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

"""Start-up and shutdown hooks of ``manage.py serve``, so the apps can plug in without the command knowing them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

logger = structlog.get_logger("exchange.lifecycle")

StartHook = Callable[..., Any]
StopHook = Callable[[], Any]

_after_start: list[StartHook] = []
_before_stop: list[StopHook] = []


def on_start(hook: StartHook) -> StartHook:
    _after_start.append(hook)
    return hook


def on_stop(hook: StopHook) -> StopHook:
    _before_stop.append(hook)
    return hook


def after_start_hooks() -> list[StartHook]:
    return list(_after_start)


def before_stop_hooks() -> list[StopHook]:
    return list(reversed(_before_stop))


def seed_demo_data_if_empty() -> None:
    """Load the demo data set (users, funded accounts, house liquidity, API keys in api-keys.txt, mode 0600)
    when the database holds no accounts yet."""
    from django.core.management import call_command

    call_command("seed_demo")

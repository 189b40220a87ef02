"""Start-up and shutdown hooks of ``manage.py serve``, so the apps can plug in without the command knowing them."""

from __future__ import annotations

import io
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


def install(start: StartHook, stop: StopHook) -> None:
    """Register a start and a stop hook once (``serve`` may run twice in one process in tests)."""
    if start not in _after_start:
        on_start(start)
    if stop not in _before_stop:
        on_stop(stop)


def after_start_hooks() -> list[StartHook]:
    return list(_after_start)


def before_stop_hooks() -> list[StopHook]:
    return list(reversed(_before_stop))


def seed_demo_data_if_empty() -> None:
    """Load the demo data set (users, funded accounts, house liquidity, API keys in api-keys.txt, mode 0600)
    when the database holds no accounts yet."""
    from django.core.management import call_command

    # Through the log pipeline, not straight to stdout: serve's stdout is JSON lines only, and the scrubber must
    # see anything a seeding command prints (it may mention API keys).
    call_command("seed_demo", stdout=LogLines(command="seed_demo"), stderr=LogLines(command="seed_demo", error=True))


class LogLines(io.TextIOBase):
    """A text stream that logs each complete line written to it, for running management commands inside serve."""

    def __init__(self, *, command: str, error: bool = False) -> None:
        self._log = logger.bind(command=command)
        self._error = error
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, line: str) -> None:
        if line.strip():
            (self._log.warning if self._error else self._log.info)(line)

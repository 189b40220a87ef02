"""The service's real log output, captured for assertions (fixture ``captured_log``, in tests/conftest.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from django.conf import settings

from exchange.logging import build_logging_config


class CapturedLog:
    """What the configured stdout handler wrote, as raw text and as parsed JSON lines."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def where(self, **fields: Any) -> list[dict[str, Any]]:
        return [line for line in self.lines if all(line.get(k) == v for k, v in fields.items())]


@pytest.fixture
def captured_log() -> Iterator[CapturedLog]:
    """Redirect the real stdout handler (its formatter, processors and scrubber) into a buffer.

    The root level is pinned to INFO and the format to JSON for the test, so a developer's LOG_LEVEL or
    LOG_FORMAT=console in the shell does not change what the assertions see.
    """
    root = logging.getLogger()
    handler = next(h for h in root.handlers if h.name == "stdout")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    previous_formatter, previous_level = handler.formatter, root.level
    if settings.LOG_FORMAT != "json":
        config = build_logging_config(
            level="INFO",
            fmt="json",
            service=settings.SERVICE_NAME,
            instance=settings.SERVICE_INSTANCE_NAME,
            environment=settings.ENVIRONMENT,
        )["formatters"]["structured"]
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=config["processors"], foreign_pre_chain=config["foreign_pre_chain"]
            )
        )
    root.setLevel(logging.INFO)
    try:
        yield CapturedLog(buffer)
    finally:
        root.setLevel(previous_level)
        handler.setFormatter(previous_formatter)
        handler.setStream(previous_stream)  # type: ignore[arg-type]

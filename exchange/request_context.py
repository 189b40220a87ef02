"""The request id of the request being handled, shared by logging and the error envelope (contextvars)."""

from __future__ import annotations

import structlog


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value else None

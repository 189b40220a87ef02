"""Structured logging: one JSON object per line (or readable console lines), via structlog.

Every record, from our code, Django or gunicorn, goes through the same processors: it gets a timestamp, level,
logger, the service identity, the request id bound by ``RequestIdMiddleware`` (contextvars), and finally a
scrubber that removes anything that looks like a credential. Secrets must never reach a log line.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog

# Keys whose values are never logged, whatever their content.
SENSITIVE_KEYS = re.compile(r"(authorization|api[_-]?key|password|passwd|secret|token|cookie|credential)", re.I)
# Values that look like credentials inside free text: bearer/API-key headers and our key format.
SENSITIVE_VALUES = [
    # Not when the "credential" is a plain lowercase word: "CSRF token missing." is Django's reason, not a secret.
    re.compile(
        r"(?i)\b(bearer|basic|digest|api-key|token)\s+"
        r"(?-i:(?![a-z]+\.?(?:[^A-Za-z0-9._\-+/=]|$)))[A-Za-z0-9._\-+/=]{6,}"
    ),
    re.compile(r"(?i)(authorization|x-api-key|api_key|password|secret)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
    # djangorestframework-api-key keys look like "<prefix 8>.<secret 32>".
    re.compile(r"\b[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}\b"),
]
REDACTED = "[REDACTED]"


def scrub_text(text: str) -> str:
    for pattern in SENSITIVE_VALUES:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 5:
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SENSITIVE_KEYS.search(k) else _scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v, depth + 1) for v in value)
    return value


def scrub_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: drop credential-looking keys and mask credential-looking text."""
    return _scrub(event_dict)  # type: ignore[no-any-return]


class _ServiceIdentity:
    """structlog processor adding the service identity to every event."""

    def __init__(self, service: str, instance: str, environment: str) -> None:
        self.fields = {"service": service, "instance": instance, "environment": environment}

    def __call__(self, _logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        for key, value in self.fields.items():
            event_dict.setdefault(key, value)
        event_dict.setdefault("request_id", None)
        return event_dict


def _rename_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict["message"] = event_dict.pop("event", "")
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.stdlib.ExtraAdder(),
    ]


class DropStatusOnlyRecords(logging.Filter):
    """Keeps only ``django.request`` records that carry a traceback.

    Django repeats every response >= 400 as a line of its own ("Internal Server Error: /path") after the
    middleware chain has returned, so that line has no request id and duplicates our access line; a DRF crash
    would be logged twice. Records with ``exc_info`` (crashes outside DRF views) are the ones worth keeping.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None


def _is_outage(record: logging.LogRecord) -> bool:
    if not record.exc_info:
        return False
    from exchange.exception_handler import is_database_outage

    return is_database_outage(record.exc_info[1])


class ClientFaultsWithoutTraceback(logging.Filter):
    """``django.security.*`` records (a disallowed Host, a body over the upload limit) are the client's doing, not
    a crash, yet Django logs them as errors with a traceback; so is a database outage Django logs on its way to
    ``handler500`` (answered 503). Keep them as one warning line (the message says what happened; the access line
    carries the request id and status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security") or _is_outage(record):
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def build_logging_config(*, level: str, fmt: str, service: str, instance: str, environment: str) -> dict[str, Any]:
    """A dictConfig for the stdlib ``logging`` module whose only handler renders through structlog."""
    identity = _ServiceIdentity(service, instance, environment)
    if fmt == "console":
        final: list[Any] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            identity,
            # Render the traceback to text before scrubbing: an exception message can carry a credential.
            structlog.processors.format_exc_info,
            scrub_secrets,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    else:
        final = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            identity,
            structlog.processors.format_exc_info,
            _rename_event,
            scrub_secrets,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": final,
                "foreign_pre_chain": _shared_processors(),
            }
        },
        "filters": {
            "with_traceback_only": {"()": DropStatusOnlyRecords},
            "client_faults": {"()": ClientFaultsWithoutTraceback},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "structured",
                # On the handler, not a logger: a logger's filters do not see its children's records.
                "filters": ["client_faults"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Our access log line replaces Django's own "Not Found"/"Bad Request" warnings.
            "django.request": {"level": "ERROR", "propagate": True, "filters": ["with_traceback_only"]},
            "django.server": {"level": "WARNING", "propagate": True},
            "gunicorn.access": {"level": "WARNING", "propagate": True},
            "gunicorn.error": {"level": level, "propagate": True},
        },
    }


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

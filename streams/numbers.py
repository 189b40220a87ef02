"""The opt-in display number format: amounts as JSON numbers instead of decimal strings.

Amounts are decimal strings by default (exact in every language). A display client that formats them with
JavaScript's ``Number.toFixed`` (the dashboard) asks for numbers, either way:

* the query parameter ``amounts=number`` on any ``/api/v1`` URL, streams included, or
* a parameter of the ``Accept`` media type: ``Accept: application/json; amounts=number``.

The numbers are written with the exact digits of the string (``"0.50000000"`` becomes ``0.50000000``), never through
a float on our side; what the client's parser makes of them is its business. Only amount fields are converted (by
name: quantities, prices, balances, fees, PnL, book levels ...); ids, client order ids and free text stay strings
even when they look like numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

PARAM = "amounts"
NUMBER = "number"

AMOUNT_KEYS = frozenset(
    {
        "quantity",
        "price",
        "available",
        "locked",
        "total",
        "fee",
        "reserved",
        "balance",
        "amount",
        "last",
        "bid",
        "ask",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "min_quantity",
        "min_notional",
        "max_notional",
        "quantity_step",
        "price_tick",
        "total_equity_usd",
    }
)
AMOUNT_SUFFIXES = ("_price", "_quantity", "_pnl", "_usd", "_amount", "_quote", "_volume", "_percent", "_bps", "_fee")
LEVEL_KEYS = frozenset({"bids", "asks"})
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_MARK = "\x01"
_MARKED = re.compile(r'"\\u0001(-?\d+(?:\.\d+)?)\\u0001"')


def _is_amount(key: str) -> bool:
    return key in AMOUNT_KEYS or key.endswith(AMOUNT_SUFFIXES)


def _mark(value: Any) -> Any:
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return f"{_MARK}{value}{_MARK}"
    return value


def _convert(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _convert(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key in LEVEL_KEYS:
            return [[_mark(x) for x in level] if isinstance(level, list) else _convert(level) for level in value]
        return [_convert(v, key) for v in value]
    if key is not None and _is_amount(key):
        return _mark(value)
    return value


def dumps(value: Any, *, numbers: bool) -> str:
    """JSON text of ``value``; with ``numbers``, its amount strings become JSON numbers (same digits)."""
    if not numbers:
        return json.dumps(value, separators=(",", ":"))
    return _MARKED.sub(r"\1", json.dumps(_convert(value), separators=(",", ":")))


def wants_numbers(*, query: dict[str, list[str]] | Any, accept: str) -> bool:
    values = query.getlist(PARAM) if hasattr(query, "getlist") else query.get(PARAM, [])
    if NUMBER in values:
        return True
    return any(
        param.strip().lower() == f"{PARAM}={NUMBER}" for part in accept.split(",") for param in part.split(";")[1:]
    )


def _strip_accept(accept: str) -> str:
    parts = []
    for part in accept.split(","):
        pieces = [p for p in part.split(";") if p.strip().lower() != f"{PARAM}={NUMBER}"]
        parts.append(";".join(pieces))
    return ",".join(parts)


class NumberFormatMiddleware:
    """Takes the opt-in out of the request (the views validate their query strictly and negotiate ``Accept``
    exactly) and converts the JSON answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        accept = request.META.get("HTTP_ACCEPT", "")
        numbers = request.path.startswith("/api/") and wants_numbers(query=request.GET, accept=accept)
        if numbers:
            if PARAM in request.GET:
                query = request.GET.copy()
                query.pop(PARAM)
                request.GET = query
                request.META["QUERY_STRING"] = query.urlencode()
            request.META["HTTP_ACCEPT"] = _strip_accept(accept)
        response = self.get_response(request)
        if numbers and response.get("Content-Type", "").startswith("application/json") and not response.streaming:
            try:
                body = json.loads(response.content, parse_float=lambda s: f"{_MARK}{s}{_MARK}")
            except ValueError:
                return response
            response.content = dumps(body, numbers=True).encode()
            response["Content-Length"] = str(len(response.content))
        return response

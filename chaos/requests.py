"""What a request does, for scoping faults: its operation, and the account and market it names.

Shared by the ASGI layer (latency, before Django runs) and Django's middleware (downtime). The Binance-style
facade's paths (/api/v3/...) map to the same operations.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

# Paths every fault leaves alone: health and readiness (downtime acts on readiness itself), the chaos API, the
# schema and docs, metrics, the admin.
EXEMPT = re.compile(r"^/(chaos(/|$)|metrics$|admin/|static/|api/schema|api/docs|api/redoc|api/v1/(health|ready)$)")
TRADING = re.compile(r"^/(api/v1|api/v3|fapi|sapi)/")
_ACCOUNT_IN_PATH = re.compile(r"^/api/v1/accounts/([0-9a-fA-F-]{36})(/|$)")
_SYMBOL_IN_PATH = re.compile(r"^/api/v1/markets/([A-Za-z]+(?:[-_/][A-Za-z]+)?)")

_V3_MARKET_DATA = {
    "depth",
    "trades",
    "historicalTrades",
    "aggTrades",
    "klines",
    "uiKlines",
    "avgPrice",
    "ticker",
    "exchangeInfo",
    "time",
    "ping",
}


def is_trading(path: str) -> bool:
    """A call downtime and latency act on: the trading API (not health, chaos, metrics, docs, admin)."""
    return bool(TRADING.match(path)) and not EXEMPT.match(path)


def operation_of(method: str, path: str) -> str:
    method = method.upper()
    if path.startswith("/api/v1/"):
        rest = path[len("/api/v1/") :].rstrip("/")
        head = rest.split("/", 1)[0]
        if head == "orders":
            if rest == "orders":
                return {"POST": "place_order", "DELETE": "cancel_order"}.get(method, "get_order")
            return "cancel_order" if method == "DELETE" else "get_order"
        if head == "trades":
            return "get_trades"
        if head == "markets":
            return "market_data" if method == "GET" else "other"
        if head == "accounts":
            return "get_balance" if rest.endswith("/balances") else "account"
        return "other"
    if path.startswith("/api/v3/"):
        rest = path[len("/api/v3/") :].rstrip("/")
        head = rest.split("/", 1)[0]
        if head in ("order", "orderList", "sor"):
            return {"POST": "place_order", "DELETE": "cancel_order"}.get(method, "get_order")
        if head in ("openOrders", "allOrders", "openOrderList", "allOrderList"):
            return "cancel_order" if method == "DELETE" else "get_order"
        if head == "myTrades":
            return "get_trades"
        if head == "account":
            return "get_balance"
        if head in _V3_MARKET_DATA or head.startswith("ticker"):
            return "market_data"
    return "other"


def scope_of(method: str, path: str, query_string: bytes | str, body: bytes) -> dict[str, Any]:
    """{"operation", "account_id", "symbol", "client_order_id"} of a request (each may be None)."""
    query = parse_qs(query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string)
    data: dict[str, Any] = {}
    if body[:1] == b"{":
        try:
            loaded = json.loads(body)
            data = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            data = {}
    elif body and b"=" in body[:200]:
        data = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}

    def first(*names: str) -> str | None:
        for name in names:
            value = data.get(name)
            if value is None and query.get(name):
                value = query[name][0]
            if isinstance(value, str) and value:
                return value
        return None

    account = first("account_id")
    match = _ACCOUNT_IN_PATH.match(path)
    if match:
        account = match.group(1)
    symbol = first("symbol")
    match = _SYMBOL_IN_PATH.match(path)
    if match:
        symbol = match.group(1)
    return {
        "operation": operation_of(method, path),
        "account_id": account,
        "symbol": symbol,
        "client_order_id": first("client_order_id", "newClientOrderId", "origClientOrderId"),
    }

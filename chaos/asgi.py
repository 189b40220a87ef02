"""The ASGI side of chaos, in front of Django (exchange/asgi.py): latency before the request is handled, and the
dropped connection of a lost answer.

* Latency sleeps on the event loop, after the request (and its body) has arrived and before Django is given it, so
  a delayed request holds a socket, not one of the worker's few threads, and other requests go on meanwhile.
  Scope: the operation (chaos/requests.py), the account named in the path, query or JSON body (by id, or by label:
  looked up once per account and process), the market.
* A response marked ``X-Chaos-Drop`` (chaos/effects.py ``lost_answer``) is not sent whole: its start is passed on
  and its body never, so the server closes the connection mid-response and the client has no answer (the order
  is committed).

The snapshot of what is in force is refreshed in a thread when stale, never with a query on the event loop. The ids
of the latency injections that delayed a request reach Django in the ``X-Chaos-Latency`` header (one a client sends
is removed first), so an order placed by a delayed request carries its chaos_id too (chaos/middleware.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from chaos import requests, state

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_labels: dict[str, frozenset[str]] = {}


def _account_keys(account_id: str | None) -> frozenset[str]:
    """The account's id and label (and its owner's username), read once per process."""
    if not account_id:
        return frozenset()
    if account_id in _labels:
        return _labels[account_id]
    from accounts.models import Account

    try:
        row = Account.objects.filter(account_id=account_id).values_list("label", "owner__username").first()
    except Exception:
        row = None
    keys = frozenset(k for k in (account_id, *(row or ())) if k)
    if len(_labels) > 10_000:
        _labels.clear()
    _labels[account_id] = keys
    return keys


LATENCY_HEADER = b"x-chaos-latency"


async def delay_for(scope: Scope, body: bytes) -> tuple[float, list[str]]:
    """Seconds the request waits before Django handles it (0 when no latency injection covers it), and the ids of
    the injections that asked for it."""
    path = scope.get("path", "")
    if not requests.is_trading(path):
        return 0.0, []
    if not state.snapshot_fresh():
        await asyncio.to_thread(state.refresh)
    injections = state.in_force("latency")
    if not injections:
        return 0.0, []
    from chaos import effects

    info = requests.scope_of(scope.get("method", "GET"), path, scope.get("query_string", b""), body)
    keys: frozenset[str] = frozenset()
    if any(i.accounts for i in injections) and info["account_id"]:
        keys = await asyncio.to_thread(_account_keys, info["account_id"])
    symbol = None
    if info["symbol"]:
        from chaos.services import symbol_normalize

        try:
            symbol = symbol_normalize(info["symbol"])
        except Exception:
            symbol = None
    return effects.latency(operation=info["operation"], account_keys=keys, symbol=symbol, key=info["client_order_id"])


def wrap(app: ASGIApp) -> Callable[[Scope, Any, Any, bytes], Awaitable[None]]:
    """``app`` (given the request body already read) with chaos's latency and dropped answers."""

    async def run(scope: Scope, receive: Any, send: Any, body: bytes) -> None:
        # The header that tells Django which latency injections delayed the request is ours alone.
        headers = [(n, v) for n, v in scope.get("headers", []) if n.lower() != LATENCY_HEADER]
        delay, ids = await delay_for(scope, body)
        if delay > 0:
            headers.append((LATENCY_HEADER, ",".join(ids).encode()))
            await asyncio.sleep(delay)
        scope = {**scope, "headers": headers}
        dropped = False

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            nonlocal dropped
            if dropped:
                return
            if message["type"] == "http.response.start":
                if any(name.lower() == b"x-chaos-drop" for name, _ in message.get("headers", [])):
                    # The response starts but its body never comes: the server closes the connection when the
                    # application returns mid-response (gunicorn's ASGI worker does), and the client has no answer.
                    dropped = True
            await send(message) if not (dropped and message["type"] == "http.response.body") else None

        await app(scope, receive, guarded_send)

    return run

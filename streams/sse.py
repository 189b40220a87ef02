"""Server-sent event endpoints, served on the event loop of the ASGI worker (exchange/asgi.py ``ROUTES``): an open
stream costs a socket and a queue, never one of the threads that place orders.

    GET /api/v1/stream/orders      first ``orders`` (the current list, as GET /api/v1/orders), then ``order``
    GET /api/v1/stream/positions   first ``positions`` (as GET /api/v1/positions), then ``position``
    GET /api/v1/stream/trades      ``trade``: the key's fills, as GET /api/v1/trades shows them
    GET /api/v1/stream/balances    ``balance``: {account_id, asset, available, locked, total, updated_at}
    GET /api/v1/stream/markets/{symbol}  public (read scope): first ``book`` (the whole book, ``snapshot`` true),
                                   then ``book`` (levels that changed, quantity "0" for a level gone, with the
                                   book's ``sequence``), ``trade`` (as GET /markets/{symbol}/trades) and ``ticker``

Every event has an ``id:`` (streams/hub.py: the delivery sequence, strictly increasing); a client resumes with the
``Last-Event-ID`` header (EventSource sends it when it reconnects) or ``?last_event_id=``: it gets what it missed,
from the outbox, and nothing twice; the first list is then not sent again (unless the id is older than the
outbox's retention). The key's own accounts only (operators and monitors: every account); ``account_id=`` narrows
to one account, ``symbol=`` to one market. A comment line is sent every ``STREAM_HEARTBEAT``. A client that falls
``STREAM_QUEUE_SIZE`` events behind gets a final ``error`` event (code ``slow_consumer``, with the last id it got)
and is disconnected; on shutdown every stream ends with an ``error`` event with code ``shutting_down``.

Authentication: ``Authorization: Api-Key ...`` / ``X-Api-Key``, or, for a browser EventSource, ``?token=`` from
``POST /api/v1/stream/token`` (streams/services.py). ``amounts=number`` (or an ``Accept`` parameter) renders amounts
as JSON numbers (streams/numbers.py). CORS: the origins of ``CORS_ALLOWED_ORIGINS``, preflight included.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import structlog
from django.conf import settings
from django.db import close_old_connections, connection
from prometheus_client import Counter, Gauge

from exchange import errors
from streams import numbers, rendering
from streams.hub import Filter, HubStopped, SlowConsumer, hub
from streams.rendering import Published, parse_event_id

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = structlog.get_logger("exchange.streams")
access_log = structlog.get_logger("exchange.access")

PREFIX = "/api/v1/stream/"
NAMES = ("orders", "positions", "trades", "balances")
PATHS = (*tuple(PREFIX + name for name in NAMES), PREFIX + "markets/")
QUERY = {"token", "amounts", "account_id", "symbol", "last_event_id"}

OPEN_STREAMS = Gauge(
    "exchange_streams_open", "Server-sent event streams open now.", ["stream"], multiprocess_mode="livesum"
)
EVENTS_SENT = Counter("exchange_stream_events_sent", "Events sent on server-sent event streams.", ["stream"])
STREAMS_CLOSED = Counter("exchange_streams_closed", "Streams ended, by reason.", ["reason"])

_open: set[asyncio.Task[Any]] = set()


@dataclass
class Spec:
    stream: str
    filter: Filter
    after: tuple[int, int] | None
    numbers: bool
    first: Callable[[], tuple[str, dict[str, Any]]] | None = None  # (event name, payload) of the current state
    market_pk: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


# --- opening (in a worker thread: database reads) ---------------------------------------------------------------
def _authenticate(headers: dict[str, str], query: dict[str, list[str]], client: str) -> tuple[Any, Any]:
    from django.http import HttpRequest
    from rest_framework.exceptions import AuthenticationFailed

    from accounts.authentication import ApiKeyAuthentication
    from streams.services import stream_token_check

    token = (query.get("token") or [""])[0]
    if token and not headers.get("authorization") and not headers.get("x-api-key"):
        found = stream_token_check(token=token)
        if found is None:
            raise errors.NotAuthenticated("The stream token is invalid or has expired.")
        return found
    request = HttpRequest()
    request.META = {"REMOTE_ADDR": client}
    if "authorization" in headers:
        request.META["HTTP_AUTHORIZATION"] = headers["authorization"]
    if "x-api-key" in headers:
        request.META["HTTP_X_API_KEY"] = headers["x-api-key"]
    if "x-forwarded-for" in headers:
        request.META["HTTP_X_FORWARDED_FOR"] = headers["x-forwarded-for"]
    try:
        found = ApiKeyAuthentication().authenticate(request)  # type: ignore[arg-type]
    except AuthenticationFailed as exc:
        raise errors.NotAuthenticated(str(exc.detail)) from None
    if found is None:
        raise errors.NotAuthenticated("An API key (header) or a stream token (?token=) is required.")
    return found


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise errors.ValidationFailed(details={"fields": {name: ["Give this parameter once."]}})
    return values[0]


def open_spec(path: str, headers: dict[str, str], query: dict[str, list[str]], client: str) -> Spec:
    """Authenticate and authorize a stream request and say what it streams. Raises an ExchangeError."""
    from accounts.models import Scope as KeyScope
    from accounts.selectors import account_get, account_list, actor_sees_all
    from markets.selectors import market_get

    close_old_connections()
    try:
        unknown = sorted(set(query) - QUERY)
        if unknown:
            raise errors.ValidationFailed(details={"fields": {k: ["Unknown parameter."] for k in unknown}})
        name = path[len(PREFIX) :]
        symbol_in_path = None
        if name.startswith("markets/"):
            symbol_in_path, name = name[len("markets/") :], "markets"
        if name not in NAMES and name != "markets":
            raise errors.NotFound("No such stream.", details={"path": path[:100]})
        user, key = _authenticate(headers, query, client)
        if not key.has_scope(KeyScope.READ):
            raise errors.PermissionDenied("This API key lacks the 'read' scope.")
        raw_last = headers.get("last-event-id") or _one(query, "last_event_id")
        after = parse_event_id(raw_last)
        if raw_last and after is None:
            raise errors.ValidationFailed(details={"fields": {"last_event_id": ["Not an event id of this stream."]}})
        oldest = None
        if after is not None:
            from streams.hub import first_seq

            oldest = first_seq()
            if oldest is not None and after[0] + 1 < oldest:
                after = None  # older than what the outbox keeps: start again from the current state
        wants_numbers = numbers.wants_numbers(query=query, accept=headers.get("accept", ""))
        if name == "markets":
            market = market_get(symbol=symbol_in_path)
            spec = Spec(
                "market",
                Filter(topics={rendering.TRADE, rendering.BOOK, rendering.TICKER}, markets={market.pk}),
                after,
                wants_numbers,
                market_pk=market.pk,
            )
            return spec
        account_id = _one(query, "account_id")
        markets = None
        symbol = _one(query, "symbol")
        if symbol:
            markets = {market_get(symbol=symbol).pk}
        if account_id:
            account = account_get(account_id=account_id, user=user, key=key)
            accounts: set[int] | None = {account.pk}
        elif actor_sees_all(key=key):
            accounts = None
        else:
            accounts = set(account_list(user=user, key=key).values_list("pk", flat=True))
        topic = {
            "orders": rendering.ORDER,
            "positions": rendering.POSITION,
            "trades": rendering.FILL,
            "balances": rendering.BALANCE,
        }[name]
        spec = Spec(name, Filter(topics={topic}, accounts=accounts, markets=markets), after, wants_numbers)
        if name == "orders":
            spec.first = lambda: _orders_now(user=user, key=key, account_id=account_id, symbol=symbol)
        elif name == "positions":
            spec.first = lambda: _positions_now(user=user, key=key, account_id=account_id)
        return spec
    finally:
        connection.close()


def _orders_now(*, user: Any, key: Any, account_id: str | None, symbol: str | None) -> tuple[str, dict[str, Any]]:
    from orders import selectors
    from orders.serializers import OrderOut

    try:
        qs = selectors.order_list(user=user, key=key, account_id=account_id, symbol=symbol)
        orders = list(qs.prefetch_related(selectors.FILLS).order_by("-created_at", "-id")[:100])
        return "orders", {"orders": OrderOut(orders, many=True).data}
    finally:
        connection.close()


def _positions_now(*, user: Any, key: Any, account_id: str | None) -> tuple[str, dict[str, Any]]:
    from risk.position_apis import PositionOut
    from risk.positions import position_list

    try:
        return "positions", {
            "positions": PositionOut(position_list(user=user, key=key, account_id=account_id), many=True).data
        }
    finally:
        connection.close()


def _book_now(market_pk: int) -> tuple[str, dict[str, Any]]:
    try:
        return "book", {**hub().books.current(market_pk), "snapshot": True}
    finally:
        connection.close()


# --- CORS --------------------------------------------------------------------------------------------------------
def cors_headers(origin: str | None) -> list[tuple[bytes, bytes]]:
    if not origin or origin not in settings.CORS_ALLOWED_ORIGINS:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", ", ".join(settings.CORS_EXPOSE_HEADERS).encode()),
        (b"vary", b"origin"),
    ]


def _preflight(origin: str | None) -> list[tuple[bytes, bytes]]:
    headers = cors_headers(origin)
    if headers:
        headers += [
            (b"access-control-allow-methods", b"GET, OPTIONS"),
            (b"access-control-allow-headers", ", ".join(settings.CORS_ALLOW_HEADERS).encode()),
            (b"access-control-max-age", b"86400"),
        ]
    return headers


# --- the ASGI application ---------------------------------------------------------------------------------------
def _event(event_id: str, name: str, payload: dict[str, Any], *, as_numbers: bool) -> bytes:
    data = numbers.dumps(payload, numbers=as_numbers)
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    import json

    content = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    started = time.perf_counter()
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    incoming = headers.get("x-request-id", "")
    from exchange.middleware import _SANE_REQUEST_ID

    request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    origin = headers.get("origin")
    base = [(b"x-request-id", request_id.encode())]
    path, method = scope.get("path", ""), scope.get("method", "GET")
    status, sent, reason = 200, 0, "client_closed"
    stream_name = "unknown"
    try:
        if method == "OPTIONS":
            status = 200
            await _answer(send, 200, {}, base + _preflight(origin))
            return
        if method not in ("GET", "HEAD"):
            status = 405
            body = {
                "error": {
                    "code": "method_not_allowed",
                    "message": f"Method {method} not allowed.",
                    "details": {},
                    "request_id": request_id,
                }
            }
            await _answer(send, 405, body, base + cors_headers(origin) + [(b"allow", b"GET, OPTIONS")])
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        client = (scope.get("client") or ("unknown", 0))[0]
        if not hub().running:
            hub().start()
        try:
            spec = await asyncio.to_thread(open_spec, path, headers, query, client)
        except errors.ExchangeError as exc:
            status = exc.status_code
            body = {
                "error": {"code": exc.code, "message": exc.message, "details": exc.details, "request_id": request_id}
            }
            extra = [(b"retry-after", str(exc.retry_after).encode())] if getattr(exc, "retry_after", None) else []
            await _answer(send, status, body, base + cors_headers(origin) + extra)
            return
        stream_name = spec.stream
        reason, sent = await _stream(spec, receive, send, base + cors_headers(origin))
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
        # The path only: the query string may carry a stream token.
        access_log.info(
            "request",
            method=method,
            route=PREFIX + ("markets/{symbol}" if stream_name == "market" else stream_name),
            path=path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            events_sent=sent,
            end=reason,
            request_id=request_id,
        )


async def _stream(spec: Spec, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]) -> tuple[str, int]:
    """Send the stream until the client leaves, falls behind or the process stops. Returns (why it ended, events)."""
    stream = hub().open(spec.filter, after=spec.after)
    try:
        await stream.start()
    except HubStopped:
        await _answer(
            send, 503, {"error": {"code": "service_unavailable", "message": "Shutting down.", "details": {}}}, headers
        )
        return "shutting_down", 0
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                *headers,
            ],
        }
    )
    OPEN_STREAMS.labels(spec.stream).inc()
    sent = 0

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                stream.interrupt(ClientGone())
                return

    watcher = asyncio.create_task(watch())
    task = asyncio.current_task()
    if task is not None:
        _open.add(task)
    reason = "client_closed"
    try:
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        first = spec.first
        if spec.market_pk is not None and spec.after is None:
            market_pk = spec.market_pk

            def first() -> tuple[str, dict[str, Any]]:
                return _book_now(market_pk)

        versions: dict[str, datetime] = {}
        if first is not None and spec.after is None:
            name, payload = await asyncio.to_thread(first)
            versions = _versions(payload.get("orders") or [])
            await send(
                {
                    "type": "http.response.body",
                    "body": _event(str(stream.cursor), name, payload, as_numbers=spec.numbers),
                    "more_body": True,
                }
            )
            sent += 1
        heartbeat = settings.STREAM_HEARTBEAT
        while True:
            try:
                events = await asyncio.wait_for(stream.batch(), timeout=heartbeat)
            except TimeoutError:
                await send({"type": "http.response.body", "body": b": heartbeat\n\n", "more_body": True})
                continue
            except ClientGone:
                return reason, sent
            except SlowConsumer:
                reason = "slow_consumer"
                await _final(
                    send, "slow_consumer", "The client fell too far behind; resume from the last id.", sent_id(stream)
                )
                return reason, sent
            except HubStopped:
                reason = "shutting_down"
                await _final(send, "shutting_down", "The service is stopping; reconnect.", sent_id(stream))
                return reason, sent
            if versions:
                events = [e for e in events if not _older_than_shown(e.payload, versions)]
            if not events:
                continue
            # One write for what was queued together, each event encoded once for all of its subscribers.
            body = b"".join(_wire(e, spec.numbers) for e in events)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            stream.last_id = events[-1].id  # type: ignore[attr-defined]
            sent += len(events)
            EVENTS_SENT.labels(spec.stream).inc(len(events))
    except (OSError, asyncio.CancelledError):
        reason = "client_closed"
        return reason, sent
    finally:
        STREAMS_CLOSED.labels(reason).inc()
        OPEN_STREAMS.labels(spec.stream).dec()
        watcher.cancel()
        if task is not None:
            _open.discard(task)
        stream.close()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class ClientGone(Exception):
    """The client closed its stream."""


def _wire(event: Published, as_numbers: bool) -> bytes:
    body = event.wire.get(as_numbers)
    if body is None:
        body = event.wire[as_numbers] = _event(event.id, event.name, event.payload, as_numbers=as_numbers)
    return body


def _versions(orders: list[dict[str, Any]]) -> dict[str, datetime]:
    """order id -> the ``updated_at`` the first list showed."""
    return {o["order_id"]: _when(o["updated_at"]) for o in orders if o.get("updated_at")}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _older_than_shown(payload: dict[str, Any], versions: dict[str, datetime]) -> bool:
    """Whether an order event is a state the first list already showed, or an older one: committed before the list
    was read but stamped after the stream's cursor. Skipped, so the client never goes back to an older state. The
    first newer event of an order ends the check for it (all later ones are newer still)."""
    shown = versions.get(payload.get("order_id", ""))
    if shown is None:
        return False
    if _when(payload["updated_at"]) <= shown:
        return True
    del versions[payload["order_id"]]
    return False


def sent_id(stream: Any) -> str | None:
    return getattr(stream, "last_id", None)


async def _final(send: Send, code: str, message: str, last_id: str | None) -> None:
    payload = {"code": code, "message": message, "last_event_id": last_id}
    head = f"id: {last_id}\n" if last_id else ""
    await send(
        {
            "type": "http.response.body",
            "body": f"{head}event: error\ndata: {numbers.dumps(payload, numbers=False)}\n\n".encode(),
            "more_body": True,
        }
    )


async def lifespan(receive: Receive, send: Send, *, with_hub: bool) -> None:
    """The ASGI lifespan of a process serving streams: ``with_hub``, the stream hub starts with it, so events are
    stamped and delivered (and the audit hand-off runs) from the start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if with_hub:
                startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def startup() -> None:
    """Worker start: the hub delivers from now on (and hands events to the audit correlator when configured)."""
    from streams import audit

    current = hub()
    current.forwarder = audit.forwarder()
    current.start()


def shutdown() -> None:
    """SIGTERM: every stream of this process ends now with a final event (the hub tells each subscriber; the relay
    ends each relayed stream)."""
    from streams import proxy

    proxy.shutdown()
    hub().stop(timeout=0)

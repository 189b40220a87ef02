"""The stream paths in the web workers when ``serve`` runs a stream server, for the requests whose connection is
not handed to it (streams/handoff.py: a stream request on a connection that served others first, or while the
stream server restarts): each is relayed, bytes as they come, to the stream server (streams/server.py) over its
Unix socket.

Why a process of its own: rendering an event (an order with its fills, a position, a book) costs database reads and
Python time. Done in every web worker, it is done once per worker for the same event, and on the threads' GIL that
places orders. The stream server renders each event once for every subscriber of the instance; a web worker only
copies bytes, which costs a read and a write per batch of events on its event loop, never one of its threads.

The relay speaks HTTP/1.0 upstream, so the answer is not chunked and ends when the stream server closes it; the
client's own connection is served by the worker as usual (keep-alive, chunked). The client's address travels in
``X-Exchange-Peer`` (the stream server takes it as the peer: its socket is in a directory only this user can
open; a client's own ``X-Exchange-Peer`` is dropped here). When the worker stops (SIGTERM, or gunicorn recycling
it) while the stream server runs on, each relayed stream ends with a final ``error`` event (``shutting_down``, with
the last id relayed) at an event boundary, as the stream server itself ends them; the client resumes elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from django.conf import settings

from streams.handoff import STREAM_CONNECTIONS

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = structlog.get_logger("exchange.streams")

PEER_HEADER = b"x-exchange-peer"
# Hop-by-hop headers (RFC 9110 7.6.1) and what the relay sets itself.
_NOT_FORWARDED = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"proxy-connection"}
_NOT_RETURNED = {b"connection", b"keep-alive", b"transfer-encoding", b"date", b"server"}
HEAD_LIMIT = 65536
READ_SIZE = 65536

_relays: set[Relay] = set()


class Relay:
    """One relayed request: the upstream connection, and where the bytes relayed so far end."""

    def __init__(self) -> None:
        self.at_boundary = True  # the bytes relayed so far end with a whole event
        self.last_id: str | None = None
        self.streaming = False
        self.ended = False
        self.stopping = False
        self.task: asyncio.Task[Any] | None = None

    def saw(self, chunk: bytes) -> None:
        self.at_boundary = chunk.endswith(b"\n\n")
        if b"\nevent: error\n" in chunk or chunk.startswith(b"event: error\n"):
            self.ended = True  # the stream server's own final event: nothing to add
        at = chunk.rfind(b"\nid: ")
        start = at + 5 if at >= 0 else 4 if chunk.startswith(b"id: ") else -1
        if start >= 0:
            end = chunk.find(b"\n", start)
            if end > start:  # a whole id line (one cut by the read is left for the next)
                self.last_id = chunk[start:end].decode("latin-1")


def _request_head(scope: Scope) -> bytes:
    path = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
    query = scope.get("query_string", b"")
    target = path + (b"?" + query if query else b"")
    lines = [scope.get("method", "GET").encode("latin-1") + b" " + target + b" HTTP/1.0"]
    for name, value in scope.get("headers", []):
        lower = name.lower()
        if lower in _NOT_FORWARDED or lower == PEER_HEADER or lower in (b"content-length", b"expect"):
            continue
        lines.append(name + b": " + value)
    client = scope.get("client")
    if client:
        lines.append(PEER_HEADER + b": " + str(client[0]).encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    status_line, *header_lines = head.split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name and name.strip().lower() not in _NOT_RETURNED:
            headers.append((name.strip().lower(), value.strip()))
    return status, headers


async def _unavailable(send: Send) -> None:
    request_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "error": {
                "code": "service_unavailable",
                "message": "The stream server is not available; retry shortly.",
                "details": {},
                "request_id": request_id,
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI: relay this request to the stream server and its answer back."""
    if scope["type"] != "http":
        return
    STREAM_CONNECTIONS.labels("relayed").inc()
    try:
        reader, writer = await asyncio.open_unix_connection(settings.STREAM_SERVER_SOCKET, limit=HEAD_LIMIT * 2)
    except OSError as exc:
        logger.warning("stream_server_unreachable", error=f"{type(exc).__name__}: {exc}"[:200])
        await _unavailable(send)
        return
    relay = Relay()
    relay.task = asyncio.current_task()
    _relays.add(relay)
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                writer.close()  # the stream server sees its subscriber leave; the read below ends
                return

    watcher = asyncio.create_task(watch())
    try:
        writer.write(_request_head(scope))
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            await _unavailable(send)
            return
        status, headers = _parse_head(head[:-4])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        relay.streaming = status == 200
        while True:
            try:
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    return
                relay.saw(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except asyncio.CancelledError:
                if not relay.stopping:
                    raise
                if relay.streaming and not relay.ended and not gone:
                    await _final(send, relay, reader)
                return
    except OSError:
        return
    finally:
        _relays.discard(relay)
        watcher.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _final(send: Send, relay: Relay, reader: asyncio.StreamReader) -> None:
    """End a relayed stream at an event boundary with the stream server's own final event for a stop."""
    with contextlib.suppress(TimeoutError, OSError, asyncio.IncompleteReadError):
        while not relay.at_boundary:  # finish the event under way (it is being written: it comes at once)
            chunk = await asyncio.wait_for(reader.readuntil(b"\n\n"), timeout=1.0)
            relay.saw(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if not relay.at_boundary:
        return
    message = "The service is stopping; reconnect."
    payload = {"code": "shutting_down", "message": message, "last_event_id": relay.last_id}
    head = f"id: {relay.last_id}\n" if relay.last_id else ""
    body = f"{head}event: error\ndata: {json.dumps(payload)}\n\n".encode()
    await send({"type": "http.response.body", "body": body, "more_body": True})


def shutdown() -> None:
    """This worker is stopping: end every relayed stream (each with a final event)."""
    for relay in list(_relays):
        relay.stopping = True
        if relay.task is not None:
            relay.task.get_loop().call_soon_threadsafe(relay.task.cancel)

"""ASGI entry point of ``serve``: a small router in front of the Django application.

gunicorn's native ASGI worker (``exchange/gunicorn_worker.py``) reads every connection on an event loop, so a slow
or idle client costs a socket, never a thread. Each complete request is then handed to Django:

* ``ROUTES``: (path prefix, ASGI app) pairs for endpoints that are asynchronous by nature (server-sent event
  streams, WebSockets); the first matching prefix wins. The live streams of streams/sse.py are here: relayed to
  the stream server that ``serve`` runs (streams/proxy.py, streams/server.py), or served in this process.
* everything else goes to the Django WSGI application through ``a2wsgi.WSGIMiddleware``, which runs it on a pool
  of ``WEB_THREADS`` threads per worker, once the request body has arrived (read on the event loop, so a slow
  upload holds no thread). Not Django's own ASGI handler: measured on this machine it serves about a
  third of the requests per second that the WSGI application does behind the same worker (docs/benchmarks.md).

Django's request cycle, middleware (request ids, access log, metrics) and database connections (one per thread,
kept for ``CONN_MAX_AGE``) behave exactly as under a WSGI server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware
from django.conf import settings

from chaos.asgi import wrap as chaos_wrap
from exchange.wsgi import application as django_wsgi

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

from binance_api import ws as binance_ws  # noqa: E402
from streams import proxy, sse  # noqa: E402 - after Django is set up by exchange.wsgi

# The live streams (streams/sse.py): relayed to the stream server when ``serve`` runs one, else served here.
ROUTES: list[tuple[str, ASGIApp]] = [
    (path, proxy.app if settings.STREAM_SERVER_SOCKET else sse.app) for path in sse.PATHS
]
# Binance's WebSocket streams and WebSocket API (binance_api/ws.py).
ROUTES += [(path, binance_ws.app) for path in binance_ws.PATHS]

_django = WSGIMiddleware(django_wsgi, workers=settings.WEB_THREADS)


async def django_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The Django application, given the request body only once it has arrived whole.

    The body is read here, on the event loop, before a thread is taken: a client that sends its body slowly holds
    a socket, not one of the few threads (the worker closes it after ``HTTP_BODY_TIMEOUT``). A body declared
    larger than Django's upload limit is not read at all: Django refuses it (413) from its Content-Length."""
    if scope["type"] != "http" or _declared_length(scope) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        await _django(scope, receive, send)
        return
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the client left (or was timed out) before its body arrived: nobody to answer
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    replayed = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal replayed
        if replayed:
            return await receive()  # after the body, only a disconnect can come
        replayed = True
        return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    await _with_chaos(scope, replay, send, b"".join(chunks))


# Chaos (chaos/asgi.py): injected latency before Django handles the request, and lost answers.
_with_chaos = chaos_wrap(_django)


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        # With a stream server (serve's default) the workers relay the stream paths and run no hub of their own
        # (the Binance WebSocket streams start one when the first of them opens).
        await sse.lifespan(receive, send, with_hub=not settings.STREAM_SERVER_SOCKET)
        return
    path = scope.get("path", "")
    for prefix, app in ROUTES:
        if path.startswith(prefix):
            await app(scope, receive, send)
            return
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})  # no WebSocket endpoint at this path
        return
    await django_app(scope, receive, send)

"""The stream server: the process ``manage.py serve`` runs beside the web workers to serve every live stream of the
instance (docs/architecture.md, "The stream server"). A gunicorn of one worker (the same ASGI worker class) on a
Unix socket, running this application: the server-sent event endpoints of streams/sse.py and the stream hub, which
renders each committed event once for all of the instance's subscribers. The web workers hand each stream's
connection over (streams/handoff.py), or relay the request here when they cannot (streams/proxy.py).

The client's address comes in ``X-Exchange-Peer`` from the relay (the socket sits in a directory only this user
can open, so nothing else can set it); API-key failures count against it as they would in a web worker.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings.local")
django.setup()

# Three busy threads share one GIL here (the event loop and the hub's two lanes), and a lane gives it up at every
# database round trip: with Python's default 5 ms switch interval, taking it back cost a lane up to that long per
# query, most of a batch's time under load (py-spy). 1 ms hands it over sooner.
sys.setswitchinterval(0.001)

from streams import sse  # noqa: E402 - after Django is set up
from streams.proxy import PEER_HEADER, Receive, Scope, Send  # noqa: E402


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        _listen_for_handoffs()
        await sse.lifespan(receive, send, with_hub=True)
        return
    if scope["type"] != "http":
        return
    peer = next((value for name, value in scope.get("headers", []) if name == PEER_HEADER), None)
    if peer is not None:
        scope = dict(scope)
        scope["client"] = (peer.decode("latin-1"), 0)
    path = scope.get("path", "")
    if any(path.startswith(prefix) for prefix in sse.PATHS):
        await sse.app(scope, receive, send)
        return
    await _not_found(send)


def _listen_for_handoffs() -> None:
    """Take the stream connections the web workers hand over (streams/handoff.py), beside the socket gunicorn
    listens on for the relayed ones."""
    from exchange import gunicorn_worker
    from streams import handoff

    worker = gunicorn_worker.current_worker
    binds = [b[len("unix:") :] for b in (worker.cfg.bind if worker is not None else []) if b.startswith("unix:")]
    if worker is not None and binds:
        handoff.listen(worker, handoff.path_for(binds[0]))


async def _not_found(send: Send) -> None:
    body: Any = b'{"error": {"code": "not_found", "message": "No such stream.", "details": {}}}'
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Handing a stream's connection to the stream server: the web worker that accepted it passes the socket itself
(``SCM_RIGHTS`` over a Unix socket) with the request it read, and the stream server serves the connection from then
on as if it had accepted it. Nothing is copied through the web worker afterwards.

Why: relayed (streams/proxy.py), every batch of events for every subscriber crosses a web worker's event loop
twice (a read from the stream server, a write to the client), in the process and on the GIL of the threads that
place orders. Handed off, a stream costs the web worker one ``sendmsg`` when it opens (docs/benchmarks.md has the
two measured side by side).

Which connections: the first request of a new connection that is a whole ``GET`` of a stream path with nothing
after it (no body, no pipelined request, no ``Upgrade``) and no ``X-Exchange-Peer`` header (the relay drops a
client's own, so such a request is relayed). Anything else, and whenever the hand-off fails (the stream server
is restarting, or its queue is full), is relayed as before: same paths, same answers. A handed-off connection is
closed after its stream (``Connection: close``), so a client never sends its next request to the stream server.

The hand-off socket is ``handoff.sock`` beside the stream server's own socket, in its directory of mode 0700.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import structlog
from prometheus_client import Counter

logger = structlog.get_logger("exchange.streams")

NAME = "handoff.sock"
MESSAGE_LIMIT = 65536  # a request head longer than this is relayed (gunicorn's own limit is lower)

STREAM_CONNECTIONS = Counter(
    "exchange_stream_connections",
    "Stream requests the web workers passed on: handed_off (the socket given to the stream server) or relayed.",
    ["how"],
)


def path_for(stream_socket: str) -> str:
    """The hand-off socket of the stream server whose own socket is ``stream_socket``."""
    return os.path.join(os.path.dirname(stream_socket), NAME)


def eligible(data: bytes, paths: tuple[bytes, ...]) -> bool:
    """Whether ``data``, the first bytes of a connection, are exactly one whole GET of a stream path that the
    stream server can take over as it is."""
    if not data.startswith(b"GET /") or len(data) > MESSAGE_LIMIT:
        return False
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 != len(data):  # headers not all here yet, or something after them
        return False
    line_end = data.find(b"\r\n")
    parts = data[:line_end].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return False
    path = parts[1].split(b"?", 1)[0]
    if not path.startswith(paths):
        return False
    head = data[line_end:end].lower()
    return not any(b"\r\n" + name + b":" in head for name in _NOT_HANDED_OFF)


# Headers that make a request one to relay: the client's own peer header (the relay drops it), a body, an upgrade.
_NOT_HANDED_OFF = (b"x-exchange-peer", b"content-length", b"transfer-encoding", b"upgrade")


class Sender:
    """A web worker's end: one connection to the stream server's hand-off socket, made again after the stream
    server restarts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock: socket.socket | None = None

    def send(self, head: bytes, fd: int) -> bool:
        """Give the connection ``fd`` and the request read from it to the stream server. False: it could not take
        it now (relay it instead); the connection is then untouched."""
        for _attempt in range(2):
            if self.sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sock.setblocking(False)
                try:
                    sock.connect(self.path)
                except OSError:
                    sock.close()
                    return False
                self.sock = sock
            try:
                socket.send_fds(self.sock, [head], [fd])
                return True
            except BlockingIOError:
                return False  # its queue is full: this one is relayed
            except OSError:  # it went away (restarted): connect again, once
                self.close()
        return False

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None


# --- the stream server's end -------------------------------------------------------------------------------------
def listen(worker: Any, path: str) -> socket.socket:
    """In the stream server's worker (on its event loop): take the connections the web workers hand over and serve
    each with the worker's own HTTP protocol, as if it had accepted them."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    server.listen(64)
    server.setblocking(False)
    loop = worker.loop

    def accept() -> None:
        try:
            conn, _ = server.accept()
        except OSError:  # nothing to accept after all (BlockingIOError), or the web worker is already gone
            return
        conn.setblocking(False)
        loop.add_reader(conn.fileno(), receive, conn)

    def receive(conn: socket.socket) -> None:
        try:
            head, fds, flags, _ = socket.recv_fds(conn, MESSAGE_LIMIT, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            head, fds, flags = b"", [], 0
        if not head and not fds:  # the web worker went away
            loop.remove_reader(conn.fileno())
            conn.close()
            return
        if not fds:
            return
        client = socket.socket(fileno=fds[0])
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            client.close()  # never sent so (eligible() bounds the head): drop it rather than serve half a request
            return
        client.setblocking(False)
        loop.create_task(serve(client, head))

    async def serve(client: socket.socket, head: bytes) -> None:
        from gunicorn.workers import gasgi

        protocol = gasgi.ASGIProtocol(worker)  # the worker's protocol class (exchange/gunicorn_worker.py)
        protocol._keepalive = 0  # one request: the client's next one goes to the port, not here
        try:
            await loop.connect_accepted_socket(lambda: protocol, client)
        except OSError:
            client.close()
            return
        protocol.data_received(head)

    loop.add_reader(server.fileno(), accept)
    logger.info("stream_handoff_listening", path=path)
    return server

"""A TCP proxy on a loopback port that a test can cut and restore, to simulate a dependency outage.

``stop()`` closes the listening socket and every connection in flight, so the service sees both of what a real
outage does: established connections die, new ones are refused. ``start()`` listens again on the same port, so
the service's configuration (DATABASE_URL pointing at the proxy) stays valid across the outage.
"""

from __future__ import annotations

import socket
import threading

from tests.support.processes import free_port

_ACCEPT_POLL_SECONDS = 0.1
_CHUNK = 65536


class TcpProxy:
    def __init__(self, *, target_host: str, target_port: int, listen_port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = listen_port or free_port()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._running = threading.Event()

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def start(self) -> TcpProxy:
        if self.running:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Rebinding the same port right after stop() must not wait for TIME_WAIT to expire.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        # A timeout, so the accept loop notices stop() without relying on close() waking a blocked accept().
        listener.settimeout(_ACCEPT_POLL_SECONDS)
        self._listener = listener
        self._running.set()
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        """Refuse new connections and cut every open one; returns when all proxy threads have ended."""
        self._running.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
            threads, self._threads = self._threads, []
        for conn in connections:
            _close(conn)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"tcp-proxy-{self.port}")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed by stop()
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if not self._running.is_set():
                    _close(client)
                    _close(upstream)
                    return
                self._connections.update((client, upstream))
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(_CHUNK):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            # One side ended: end the other too, as a real network path would.
            _close(source)
            _close(sink)
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)


def _close(sock: socket.socket) -> None:
    try:
        # shutdown() wakes a thread blocked in recv() on this socket; close() alone may not.
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

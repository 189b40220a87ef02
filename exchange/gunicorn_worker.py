"""gunicorn's native ASGI worker, with read timeouts and gunicorn's own error answers in the error envelope.

Why a subclass: gunicorn 27's ASGI worker reads connections on an event loop (uvloop), so slow clients hold no
thread, but it never closes a connection whose request headers do not finish (it only bounds the idle time
between keep-alive requests) and waits for a stalled body for the whole worker ``timeout``. A slowloris client
would keep its sockets forever. So each connection here gets two timers:

* ``HTTP_HEADER_TIMEOUT``: from the moment the connection opens until the request headers are complete. After a
  response, gunicorn's keep-alive timer (``keepalive``, 5 s) already bounds the wait for the next request's
  headers, so this timer covers the first request of a connection.
* ``HTTP_BODY_TIMEOUT``: from the end of the headers until the whole request body has arrived (a body trickled a
  byte at a time is as slow as a stalled one). Not while gunicorn has paused reading because the application has
  not consumed what it already has: that wait is ours, not the client's.

When a timer fires the connection is closed (the application, if it was waiting for the body, sees a disconnect).
And gunicorn answers malformed requests itself (400 for a bad request line, 414, 431 for too many or too large
headers, 501) in plain text: here they carry the project's JSON envelope and a request id.

In the web workers of ``serve`` with a stream server, the first request of a connection that is a stream is not
served here: the connection itself is handed to the stream server (streams/handoff.py).

The worker swaps in this protocol by replacing the name its server factory uses (``gasgi.ASGIProtocol``), in the
worker process only; everything else is gunicorn's own code.
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi
from gunicorn.workers.gasgi import ASGIWorker

_ERROR_CODES = {400: "bad_request", 414: "uri_too_long", 431: "request_header_fields_too_large", 501: "not_implemented"}


def _timeouts() -> tuple[float, float]:
    from django.conf import settings

    return settings.HTTP_HEADER_TIMEOUT, settings.HTTP_BODY_TIMEOUT


class ExchangeASGIProtocol(ASGIProtocol):
    header_timeout, body_timeout = 10.0, 10.0  # set from the settings when the worker starts

    # The web workers' sender of stream connections to the stream server (None: in the stream server itself, or
    # with STREAM_HANDOFF_ENABLED off), and the paths it takes.
    handoff: Any = None
    stream_paths: tuple[bytes, ...] = ()

    def __init__(self, worker: Any) -> None:
        super().__init__(worker)
        self._read_timer: Any = None
        self._handoff_checked = False

    # --- read timeouts -------------------------------------------------------------------------------------------
    def _arm_read_timer(self, seconds: float, what: str) -> None:
        self._cancel_read_timer()
        self._read_timer = self.worker.loop.call_later(seconds, self._read_timed_out, what)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self, what: str) -> None:
        self._read_timer = None
        if self._closed:
            return
        if what == "body" and self._reading_paused:
            # Not the client's stall: the application has not read what it already has.
            self._arm_read_timer(self.body_timeout, "body")
            return
        self.log.info("Closing connection: request %s not received within the read timeout", what)
        self._close_transport()
        if self._request_ready is not None:
            self._request_ready.set()  # let the connection loop see the close
        if self._body_receiver is not None:
            self._body_receiver.signal_disconnect()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self._callback_parser is not None:  # HTTP/1 (the only protocol this service is served over)
            self._arm_read_timer(self.header_timeout, "headers")

    def _on_headers_complete(self) -> Any:
        self._cancel_read_timer()
        result = super()._on_headers_complete()
        request = self._current_request
        if request is not None and (request.chunked or (request.content_length or 0) > 0):
            self._arm_read_timer(self.body_timeout, "body")
        return result

    def _on_message_complete(self) -> Any:
        self._cancel_read_timer()
        return super()._on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    # --- streams: the connection handed to the stream server (streams/handoff.py) --------------------------------
    def data_received(self, data: bytes) -> None:
        if self.handoff is not None and not self._handoff_checked:
            self._handoff_checked = True  # only a connection's first bytes: later ones follow other requests
            # HTTP/1 in the clear only: a TLS connection's socket carries the worker's session, not the request.
            if self._callback_parser is not None and not self._is_ssl and self._hand_off(data):
                return
        super().data_received(data)

    def _hand_off(self, data: bytes) -> bool:
        from streams import handoff

        if not ExchangeASGIProtocol.stream_paths:  # read once the application (and Django) is loaded
            from streams import sse

            ExchangeASGIProtocol.stream_paths = tuple(p.encode() for p in sse.PATHS)
        if not handoff.eligible(data, self.stream_paths):
            return False
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None or not self.handoff.send(data, sock.fileno()):
            return False
        handoff.STREAM_CONNECTIONS.labels("handed_off").inc()
        # The stream server holds the socket now: close this worker's descriptor only. Not _close_transport(),
        # whose write_eof() would shut the connection down for the stream server too.
        self._cancel_read_timer()
        self._closed = True
        self.transport.close()
        if self._request_ready is not None:
            self._request_ready.set()  # the connection loop sees the close and ends
        return True

    # --- gunicorn's own error answers ----------------------------------------------------------------------------
    def _send_error_response(self, status: int, message: str, extra_headers: Any = ()) -> None:
        """The envelope instead of gunicorn's text; ``message`` (which may quote the request) is not echoed."""
        request_id = uuid.uuid4().hex
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        code = _ERROR_CODES.get(status, "bad_request")
        body = json.dumps(
            {"error": {"code": code, "message": f"{phrase}.", "details": {}, "request_id": request_id}},
            separators=(",", ":"),
        ).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in extra_headers)
        head = (
            f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Request-ID: {request_id}\r\n{extra}Connection: close\r\n\r\n"
        )
        self.log.info("Refused a malformed request: %s %s (request_id %s)", status, phrase, request_id)
        self._safe_write(head.encode("latin-1") + body)


class ExchangeASGIWorker(ASGIWorker):
    """Also ends the live streams on SIGTERM (or SIGINT/SIGQUIT): they never finish by themselves, so gunicorn
    would wait its whole graceful timeout for them; each gets a final event and closes at once instead."""

    def handle_exit_signal(self) -> None:
        _close_streams()
        super().handle_exit_signal()

    def handle_quit_signal(self) -> None:
        _close_streams()
        super().handle_quit_signal()

    def init_process(self) -> None:
        global current_worker
        current_worker = self
        ExchangeASGIProtocol.header_timeout, ExchangeASGIProtocol.body_timeout = _timeouts()
        ExchangeASGIProtocol.handoff = _handoff()
        gasgi.ASGIProtocol = ExchangeASGIProtocol  # type: ignore[misc]
        super().init_process()


current_worker: ExchangeASGIWorker | None = None  # this process's worker (the stream server listens with it)


def _handoff() -> Any:
    """A web worker of ``serve`` with a stream server: the sender of stream connections to it."""
    from django.conf import settings

    if not (settings.STREAM_SERVER_SOCKET and settings.STREAM_HANDOFF_ENABLED):
        return None
    from streams import handoff

    return handoff.Sender(handoff.path_for(settings.STREAM_SERVER_SOCKET))


def _close_streams() -> None:
    try:
        from streams.sse import shutdown
    except Exception:  # the application never loaded: there is no stream to close
        return
    shutdown()

"""Which stream requests a web worker hands to the stream server with their connection (streams/handoff.py), and
which it relays: only a whole GET of a stream path, alone on a new connection, that the stream server can serve as
it is. Everything else keeps to the relay, whose answers are the same."""

from __future__ import annotations

import pytest

from streams import handoff, sse

PATHS = tuple(p.encode() for p in sse.PATHS)
GET = b"GET /api/v1/stream/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Api-Key k\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "handed_off"),
    [
        (GET, True),
        (b"GET /api/v1/stream/markets/BTC-USD?amounts=number HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET /api/v1/stream/positions?token=t HTTP/1.0\r\n\r\n", True),
        # Not a stream, or not a GET of one: the web worker's own.
        (b"GET /api/v1/orders HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"POST /api/v1/stream/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", False),
        (b"OPTIONS /api/v1/stream/orders HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"GET /api/v1/streamx HTTP/1.1\r\nHost: x\r\n\r\n", False),
        # Headers not all read yet, or a second request pipelined behind: relayed.
        (GET[:-2], False),
        (GET + b"GET /api/v1/health HTTP/1.1\r\n\r\n", False),
        # A body, an upgrade, another HTTP version: relayed.
        (GET.replace(b"Host: x", b"Host: x\r\nContent-Length: 3"), False),
        (GET.replace(b"Host: x", b"Host: x\r\nTransfer-Encoding: chunked"), False),
        (GET.replace(b"Host: x", b"Host: x\r\nUpgrade: websocket"), False),
        (GET.replace(b"HTTP/1.1", b"HTTP/2.0"), False),
        # The client's own peer header, in any case: relayed, and the relay drops it (the stream server would
        # otherwise take it for the client's address).
        (GET.replace(b"Host: x", b"Host: x\r\nX-Exchange-Peer: 10.0.0.1"), False),
        (GET.replace(b"Host: x", b"Host: x\r\nx-EXCHANGE-peer: 10.0.0.1"), False),
    ],
)
def test_only_a_whole_get_of_a_stream_alone_on_its_connection_is_handed_off(data, handed_off):
    assert handoff.eligible(data, PATHS) is handed_off


def test_the_hand_off_socket_sits_beside_the_stream_servers_own_in_its_private_directory():
    assert handoff.path_for("/tmp/exchange-streams-abc/streams.sock") == "/tmp/exchange-streams-abc/handoff.sock"


def test_a_sender_with_no_stream_server_to_take_the_connection_says_so_and_leaves_it_alone(tmp_path):
    sender = handoff.Sender(str(tmp_path / "handoff.sock"))
    assert sender.send(GET, 0) is False  # nothing listens: the caller relays the request
    assert sender.sock is None

"""The audit hand-off: order events from the outbox reach the audit correlator's endpoint, and a dead correlator
costs trading nothing (a bounded queue, a thread of its own, a circuit breaker)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from decimal import Decimal as D

import pytest

from accounts import services as account_services
from markets.models import Market
from orders import services
from streams.audit import Forwarder
from streams.hub import stamp
from streams.models import Event
from streams.rendering import fetch
from tests.factories import make_account
from tests.support.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class Correlator(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Correlator.received.append({"path": self.path, **json.loads(body)})
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _placed_order_rows(alice, operator_user):
    account_services.house_fund(asset="BTC", amount="10", actor=operator_user)
    account = make_account(owner=alice, funds={"USD": "100000"})
    stamp()
    start = max([0, *Event.objects.exclude(seq=None).values_list("seq", flat=True)])
    placed, _ = services.order_place(
        request=services.OrderRequest(
            account=account,
            market=Market.objects.get(symbol="BTC-USD"),
            side="buy",
            order_type="market",
            quantity=D("0.01"),
            client_order_id="audit-1",
        ),
        actor=alice,
    )
    stamp()
    return placed.order, fetch(after=start)


def test_order_events_are_posted_to_the_correlator(alice, operator_user):
    forwarders: list[Forwarder] = []
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Correlator)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Correlator.received.clear()
    try:
        order, raws = _placed_order_rows(alice, operator_user)
        forwarder = Forwarder(f"http://127.0.0.1:{port}")
        forwarder.offer(raws)
        forwarders.append(forwarder)
        deadline = time.monotonic() + 10
        while not Correlator.received and time.monotonic() < deadline:
            time.sleep(0.05)
        [event] = Correlator.received
        assert event["path"] == "/api/v1/audit/events"
        assert event["event_type"] == "order_placed" and event["status"] == "filled"
        assert event["source"] and str(order.order_id) in event["message"]
        assert event["correlation_id"] == str(order.order_id) and event["client_order_id"] == "audit-1"
        assert "request_id" in event
    finally:
        server.shutdown()
        server.server_close()
        for forwarder in forwarders:
            forwarder.close()


def test_a_dead_correlator_opens_the_breaker_and_never_blocks(alice, operator_user, settings):
    settings.BREAKER_FAIL_MAX = 2
    _order, raws = _placed_order_rows(alice, operator_user)
    forwarder = Forwarder(f"http://127.0.0.1:{free_port()}")  # nobody listens there
    try:
        started = time.monotonic()
        for _ in range(200):
            forwarder.offer(raws)
        assert time.monotonic() - started < 1.0  # queued, not sent inline
        deadline = time.monotonic() + 10
        while forwarder.breaker.current_state != "open" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert forwarder.breaker.current_state == "open"
    finally:
        forwarder.close()

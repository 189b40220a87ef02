"""The audit hand-off (best effort, off by default): with ``AUDIT_CORRELATOR_URL`` set, order events from the
outbox are POSTed to ``{url}/api/v1/audit/events`` as the ecosystem's audit correlator takes them::

    {"event_type": "order_placed" | "order_filled" | "order_rejected" | "order_cancelled" | "order_expired",
     "source": SERVICE_INSTANCE_NAME, "message": "...", "timestamp": ..., "correlation_id": <order id>,
     "request_id": null, "order_id", "account_id", "symbol", "side", "status", "client_order_id"}

It never blocks trading: the events come from the outbox after commit (the hub hands them over), wait in a bounded
queue (dropped, and counted, when it is full) and are sent by a thread of their own, guarded by a circuit breaker
(open after ``BREAKER_FAIL_MAX`` failures in a row, a trial call after ``GRPC_BREAKER_RESET_TIMEOUT``) so a dead
correlator costs nothing but a counter. One process sends (the leader of the ``audit_forwarder`` role,
exchange/leader.py); the others drop what they would have sent. The correlation id is the order id (the request id
of the HTTP request is not stored with the order).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

import httpx
import pybreaker
import structlog
from django.conf import settings
from prometheus_client import Counter

from streams.rendering import Raw

logger = structlog.get_logger("exchange.streams.audit")
SENT = Counter("exchange_audit_events", "Audit events handed to the correlator, by outcome.", ["outcome"])

_TYPES = {
    "open": "order_placed",
    "partially_filled": "order_filled",
    "filled": "order_filled",
    "rejected": "order_rejected",
    "cancelled": "order_cancelled",
    "expired": "order_expired",
}


def audit_events(raws: list[Raw]) -> list[dict[str, Any]]:
    """The audit events of the order changes among ``raws``. Each order as its change left it, read the way the
    streams read it (``rendering._rows``: from the row the change wrote on PostgreSQL; on SQLite, whose triggers
    store only the id, the row as it is now)."""
    from orders.models import Order
    from streams.rendering import _rows, account_of, market_of

    changes = [raw for raw in raws if raw.topic == "order"]
    out = []
    for raw, order in zip(changes, _rows(Order, changes), strict=True):
        event_type = _TYPES.get(order.status) if order is not None else None
        if event_type is None:
            continue
        if event_type == "order_filled" and order.created_at == order.updated_at:
            event_type = "order_placed"  # placed and filled at once: one report of the placement, with its status
        symbol = market_of(order.market_id).symbol if order.market_id else None
        account = account_of(order.account_id).account_id if order.account_id else None
        reason = f" ({order.reject_reason})" if order.status == "rejected" else ""
        out.append(
            {
                "event_type": event_type,
                "source": settings.SERVICE_INSTANCE_NAME,
                "message": f"order {order.order_id} {order.status}{reason}: {order.side} {symbol}",
                "timestamp": raw.created_at.isoformat(),
                "correlation_id": str(order.order_id),
                "request_id": None,
                "order_id": str(order.order_id),
                "client_order_id": order.client_order_id,
                "account_id": str(account) if account else None,
                "symbol": symbol,
                "side": order.side,
                "status": order.status,
            }
        )
    return out


class Forwarder:
    def __init__(self, url: str, *, maxsize: int = 10000) -> None:
        from exchange.leader import Leadership

        self.url = url.rstrip("/") + "/api/v1/audit/events"
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=maxsize)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=settings.BREAKER_FAIL_MAX, reset_timeout=settings.GRPC_BREAKER_RESET_TIMEOUT, name="audit"
        )
        self.leadership = Leadership("audit_forwarder")
        self._thread = threading.Thread(target=self._run, name="audit-forwarder", daemon=True)
        self._thread.start()

    def offer(self, raws: list[Raw]) -> None:
        """From the hub's thread: queue the audit events of ``raws`` (never waits)."""
        if not self.leadership.is_leader():
            return
        for event in audit_events(raws):
            try:
                self.queue.put_nowait(event)
            except queue.Full:
                SENT.labels("dropped").inc()

    def close(self) -> None:
        """Stop sending and give up the role (another process's forwarder takes over)."""
        self.leadership.release()
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait({})  # wakes the thread: an empty event means stop

    def _run(self) -> None:
        with httpx.Client(timeout=settings.REQUEST_TIMEOUT) as client:
            while True:
                event = self.queue.get()
                if not event:
                    return
                try:
                    self.breaker.call(self._post, client, event)
                    SENT.labels("sent").inc()
                except pybreaker.CircuitBreakerError:
                    SENT.labels("breaker_open").inc()
                except Exception as exc:
                    SENT.labels("failed").inc()
                    logger.info("audit_handoff_failed", error=f"{type(exc).__name__}: {exc}"[:200])

    def _post(self, client: httpx.Client, event: dict[str, Any]) -> None:
        response = client.post(self.url, json=event, headers={"X-Service-Name": settings.SERVICE_NAME})
        response.raise_for_status()


def forwarder() -> Forwarder | None:
    return Forwarder(settings.AUDIT_CORRELATOR_URL) if settings.AUDIT_CORRELATOR_URL else None

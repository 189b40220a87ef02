"""Summarise a py-spy profile of the gunicorn workers (``--format raw``: one collapsed stack and its count a line).

Only samples taken while a worker handled a request count (idle threads and the master are left out). Two views:

* ``steps``: which step of the order path the time belongs to. A sample goes to the deepest frame that names a
  step (see ``STEPS``), so ORM and driver frames count under the service function that called them.
* ``layers``: what kind of work it was. A sample goes to the deepest frame in a known layer: waiting on
  PostgreSQL, psycopg, the Django ORM, DRF, logging, metrics, gunicorn ... (standard-library frames such as
  ``copy`` or ``decimal`` count under their caller's layer).
Both are shares of the request-handling samples, recorded with ``--idle``: wall time, waits included.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

# Steps of the order path, in tiers: a sample goes to the deepest frame matching a rule of the first tier that
# matches at all. Tier 1 names the service's own steps; tier 2 the wrappers around the view (a sample in none of
# the steps: parsing, rendering, middleware); tier 3 the server.
STEPS: list[list[tuple[str, str]]] = [
    [
        ("structlog/", "logging (structlog JSON, scrubber, write)"),
        ("logging/__init__.py", "logging (structlog JSON, scrubber, write)"),
        ("prometheus", "Prometheus metrics"),
        ("is_usable (django/db/backends/postgresql", "connection health check (SELECT 1 each request)"),
        ("is_usable (exchange/db/postgresql", "connection health check (socket poll each request)"),
        ("ApiKeyAuthentication.authenticate", "API-key authentication (1 query)"),
        ("account_get (accounts/selectors.py", "account lookup: account_get (1 query)"),
        ("market_get (orders/selectors.py", "market lookup: market_get (1 query)"),
        ("raise_validation (exchange/api.py", "input validation (OrderIn)"),
        ("order_request_validate (orders/services.py", "order checks (order_request_validate)"),
        ("_price (orders/services.py", "pricing and limits (_price)"),
        ("_customer_legs (orders/services.py", "customer ledger accounts: _customer_legs (1 query)"),
        ("_house_legs (orders/services.py", "house and fee shards: _house_legs (1 query, 32 rows)"),
        ("_lock_customer_balances (ledger/services.py", "journal_post: lock customer balances (SELECT FOR UPDATE)"),
        ("_lock_book_balances (ledger/services.py", "journal_post: lock house rows (SELECT FOR UPDATE)"),
        ("QuerySet.bulk_update (django/db/models/query.py", "journal_post: bulk_update of balances"),
        ("_write_customer_rows (ledger/services.py", "journal_post: write customer balances (1 UPDATE)"),
        ("_settle_book_balances (ledger/services.py", "journal_post: settle house rows, locking them (1 UPDATE)"),
        ("QuerySet.bulk_create (django/db/models/query.py", "journal_post: insert postings"),
        ("journal_post (ledger/services.py", "journal_post: insert entry, other"),
        ("HistoricalRecords.post_save", "order history row (simple_history)"),
        ("record_fill (orders/services.py", "order and trade inserts"),
        ("Atomic.__enter__ (django/db/transaction.py", "transaction control: BEGIN, COMMIT (deferred checks)"),
        ("Atomic.__exit__ (django/db/transaction.py", "transaction control: BEGIN, COMMIT (deferred checks)"),
        ("Model.save (django/db/models/base.py", "order and trade inserts"),
        ("_place (orders/services.py", "_place: other"),
        ("order_place (orders/services.py", "order_place: other"),
        ("Serializer.data (rest_framework/serializers.py", "response serialization (OrderOut)"),
        ("EchoApi.post", "trivial view"),
        ("OrderListCreateApi.post (orders/apis.py", "order view: other"),
    ],
    [
        ("APIView.dispatch (rest_framework/views.py", "DRF: parse, permissions, render"),
        ("RequestIdMiddleware.__call__ (exchange/middleware.py", "middleware and Django handler"),
        ("MiddlewareMixin.__call__ (django/utils/deprecation.py", "middleware and Django handler"),
        ("WSGIHandler.__call__ (django/core/handlers/wsgi.py", "middleware and Django handler"),
    ],
    [("gunicorn/", "gunicorn: read request, write response, close connection")],
]

# (frame substring, layer); the deepest frame matching any of them names the layer of a sample.
LAYERS: list[tuple[str, str]] = [
    ("Connection.wait (psycopg/", "waiting on PostgreSQL (round trips)"),
    ("_execute_send (psycopg/", "waiting on PostgreSQL (round trips)"),
    ("_exec_command (psycopg/", "waiting on PostgreSQL (round trips)"),
    ("psycopg/", "psycopg: adapt parameters, load rows"),
    ("django/db/", "Django ORM: build and compile queries, make model instances"),
    ("simple_history/", "Django ORM: build and compile queries, make model instances"),
    ("rest_framework/", "DRF: serializers, request, response"),
    ("structlog/", "logging"),
    ("logging/", "logging"),
    ("prometheus", "Prometheus metrics"),
    ("gunicorn/", "gunicorn: socket I/O, HTTP parsing"),
    ("django/", "Django: handlers, middleware, URL resolving"),
    ("orders/", "application code (orders, ledger, accounts, exchange)"),
    ("ledger/", "application code (orders, ledger, accounts, exchange)"),
    ("accounts/", "application code (orders, ledger, accounts, exchange)"),
    ("exchange/", "application code (orders, ledger, accounts, exchange)"),
]

IN_REQUEST = "handle_request (gunicorn/workers/"


def _classify(frames: list[str], rules: list[tuple[str, str]]) -> str | None:
    for frame in reversed(frames):
        for needle, label in rules:
            if needle in frame:
                return label
    return None


def _step(frames: list[str]) -> str:
    for tier in STEPS:
        label = _classify(frames, tier)
        if label:
            return label
    return "other"


def _short(frame: str) -> str:
    """``func (path:line)`` -> ``func (path)``: a function's lines add up instead of being listed apart."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarise(path: Path, top: int = 30) -> dict[str, Any]:
    steps: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = in_request = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not any(IN_REQUEST in f for f in frames):
            continue
        in_request += n
        start = next(i for i, f in enumerate(frames) if IN_REQUEST in f)
        frames = frames[start:]
        steps[_step(frames)] += n
        layers[_classify(frames, LAYERS) or "other (standard library)"] += n
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n

    def shares(counter: Counter[str], limit: int | None = None) -> dict[str, float]:
        return {k: round(100 * v / in_request, 1) for k, v in counter.most_common(limit)} if in_request else {}

    return {
        "samples": total,
        "request_samples": in_request,
        "steps_pct": shares(steps),
        "layers_pct": shares(layers),
        "top_inclusive_pct": shares(inclusive, top),
        "top_self_pct": shares(own, top),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(summarise(Path(sys.argv[1])), indent=2))

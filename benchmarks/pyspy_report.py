"""Summarise a py-spy profile of the gunicorn workers (``--format raw``: one collapsed stack and its count a line).

Only samples taken while a worker handled a request count: a stack inside gunicorn's request handler (sync and
gthread workers) or inside Django's WSGI handler (any server, a2wsgi's threads under an ASGI worker included).
Idle threads and the master are left out; under an event-loop worker, the loop's own HTTP parsing and socket
writes happen outside those frames and are not in the shares. Two views:

* ``steps``: which step of the request the time belongs to (orders/services.py: validate -> lock the book ->
  match -> build the settlement -> settle). A sample goes to the deepest frame that names a step (see ``STEPS``),
  so ORM and driver frames count under the step that called them.
* ``layers``: what kind of work it was. A sample goes to the deepest frame in a known layer: waiting on
  PostgreSQL, psycopg, the Django ORM, DRF, logging, metrics, gunicorn ... (standard-library frames such as
  ``json`` or ``decimal`` count under their caller's layer).
Both are shares of the request-handling samples, recorded with ``--idle``: wall time, waits included.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

SETTLEMENT = "settlement built in Python: order rows, trades, fills, journal entries"
TRANSACTION = "transaction control: BEGIN, COMMIT (the ledger's deferred checks run at COMMIT)"
MIDDLEWARE = "Django: middleware and handler"
# Steps of a request, in tiers: a sample goes to the deepest frame matching a rule of the first tier that matches
# at all. Tier 1 names the service's own steps (orders, cancels, the trivial view); tier 2 the wrappers around the
# view (a sample in none of the steps: parsing, rendering, middleware); tier 3 the server.
STEPS: list[list[tuple[str, str]]] = [
    [
        ("structlog/", "logging (structlog JSON, scrubber, write)"),
        ("logging/__init__.py", "logging (structlog JSON, scrubber, write)"),
        ("prometheus", "Prometheus metrics"),
        ("is_usable (django/db/backends/postgresql", "connection health check (SELECT 1 each request)"),
        ("is_usable (exchange/db/postgresql", "connection health check (socket poll each request)"),
        ("ApiKeyAuthentication.authenticate", "API-key authentication (cached per process; SHA-512 check)"),
        ("account_for_trading (accounts/selectors.py", "account lookup (cached per process)"),
        ("account_get (accounts/selectors.py", "account lookup: account_get (1 query)"),
        ("market_for_trading (markets/selectors.py", "market lookup (cached per process)"),
        ("market_get (markets/selectors.py", "market lookup: market_get (1 query)"),
        ("order_get (orders/selectors.py", "order lookup: order_get (cancel: 2 queries and their fills)"),
        ("raise_validation (exchange/api.py", "input validation (request serializers)"),
        ("order_request_validate (orders/services.py", "order checks before the lock (order_request_validate)"),
        ("BookStore.lock_book (orders/", "book lock: exchange_book_lock (1 call: market, account, key, book page)"),
        ("BookStore.resting (orders/", "book: a further page of resting orders"),
        ("_check_rules (orders/services.py", "rules under the lock (_check_rules)"),
        ("_ladder (orders/services.py", "matching: the house's ladder (derived)"),
        ("house_ladder (markets/ladder.py", "matching: the house's ladder (derived)"),
        ("match_incoming (orders/matching.py", "matching: match_incoming on the merged book"),
        ("_liquidity (orders/services.py", "matching: match_incoming on the merged book"),
        ("_record_matches (orders/services.py", SETTLEMENT),
        ("_release_expired_makers (orders/services.py", SETTLEMENT),
        ("_Ledger.", SETTLEMENT),
        ("_HouseSide.", SETTLEMENT),
        ("JournalBatch.", SETTLEMENT),
        ("_new_order (orders/services.py", SETTLEMENT),
        ("_dumps (orders/pg_store.py", "settle: the payload as JSON"),
        ("_row (orders/pg_store.py", "settle: the payload as JSON"),
        ("PgBookStore.settle (orders/pg_store.py", "settle: exchange_settle (1 call) and its answer"),
        ("OrmBookStore.settle (orders/store.py", "settle: the ORM store's statements"),
        ("_reject (orders/services.py", "a rejected order stored"),
        ("_replay (orders/services.py", "idempotent replay lookup"),
        ("Atomic.__enter__ (django/db/transaction.py", TRANSACTION),
        ("Atomic.__exit__ (django/db/transaction.py", TRANSACTION),
        ("_cancel_in_book (orders/services.py", "cancel: release the reservation (built in Python)"),
        ("order_cancel (orders/services.py", "cancel: the order re-read under the lock (1 query)"),
        ("_place (orders/services.py", "_place: other"),
        ("order_place (orders/services.py", "order_place: other (retries, idempotency)"),
        ("order_json (orders/rendering.py", "response body (order_json)"),
        ("Serializer.data (rest_framework/serializers.py", "response serialization (DRF serializer)"),
        ("EchoApi.post", "trivial view"),
        ("OrderListCreateApi.post (orders/apis.py", "order views: other"),
        ("OrderDetailApi.delete (orders/apis.py", "order views: other"),
    ],
    [
        ("APIView.dispatch (rest_framework/views.py", "DRF: parse, permissions, render"),
        ("RequestIdMiddleware.__call__ (exchange/middleware.py", MIDDLEWARE),
        ("MiddlewareMixin.__call__ (django/utils/deprecation.py", MIDDLEWARE),
        ("WSGIHandler.__call__ (django/core/handlers/wsgi.py", MIDDLEWARE),
        ("a2wsgi/", "a2wsgi: the request handed to Django's WSGI application"),
    ],
    [("gunicorn/", "gunicorn: read request, write response (in the request's thread)")],
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
    ("a2wsgi/", "a2wsgi"),
    ("django/", "Django: handlers, middleware, URL resolving"),
    ("orders/", "application code (orders, markets, ledger, accounts, exchange)"),
    ("markets/", "application code (orders, markets, ledger, accounts, exchange)"),
    ("ledger/", "application code (orders, markets, ledger, accounts, exchange)"),
    ("accounts/", "application code (orders, markets, ledger, accounts, exchange)"),
    ("exchange/", "application code (orders, markets, ledger, accounts, exchange)"),
]

# A stack handles a request from the first of these frames on (the server's handler, or Django's if the server's
# is not one of these).
IN_REQUEST = (
    "handle_request (gunicorn/workers/",
    "ThreadWorker.handle (gunicorn/workers/gthread.py",
    "WSGIHandler.__call__ (django/core/handlers/wsgi.py",
)


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
        start = next((i for i, f in enumerate(frames) if any(marker in f for marker in IN_REQUEST)), None)
        if start is None:
            continue
        in_request += n
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

"""Fixed statements run often (the stream hub's, every batch) with the parameters bound by the server, and
prepared: PostgreSQL parses and plans each once per connection (psycopg keeps the prepared statements of a
connection, the most recent hundred).

Django's own cursors bind parameters on the client (``ClientCursor``): every run is a new query string to parse
and plan, which is right for the variety of the ORM's queries and a waste for one statement a background loop
runs many times a second. Lists are passed as arrays (``= ANY(%s)``), so the statement is the same however many
ids it is given. (Behind a connection pooler in transaction mode, prepared statements need one that tracks them,
such as PgBouncer 1.21 or later with ``max_prepared_statements``.)

They run as Django's own queries do otherwise: in the connection's transaction, through its execute wrappers,
with its error classes, and logged in ``connection.queries`` when Django logs queries (so tests count them). On
another database (SQLite, the embedded default) a statement runs through Django's own cursor as it is, its values
as that database's driver gives them (SQLite's: floats for NUMERIC columns); statements written for PostgreSQL
alone (arrays, ``ANY``), and those that read amounts, keep an ORM path of their own beside.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import psycopg
from django.db import connection

NEVER_BY_COUNT = 1 << 62  # psycopg prepares after this many runs: never, only what asks (prepare=True)


def rows(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """The rows of one statement on the default connection (in its transaction, if one is open). ``params``: a
    sequence for ``%s`` placeholders, a mapping for ``%(name)s`` ones."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
    connection.ensure_connection()
    conn = connection.connection
    if conn.prepare_threshold is None:
        # Django turns preparing off (for connection poolers in transaction mode); its own cursors bind on the
        # client and never prepare anyway. These statements ask for it one by one.
        conn.prepare_threshold = NEVER_BY_COUNT
    with connection.wrap_database_errors, psycopg.Cursor(conn) as cursor:

        def execute(sql: str, params: Any, many: bool, context: dict[str, Any]) -> None:
            cursor.execute(sql, params, prepare=True)  # type: ignore[call-overload]  # a fixed string

        executor = execute
        for wrapper in reversed(connection.execute_wrappers):
            executor = functools.partial(wrapper, executor)
        started = time.monotonic()
        executor(sql, params, False, {"connection": connection, "cursor": cursor})
        if connection.queries_logged:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
        return cursor.fetchall() if cursor.description is not None else []

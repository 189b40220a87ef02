"""Writing the outbox: database triggers on the tables whose changes streams publish.

Why triggers rather than calls from the services: every path that changes an order, a balance or a market (placing,
matching, cancels, expiry, the house's sweeps, deposits and withdrawals, the admin, the PL/pgSQL settlement of
orders/pg_store.py) is covered without a hook at each call site, and the event row is written by the very statement
that made the change, in its transaction, without another round trip. A rolled-back change leaves no event; a
committed one leaves its event even when the process that committed it dies right after (the row is in the database;
streams/hub.py delivers it from there).

On PostgreSQL the triggers are statement-level, with transition tables: one ``INSERT ... SELECT`` per statement
however many rows it changed, each event carrying the new row as ``to_jsonb`` (the state the change committed), and
``pg_notify('exchange_events')`` so relays wake at once. PostgreSQL delivers a notification only when the transaction
commits, and folds identical ones of one transaction into one.

On SQLite (the dev fallback, one process) row-level triggers store the row's id only; the hub reads the row when it
delivers (its state then, at least as new as the change) and finds new events by polling.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

CHANNEL = "exchange_events"
STAMPED_CHANNEL = "exchange_events_stamped"  # a hub stamped new rows: the others read them at once

# (table, topic, account column, market column, events on, the condition on an UPDATE (new row n, old row o))
WATCHED: list[tuple[str, str, str | None, str | None, tuple[str, ...], str | None]] = [
    ("orders_order", "order", "account_id", "market_id", ("INSERT", "UPDATE"), None),
    ("orders_fill", "fill", "account_id", "market_id", ("INSERT",), None),
    ("orders_trade", "trade", None, "market_id", ("INSERT",), None),
    (
        "accounts_balance",
        "balance",
        "account_id",
        None,
        ("INSERT", "UPDATE"),
        "(n.available, n.locked) IS DISTINCT FROM (o.available, o.locked)",
    ),
    (
        "markets_market",
        "market",
        None,
        "id",
        ("UPDATE",),
        "(n.book_sequence, n.reference_price, n.status)"
        " IS DISTINCT FROM (o.book_sequence, o.reference_price, o.status)",
    ),
]


def _pg_sql() -> list[str]:
    statements = []
    for table, topic, account, market, events, condition in WATCHED:
        account_sql = f"n.{account}" if account else "NULL"
        market_sql = f"n.{market}" if market else "NULL"
        for event in events:
            name = f"streams_outbox_{table}_{event.lower()}"
            source = "new_rows n"
            where = ""
            referencing = "REFERENCING NEW TABLE AS new_rows"
            if event == "UPDATE" and condition:
                source = "new_rows n JOIN old_rows o ON o.id = n.id"
                where = f"WHERE {condition}"
                referencing = "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
            statements.append(
                f"""
                CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO streams_event (topic, account_id, market_id, data, created_at)
                    SELECT '{topic}', {account_sql}, {market_sql}, to_jsonb(n), clock_timestamp()
                      FROM {source} {where} ORDER BY n.id;
                    IF FOUND THEN
                        PERFORM pg_notify('{CHANNEL}', '');
                    END IF;
                    RETURN NULL;
                END $$;
                """  # noqa: S608 - identifiers from WATCHED, no input
            )
            statements.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            statements.append(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    return statements


# Stamping (streams/hub.py ``stamp``) as one statement: if no other process holds the stamping lock, number the
# committed unstamped rows on from the highest seq, in id order, and tell the other hubs. -1: another process is
# stamping now. One round trip instead of a transaction of five.
STAMP_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION streams_stamp(lock_key bigint, batch integer) RETURNS integer
    LANGUAGE plpgsql AS $$
    DECLARE
        stamped integer;
    BEGIN
        IF NOT pg_try_advisory_xact_lock(lock_key) THEN
            RETURN -1;
        END IF;
        WITH base AS (SELECT coalesce(max(seq), 0) AS top FROM streams_event),
             todo AS (SELECT id, row_number() OVER (ORDER BY id) AS n
                        FROM (SELECT id FROM streams_event WHERE seq IS NULL ORDER BY id LIMIT batch) t)
        UPDATE streams_event e SET seq = base.top + todo.n FROM base, todo WHERE e.id = todo.id;
        GET DIAGNOSTICS stamped = ROW_COUNT;
        IF stamped > 0 THEN
            PERFORM pg_notify('{STAMPED_CHANNEL}', '');
        END IF;
        RETURN stamped;
    END $$
"""  # noqa: S608 - a constant, no input


def _sqlite_sql() -> list[str]:
    statements = []
    for table, topic, account, market, events, _condition in WATCHED:
        account_sql = f"NEW.{account}" if account else "NULL"
        market_sql = f"NEW.{market}" if market else "NULL"
        for event in events:
            name = f"streams_outbox_{table}_{event.lower()}"
            statements.append(f"DROP TRIGGER IF EXISTS {name}")
            insert = (
                "INSERT INTO streams_event (topic, account_id, market_id, data, created_at) "  # noqa: S608
                f"VALUES ('{topic}', {account_sql}, {market_sql}, json_object('id', NEW.id), "
                "strftime('%Y-%m-%d %H:%M:%f', 'now'));"
            )
            statements.append(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW BEGIN {insert} END")
    return statements


def install(using: str = "default", **_: Any) -> None:
    """Create or replace the triggers (a ``post_migrate`` handler)."""
    from django.db import connections

    conn = connections[using] if using else connection
    if conn.vendor == "postgresql":
        statements = [*_pg_sql(), STAMP_FUNCTION]
    else:
        statements = _sqlite_sql() if conn.vendor == "sqlite" else []
    with conn.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)

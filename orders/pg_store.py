"""The order path's two database steps as PostgreSQL functions: one round trip each, whatever the number of matches.

``exchange_book_lock`` and ``exchange_settle`` do exactly what ``OrmBookStore.lock_book`` and ``.settle`` do
(orders/store.py), in the same lock order, with the same checks and the same rows written; the ORM store is the
reference they are tested against (tests/orders/test_store_equivalence.py). Nothing here decides anything:
matching, prices, fees and the journal entries are computed in Python and handed over as one JSON document.

The functions are (re)created after every ``migrate`` (a ``post_migrate`` handler), from templates whose column
lists come from the models, so a new field of an order reaches its history rows without touching this file.
Plans of the statements inside a function are cached per connection, which saves parsing and planning a dozen
statements per order.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection

from exchange import errors, locking
from ledger.models import JournalEntry
from orders.matching import BookOrder
from orders.models import Fill, Order, Trade
from orders.store import MAKER_FIELDS, PAGE, LockedBook, MarketRow, Settlement

ZERO = Decimal(0)
VERSION = 1


def _columns(model: Any, *, exclude: tuple[str, ...] = ("id",)) -> list[str]:
    return [f.column for f in model._meta.concrete_fields if f.column not in exclude]


def _history_columns() -> list[str]:
    base = set(_columns(Order, exclude=()))
    return [f.column for f in Order.history.model._meta.concrete_fields if f.column in base]


def _functions_sql() -> str:
    history = Order.history.model._meta.db_table
    history_cols = ", ".join(_history_columns())
    maker_cols = [Order._meta.get_field(name).column for name in MAKER_FIELDS]
    maker_types = ", ".join(f"{c} {_pg_type(Order, c)}" for c in maker_cols)
    maker_set = ", ".join(f"{c} = x.{c}" for c in maker_cols)
    trade_cols = _columns(Trade)
    trade_types = ", ".join(f"{c} {_pg_type(Trade, c)}" for c in trade_cols if c not in ("journal_entry_id",))
    fill_cols = _columns(Fill)
    fill_types = ", ".join(f"{c} {_pg_type(Fill, c)}" for c in fill_cols if c not in ("trade_id",))
    resting_json = (
        "jsonb_build_object('pk', o.id, 'order_id', o.order_id, 'account_pk', o.account_id, 'side', o.side, "
        "'price', o.price, 'remaining', o.remaining_quantity, 'rest_quantity', o.rest_quantity, 'locked', o.locked, "
        "'maker_fee_bps', o.maker_fee_bps, 'filled_quantity', o.filled_quantity, 'filled_quote', o.filled_quote, "
        "'fee', o.fee, 'average_price', o.average_price)"
    )
    trade_select = ", ".join(
        "coalesce(x.taker_order_id, CASE WHEN x.taker_new THEN new_id END)"
        if c == "taker_order_id"
        else ("e.id" if c == "journal_entry_id" else f"x.{c}")
        for c in trade_cols
    )
    fill_select = ", ".join(
        "t.id" if c == "trade_id" else ("coalesce(x.order_id, new_id)" if c == "order_id" else f"x.{c}")
        for c in fill_cols
    )
    # Names come from the models, never from input.
    return f"""
CREATE OR REPLACE FUNCTION exchange_resting(p_market bigint, p_side text, p_limit numeric, p_after_price numeric,
                                            p_after_id bigint, p_count integer) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    result jsonb;
BEGIN
    -- One side of the book in priority order (asks lowest first, bids highest first; at a price the oldest first),
    -- up to the taker's limit and after the last (price, id) of the previous page. Two static queries, so each
    -- walks the book index in its own direction.
    IF p_side = 'sell' THEN
        SELECT jsonb_agg({resting_json} ORDER BY o.price, o.id) INTO result
          FROM (SELECT * FROM orders_order o
                 WHERE o.market_id = p_market AND o.side = 'sell' AND o.status IN ('open', 'partially_filled')
                   AND (p_limit IS NULL OR o.price <= p_limit)
                   AND (p_after_price IS NULL OR o.price > p_after_price
                        OR (o.price = p_after_price AND o.id > p_after_id))
                 ORDER BY o.price, o.id LIMIT p_count) o;
    ELSE
        SELECT jsonb_agg({resting_json} ORDER BY o.price DESC, o.id) INTO result
          FROM (SELECT * FROM orders_order o
                 WHERE o.market_id = p_market AND o.side = 'buy' AND o.status IN ('open', 'partially_filled')
                   AND (p_limit IS NULL OR o.price >= p_limit)
                   AND (p_after_price IS NULL OR o.price < p_after_price
                        OR (o.price = p_after_price AND o.id > p_after_id))
                 ORDER BY o.price DESC, o.id LIMIT p_count) o;
    END IF;
    RETURN coalesce(result, '[]'::jsonb);
END
$$;

CREATE OR REPLACE FUNCTION exchange_book_lock(p_market bigint, p_account bigint, p_key text, p_side text,
                                              p_limit numeric, p_count integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    m markets_market%ROWTYPE;
    account_status text;
    key_valid boolean := true;
    inventory jsonb;
BEGIN
    -- Level 1 of the lock order (exchange/locking.py): the market's row serializes matching on it.
    SELECT * INTO m FROM markets_market WHERE id = p_market FOR UPDATE;
    -- Level 2: the trading account, shared (money movements), excluding a status change meanwhile.
    IF p_account IS NOT NULL THEN
        SELECT status INTO account_status FROM accounts_account WHERE id = p_account FOR SHARE;
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT EXISTS (SELECT 1 FROM accounts_apikey k JOIN auth_user u ON u.id = k.user_id
                        WHERE k.id = p_key AND NOT k.revoked AND u.is_active
                          AND (k.expiry_date IS NULL OR k.expiry_date > now())) INTO key_valid;
    END IF;
    SELECT coalesce(jsonb_object_agg(asset_id, total), '{{}}'::jsonb) INTO inventory
      FROM (SELECT asset_id, sum(balance) AS total FROM ledger_ledgeraccount
             WHERE kind = 'house_liquidity' AND account_id IS NULL
               AND asset_id IN (m.base_asset_id, m.quote_asset_id) GROUP BY asset_id) totals;
    RETURN jsonb_build_object('market', to_jsonb(m), 'account_status', account_status, 'key_valid', key_valid,
                              'inventory', inventory,
                              'resting', exchange_resting(p_market, p_side, p_limit, NULL, NULL, p_count));
END
$$;

CREATE OR REPLACE FUNCTION exchange_settle(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    now_ts timestamptz := (p->>'now')::timestamptz;
    actor integer := (p->>'actor_pk')::integer;
    reason text := p->>'history_reason';
    new_id bigint;
    short record;
    n integer;
    created jsonb := '{{}}'::jsonb;
BEGIN
    -- Level 3: every customer balance row of the settlement, in (account, asset) order, checked before any write.
    PERFORM 1 FROM (SELECT b.id FROM accounts_balance b
                      JOIN jsonb_to_recordset(p->'balances') AS d(account_id bigint, asset_id text)
                        ON b.account_id = d.account_id AND b.asset_id = d.asset_id
                     ORDER BY b.account_id, b.asset_id FOR UPDATE OF b) locked;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> jsonb_array_length(p->'balances') THEN
        RAISE EXCEPTION 'exchange_settle: a balance row is missing' USING ERRCODE = 'P0001';
    END IF;
    SELECT b.account_id, b.asset_id, b.available, b.locked, d.d_available, d.d_locked INTO short
      FROM accounts_balance b
      JOIN jsonb_to_recordset(p->'balances') AS d(account_id bigint, asset_id text, d_available numeric,
                                                   d_locked numeric)
        ON b.account_id = d.account_id AND b.asset_id = d.asset_id
     WHERE b.available + d.d_available < 0 OR b.locked + d.d_locked < 0
     ORDER BY b.account_id, b.asset_id LIMIT 1;
    IF FOUND THEN
        IF p->'checked_accounts' @> to_jsonb(short.account_id) AND short.locked + short.d_locked >= 0 THEN
            RETURN jsonb_build_object('ok', false, 'asset', short.asset_id, 'available', short.available,
                                      'required', -short.d_available);
        END IF;
        RAISE EXCEPTION 'exchange_settle: settlement would overdraw account % %', short.account_id, short.asset_id
            USING ERRCODE = 'P0001';
    END IF;
    UPDATE accounts_balance b SET available = b.available + d.d_available, locked = b.locked + d.d_locked,
                                  updated_at = now_ts
      FROM jsonb_to_recordset(p->'balances') AS d(account_id bigint, asset_id text, d_available numeric,
                                                   d_locked numeric)
     WHERE b.account_id = d.account_id AND b.asset_id = d.asset_id;

    -- The orders: the taker (new) and the makers (changed), each with its history row.
    IF p ? 'new_order' THEN
        INSERT INTO orders_order
        SELECT (jsonb_populate_record(NULL::orders_order,
                    (p->'new_order')
                    || jsonb_build_object('id', nextval(pg_get_serial_sequence('orders_order', 'id'))))).*
        RETURNING id INTO new_id;
        INSERT INTO {history} ({history_cols}, history_date, history_change_reason, history_type, history_user_id)
        SELECT {history_cols}, now_ts, left(reason, 100), '+', actor FROM orders_order WHERE id = new_id;
    END IF;
    IF jsonb_array_length(coalesce(p->'changed_orders', '[]'::jsonb)) > 0 THEN
        UPDATE orders_order o SET {maker_set}
          FROM jsonb_to_recordset(p->'changed_orders') AS x(id bigint, {maker_types}) WHERE o.id = x.id;
        INSERT INTO {history} ({history_cols}, history_date, history_change_reason, history_type, history_user_id)
        SELECT {history_cols}, now_ts, left(reason, 100), '~', actor FROM orders_order
         WHERE id IN (SELECT (x->>'id')::bigint FROM jsonb_array_elements(p->'changed_orders') x);
    END IF;

    -- The journal: entries, their postings (customer ledger accounts found by owner, asset and kind), then the
    -- trades (each with its entry) and their fills.
    IF jsonb_array_length(coalesce(p->'entries', '[]'::jsonb)) > 0 THEN
        WITH e AS (
            INSERT INTO ledger_journalentry (entry_id, kind, reference_type, reference_id, idempotency_key, memo,
                                             actor_id, metadata, created_at)
            SELECT x.entry_id, x.kind, x.reference_type, x.reference_id, NULL, x.memo, actor, x.metadata, now_ts
              FROM jsonb_to_recordset(p->'entries') AS x(entry_id uuid, kind text, reference_type text,
                                                         reference_id text, memo text, metadata jsonb)
            RETURNING id, entry_id
        ), postings AS (
            INSERT INTO ledger_posting (entry_id, ledger_account_id, asset_id, account_id, amount, created_at)
            SELECT e.id, coalesce(x.ledger_account_id, la.id), x.asset_id, x.account_id, x.amount, now_ts
              FROM jsonb_to_recordset(p->'postings') AS x(entry_id uuid, ledger_account_id bigint, asset_id text,
                                                          account_id bigint, kind text, amount numeric)
              JOIN e ON e.entry_id = x.entry_id
              LEFT JOIN ledger_ledgeraccount la
                ON x.ledger_account_id IS NULL AND la.account_id = x.account_id AND la.asset_id = x.asset_id
               AND la.kind = x.kind
        ), trades AS (
            INSERT INTO orders_trade ({", ".join(trade_cols)})
            SELECT {trade_select}
              FROM jsonb_to_recordset(p->'trades') AS x({trade_types}, entry_uuid uuid, taker_new boolean)
              JOIN e ON e.entry_id = x.entry_uuid
            RETURNING id, trade_id
        )
        , fills AS (
            INSERT INTO orders_fill ({", ".join(fill_cols)})
            SELECT {fill_select}
              FROM jsonb_to_recordset(p->'fills') AS x({fill_types}, trade_uuid uuid)
              JOIN trades t ON t.trade_id = x.trade_uuid
            RETURNING id, trade_id, liquidity
        )
        SELECT jsonb_build_object(
                   'entries', (SELECT jsonb_object_agg(entry_id, id) FROM e),
                   'trades', (SELECT jsonb_object_agg(trade_id, id) FROM trades),
                   'fills', (SELECT jsonb_agg(jsonb_build_array(f.id, t.trade_id, f.liquidity))
                               FROM fills f JOIN trades t ON t.id = f.trade_id))
          INTO created;
    END IF;

    IF (p->>'book_changed')::boolean THEN
        UPDATE markets_market SET book_sequence = book_sequence + 1 WHERE id = (p->>'market_pk')::bigint;
    END IF;
    IF p ? 'candle' THEN
        INSERT INTO markets_candle (market_id, open_time, open, high, low, close, volume, quote_volume, trades)
        SELECT (p->>'market_pk')::bigint, c.open_time, c.open, c.high, c.low, c.close, c.volume, c.quote_volume,
               c.trades
          FROM jsonb_to_record(p->'candle') AS c(open_time timestamptz, open numeric, high numeric, low numeric,
                                                 close numeric, volume numeric, quote_volume numeric, trades integer)
        ON CONFLICT (market_id, open_time) DO UPDATE
           SET high = greatest(markets_candle.high, EXCLUDED.high), low = least(markets_candle.low, EXCLUDED.low),
               close = EXCLUDED.close, volume = markets_candle.volume + EXCLUDED.volume,
               quote_volume = markets_candle.quote_volume + EXCLUDED.quote_volume,
               trades = markets_candle.trades + EXCLUDED.trades;
    END IF;

    -- Level 4, last: the exchange's books, locked in id order. A shard drained meanwhile fails its CHECK.
    UPDATE ledger_ledgeraccount la SET balance = la.balance + d.delta
      FROM (SELECT id FROM ledger_ledgeraccount
             WHERE id IN (SELECT (x->>'id')::bigint FROM jsonb_array_elements(coalesce(p->'books', '[]'::jsonb)) x)
             ORDER BY id FOR UPDATE) locked
      JOIN jsonb_to_recordset(coalesce(p->'books', '[]'::jsonb)) AS d(id bigint, delta numeric) ON d.id = locked.id
     WHERE la.id = locked.id;
    RETURN jsonb_build_object('ok', true, 'order_pk', new_id) || created;
END
$$;
COMMENT ON FUNCTION exchange_settle(jsonb) IS 'exchange-simulator order store v{VERSION}';
"""  # noqa: S608


def _pg_type(model: Any, column: str) -> str:
    field = next(f for f in model._meta.concrete_fields if f.column == column)
    return field.rel_db_type(connection) if field.is_relation else field.db_type(connection)


def install(**_: Any) -> None:
    """Create or replace the functions (a ``post_migrate`` handler; cheap and idempotent)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(_functions_sql())


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID | datetime):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _dumps(data: Any) -> str:
    return json.dumps(data, default=_json_default, separators=(",", ":"))


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _row(obj: Any, columns: list[str]) -> dict[str, Any]:
    by_column = {f.column: f.attname for f in obj._meta.concrete_fields}
    return {c: getattr(obj, by_column[c]) for c in columns}


def _book_order(d: dict[str, Any]) -> BookOrder:
    def dec(name: str) -> Decimal:
        return Decimal(str(d[name]))

    return BookOrder(
        pk=d["pk"],
        order_id=uuid.UUID(d["order_id"]),
        account_pk=d["account_pk"],
        side=d["side"],
        price=dec("price"),
        remaining=dec("remaining"),
        rest_quantity=dec("rest_quantity"),
        locked=dec("locked"),
        maker_fee_bps=dec("maker_fee_bps"),
        filled_quantity=dec("filled_quantity"),
        filled_quote=dec("filled_quote"),
        fee=dec("fee"),
        average_price=Decimal(str(d["average_price"])) if d["average_price"] is not None else None,
    )


def _decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class PgBookStore:
    """The store contract in two function calls (PostgreSQL only)."""

    def lock_book(
        self,
        *,
        market_pk: int,
        account_pk: int | None,
        key_id: str | None,
        side: str,
        limit: Decimal | None,
        page: int = PAGE,
    ) -> LockedBook:
        # The function takes levels 1 and 2 of the lock order (exchange/locking.py): the market, then the account.
        locking.enter(locking.Level.MARKET, [market_pk])
        if account_pk is not None:
            locking.enter(locking.Level.ACCOUNT, [account_pk], locking.Mode.SHARE)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT exchange_book_lock(%s, %s, %s, %s, %s, %s)::text",
                [market_pk, account_pk, key_id, side, limit, page],
            )
            data = _loads(cursor.fetchone()[0])
        m = data["market"]
        inventory = data["inventory"]
        return LockedBook(
            market=MarketRow(
                pk=m["id"],
                symbol=m["symbol"],
                base=m["base_asset_id"],
                quote=m["quote_asset_id"],
                status=m["status"],
                reference_price=Decimal(str(m["reference_price"])),
                quantity_step=Decimal(str(m["quantity_step"])),
                price_tick=Decimal(str(m["price_tick"])),
                min_quantity=Decimal(str(m["min_quantity"])),
                min_notional=Decimal(str(m["min_notional"])),
                max_notional=Decimal(str(m["max_notional"])),
                spread_bps=_decimal_or_none(m["spread_bps"]),
                taker_fee_bps=_decimal_or_none(m["taker_fee_bps"]),
                maker_fee_bps=_decimal_or_none(m["maker_fee_bps"]),
                house_quoting=m["house_quoting"],
                ladder_levels=m["ladder_levels"],
                ladder_step_bps=_decimal_or_none(m["ladder_step_bps"]),
                ladder_size=_decimal_or_none(m["ladder_size"]),
                book_sequence=m["book_sequence"],
            ),
            account_status=data["account_status"],
            key_valid=data["key_valid"],
            base_inventory=Decimal(str(inventory.get(m["base_asset_id"], 0))),
            quote_inventory=Decimal(str(inventory.get(m["quote_asset_id"], 0))),
            resting=[_book_order(d) for d in data["resting"]],
        )

    def resting(
        self, *, market_pk: int, side: str, limit: Decimal | None, after: tuple[Decimal, int] | None, count: int
    ) -> list[BookOrder]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT exchange_resting(%s, %s, %s, %s, %s, %s)::text",
                [market_pk, side, limit, after[0] if after else None, after[1] if after else None, count],
            )
            return [_book_order(d) for d in _loads(cursor.fetchone()[0])]

    def settle(self, settlement: Settlement) -> None:
        s = settlement
        payload: dict[str, Any] = {
            "now": s.now,
            "actor_pk": s.actor_pk,
            "history_reason": s.history_reason,
            "market_pk": s.market_pk,
            "book_changed": s.book_changed,
            "checked_accounts": sorted(s.checked_accounts),
            "balances": [
                {"account_id": a, "asset_id": asset, "d_available": da, "d_locked": dl}
                for (a, asset), (da, dl) in s.batch.customer_deltas().items()
            ],
            "entries": [
                {
                    "entry_id": e.entry_id,
                    "kind": e.kind,
                    "reference_type": e.reference_type,
                    "reference_id": e.reference_id,
                    "memo": e.memo,
                    "metadata": e.metadata,
                }
                for e in s.batch.entries
            ],
            "postings": [
                {
                    "entry_id": e.entry_id,
                    "ledger_account_id": book.pk,
                    "asset_id": book.asset,
                    "account_id": book.account_pk,
                    "kind": book.kind,
                    "amount": amount,
                }
                for e in s.batch.entries
                for book, amount in e.legs
            ],
            "books": [{"id": pk, "delta": delta} for pk, delta in s.batch.book_deltas().items()],
            "changed_orders": [
                {"id": o.pk, **_row(o, [Order._meta.get_field(n).column for n in MAKER_FIELDS])}
                for o in s.changed_orders
            ],
        }
        if s.new_order is not None:
            payload["new_order"] = _row(s.new_order, [c for c in _columns(Order)])
        trade_columns = [c for c in _columns(Trade) if c != "journal_entry_id"]
        payload["trades"] = []
        for trade in s.trades:
            row = _row(trade, trade_columns)
            new_taker = trade.taker_order is not None and trade.taker_order is s.new_order
            if new_taker:
                row["taker_order_id"] = None
            else:
                row["taker_order_id"] = trade.taker_order.pk if trade.taker_order is not None else None
            row["maker_order_id"] = trade.maker_order.pk if trade.maker_order is not None else None
            payload["trades"].append({**row, "entry_uuid": s.trade_entries[trade.trade_id], "taker_new": new_taker})
        fill_columns = [c for c in _columns(Fill) if c != "trade_id"]
        payload["fills"] = []
        for fill in s.fills:
            row = _row(fill, [c for c in fill_columns if c != "order_id"])
            row["order_id"] = None if fill.order is s.new_order else fill.order.pk
            payload["fills"].append({**row, "trade_uuid": fill.trade.trade_id})
        if s.candle is not None:
            payload["candle"] = vars(s.candle)
        # The function takes levels 3 and 4: the balance rows in (account, asset) order, the books in id order, last.
        locking.enter(locking.Level.BALANCE, sorted(s.batch.customer_deltas()))
        locking.enter(locking.Level.BOOKS, [b["id"] for b in payload["books"]])
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT exchange_settle(%s::jsonb)::text", [_dumps(payload)])
                result = _loads(cursor.fetchone()[0])
        except IntegrityError as exc:
            if "ledger_account_balance_non_negative" in str(exc):
                raise errors.LiquidityContention(
                    details={"ledger_accounts": [b["id"] for b in payload["books"]]}
                ) from exc
            raise
        if not result["ok"]:
            raise errors.InsufficientBalance(
                details={
                    "asset": result["asset"],
                    "available": str(result["available"]),
                    "required": str(result["required"]),
                }
            )
        if s.new_order is not None:
            s.new_order.pk = result["order_pk"]
        trades, entries = result.get("trades") or {}, result.get("entries") or {}
        for trade in s.trades:
            trade.pk = trades[str(trade.trade_id)]
            entry_id = s.trade_entries[trade.trade_id]
            trade.journal_entry = JournalEntry(pk=entries[str(entry_id)], entry_id=entry_id)
            trade.taker_order, trade.maker_order = trade.taker_order, trade.maker_order
        fills = {(trade_id, liquidity): pk for pk, trade_id, liquidity in result.get("fills") or []}
        for fill in s.fills:
            fill.pk = fills[(str(fill.trade.trade_id), fill.liquidity)]
            fill.trade, fill.order = fill.trade, fill.order

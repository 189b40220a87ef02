"""The global lock order: every row lock a transaction takes is taken here, level by level.

Two transactions that lock rows in the same order cannot deadlock, and a check that reads a row under its lock
cannot be overtaken by a change it did not see. So every service that locks asks this module, and within one
transaction the levels are taken in this order, each level's rows in key order:

1. **Markets**, by id. Matching on a market is serialized by its row (``lock_market``; on PostgreSQL the order
   path's function takes it, after ``enter``).
2. **Trading accounts** (``accounts_account`` rows), by id. Every money movement (deposit, withdrawal, adjustment,
   order fill or reservation) takes its account ``FOR SHARE`` and reads the status under that lock; every status
   change (suspend, reactivate, close) takes it ``FOR UPDATE``. Movements on one account still run side by side
   (shared locks do not conflict), but a status change waits for the movements in flight and the movements after
   it see the new status: a close can no longer commit between a deposit's status check and its credit.
3. **Customer balance rows** (``accounts_balance``), by (account id, asset).
4. **The exchange's own ledger accounts** (house liquidity, fee revenue, external), by id, last: every fill
   shares them, and a row lock lasts until commit, so taking them last keeps the wait on them to the commit.

A level may be entered again (more rows of the same level in key order), never after a higher one. With
``settings.LOCK_ORDER_CHECKS`` on (the test settings, and ``DEBUG``) each transaction's locks are tracked and a
request out of order raises ``LockOrderViolation`` before the statement runs, so a wrong order fails a test
instead of deadlocking production once in a while. The check costs nothing when off.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection


class Level(enum.IntEnum):
    MARKET = 1
    ACCOUNT = 2
    BALANCE = 3
    BOOKS = 4


class Mode(enum.Enum):
    SHARE = "FOR SHARE"
    UPDATE = "FOR UPDATE"


class LockOrderViolation(AssertionError):
    """A transaction asked for a lock out of the global order (a bug in the caller, found by the checks)."""


# --- The per-transaction guard ----------------------------------------------------------------------------------
class _State:
    __slots__ = ("held", "held_shared", "highest", "last_key", "marker", "scope")

    def __init__(self, scope: Any) -> None:
        self.scope = scope
        self.highest: Level | None = None
        self.last_key: Any = None
        self.held: set[tuple[Level, Any]] = set()
        self.held_shared: set[tuple[Level, Any]] = set()

        def marker() -> None:  # registered with on_commit: gone once the transaction ends, whichever way
            return None

        self.marker = marker


_TEST_CASE = object()


def _scope_sid() -> Any:
    """The savepoint of the outermost atomic block that is not a test case's own wrapper (None for a real
    transaction). Under pytest-django's ``db`` fixture every service call is a savepoint of the test's transaction;
    each call is still its own unit of locking, as it is in production. Code a test calls straight in the test
    case's transaction (no atomic block of its own) is not checked: that transaction is the test's, not a unit
    of work of the product."""
    for index, block in enumerate(connection.atomic_blocks):
        if not getattr(block, "_from_testcase", False):
            return connection.savepoint_ids[index - 1] if index else None
    return _TEST_CASE


def _state() -> _State | None:
    scope = _scope_sid()
    if scope is _TEST_CASE:
        return None
    state: _State | None = getattr(connection, "_lock_order_state", None)
    alive = state is not None and any(hook[1] is state.marker for hook in connection.run_on_commit)
    if state is None or state.scope != scope or not alive:
        state = _State(scope)
        connection.on_commit(state.marker)
        connection._lock_order_state = state  # type: ignore[attr-defined]
    return state


def _checking() -> bool:
    return bool(getattr(settings, "LOCK_ORDER_CHECKS", False))


def enter(level: Level, keys: Sequence[Any], mode: Mode = Mode.UPDATE) -> None:
    """Record that the transaction now locks ``keys`` (sorted) at ``level``; raise if that breaks the order.

    Rows the transaction already holds may be locked again at any time (that never waits), except to upgrade a
    share lock. Every helper below calls it; a new level's helper (markets) must call it too."""
    if not keys or not _checking():
        return
    if not connection.in_atomic_block:
        raise LockOrderViolation(f"{level.name} locks outside a transaction would be released at once")
    state = _state()
    if state is None:
        return
    wanted = [(level, key) for key in keys]
    if mode is Mode.UPDATE and state.held_shared.intersection(wanted):
        # Two transactions that both hold the row shared and both want it exclusive deadlock.
        raise LockOrderViolation(f"{level.name} lock upgraded from FOR SHARE to FOR UPDATE")
    new = [key for lk, key in wanted if (lk, key) not in state.held]
    if not new:
        return
    if state.highest is not None:
        if level < state.highest:
            raise LockOrderViolation(f"{level.name} locks requested after {state.highest.name} locks")
        if level == state.highest and new[0] < state.last_key:
            raise LockOrderViolation(f"{level.name} lock on {new[0]!r} requested after {state.last_key!r}")
    state.held.update(wanted)
    if mode is Mode.SHARE:
        state.held_shared.update(wanted)
    same_level = state.highest == level
    state.highest = level
    state.last_key = max(new[-1], state.last_key) if same_level else new[-1]


# --- Level 1: markets ----------------------------------------------------------------------------------------------
def lock_market(market_id: int) -> Any:
    """Lock a market's row ``FOR UPDATE`` and return it: what serializes matching, cancels and price moves on it."""
    from markets.models import Market

    enter(Level.MARKET, [market_id])
    return Market.objects.select_for_update().get(pk=market_id)


# --- Level 2: trading accounts ------------------------------------------------------------------------------------
def lock_accounts(account_ids: Iterable[int], *, mode: Mode) -> dict[int, str]:
    """Lock trading accounts (by id, in id order) and return their status read under the lock. (Django's ORM
    only writes FOR UPDATE, hence the statement. SQLite has no row locks: its IMMEDIATE transactions already
    serialize every writer.)"""
    ids = sorted(set(account_ids))
    enter(Level.ACCOUNT, ids, mode)
    if not ids:
        return {}
    if connection.vendor != "postgresql":
        from accounts.models import Account  # accounts imports ledger, which imports this module

        return dict(Account.objects.filter(pk__in=ids).values_list("pk", "status"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, status FROM accounts_account WHERE id = ANY(%s) ORDER BY id {mode.value}",  # noqa: S608
            [ids],
        )
        return dict(cursor.fetchall())


def lock_account(account_id: int, *, mode: Mode) -> str | None:
    """One account's status, read under its lock (None when no such account)."""
    return lock_accounts([account_id], mode=mode).get(account_id)


# --- Level 3: customer balance rows -------------------------------------------------------------------------------
def lock_balances(keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], Any]:
    """Lock customer balance rows ``FOR UPDATE`` in (account id, asset) order; returns the rows found by key."""
    from accounts.models import Balance

    wanted = sorted(set(keys))
    enter(Level.BALANCE, wanted)
    if not wanted:
        return {}
    account_ids = sorted({account_id for account_id, _ in wanted})
    assets = sorted({asset for _, asset in wanted})
    rows = (
        Balance.objects.select_for_update()
        .filter(account_id__in=account_ids, asset_id__in=assets)
        .order_by("account_id", "asset_id")
    )
    # The filter is the product of the accounts and assets asked for (exact for the usual one account); extra
    # rows it catches are locked in the same order and not returned.
    wanted_set = set(wanted)
    return {key: row for row in rows if (key := (row.account_id, row.asset_id)) in wanted_set}


def lock_account_balances(account_id: int) -> list[Any]:
    """Every balance row of one account, locked ``FOR UPDATE`` in asset order (closing checks they are zero)."""
    from accounts.models import Balance

    assets = sorted(Balance.objects.filter(account_id=account_id).values_list("asset_id", flat=True))
    return list(lock_balances((account_id, asset) for asset in assets).values())


# --- Level 4: the exchange's books --------------------------------------------------------------------------------
def lock_books(ledger_account_ids: Iterable[int]) -> None:
    """Lock the exchange's ledger accounts ``FOR UPDATE`` in id order, for a transaction that will move several
    of them in an order of its own (seeding funds the house and makes deposits in one transaction)."""
    from ledger.models import LedgerAccount

    ids = sorted(set(ledger_account_ids))
    enter(Level.BOOKS, ids)
    if ids:
        list(LedgerAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))


def add_to_books(deltas: dict[int, Decimal]) -> int:
    """Lock the exchange's ledger accounts (by id, in id order) and add ``deltas`` to their balances, in one
    statement on PostgreSQL. Returns the number of rows updated. The CHECK constraint on the balance raises
    ``IntegrityError`` when a house row would go negative."""
    from ledger.models import LedgerAccount

    ids = sorted(deltas)
    enter(Level.BOOKS, ids)
    if not ids:
        return 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH locked AS (
                    SELECT id FROM ledger_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE
                )
                UPDATE ledger_ledgeraccount AS la SET balance = la.balance + d.delta
                  FROM locked JOIN unnest(%s::bigint[], %s::numeric[]) AS d(id, delta) ON d.id = locked.id
                 WHERE la.id = locked.id
                """,
                [ids, ids, [deltas[i] for i in ids]],
            )
            return int(cursor.rowcount)
    # SQLite: the IMMEDIATE transaction already holds the database's write lock, so read, add in Decimal (SQLite's
    # own arithmetic on these columns is floating point) and write back.
    rows = list(LedgerAccount.objects.filter(pk__in=ids).order_by("pk"))
    for row in rows:
        row.balance += deltas[row.pk]
    LedgerAccount.objects.bulk_update(rows, ["balance"])
    return len(rows)

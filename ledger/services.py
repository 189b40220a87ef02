"""Writes to the ledger. ``journal_post`` is the only code that changes a balance.

How a posting settles (all in the caller's database transaction):
1. Validate: at least two legs, no zero amount, no amount finer than its asset's precision, and the legs sum to
   zero per asset (also enforced by a deferred trigger on PostgreSQL; this is the only guard on SQLite).
2. Lock the balance caches the entry touches in the global lock order (``exchange.locking``: customer balance
   rows by account and asset, then the exchange's ledger accounts by id), so two concurrent entries can never
   deadlock. The caller has already taken the trading account's row (``FOR SHARE``) and checked its status.
3. Check that no customer balance would go negative (the sufficient-balance check: the rows are locked, so
   nothing can change them between the check and the update). Nothing has been written yet when it fails,
   so the caller's transaction stays clean.
4. Update the customer caches; insert the entry and its postings; let the caller write its records.
5. Last, update the exchange's books in one statement that locks them in id order; the database's CHECK
   constraint keeps house balances non-negative.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from exchange import errors, locking
from exchange.api import format_amount
from ledger.models import Asset, JournalEntry, LedgerAccount, LedgerAccountKind, Posting
from ledger.selectors import asset_map

ZERO = Decimal(0)


@dataclass(frozen=True)
class Leg:
    """One posting to be made: a signed amount on one ledger account (positive adds to its balance)."""

    ledger_account: LedgerAccount
    amount: Decimal


def amount_check_precision(*, amount: Decimal, asset: Asset) -> None:
    """Refuse an amount with more decimals than the asset allows (never round silently)."""
    if not amount.is_finite() or amount != amount.quantize(asset.quantum):
        raise errors.InvalidAmount(
            f"{asset.code} amounts have at most {asset.decimals} decimal places.",
            details={"asset": asset.code, "decimals": asset.decimals, "amount": str(amount)},
        )


def _validate(legs: Sequence[Leg]) -> None:
    if len(legs) < 2:
        raise errors.LedgerImbalance("A journal entry needs at least two postings.")
    assets = asset_map()
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if leg.amount == 0:
            raise errors.LedgerImbalance("A posting amount cannot be zero.")
        amount_check_precision(amount=leg.amount, asset=assets[leg.ledger_account.asset_id])
        totals[leg.ledger_account.asset_id] += leg.amount
    unbalanced = {asset: str(total) for asset, total in totals.items() if total != 0}
    if unbalanced:
        raise errors.LedgerImbalance(details={"unbalanced": unbalanced})


def _lock_customer_balances(legs: Sequence[Leg], now: Any) -> list[Any]:
    """Lock the customer balance rows the legs touch (level 3 of exchange.locking: by account, then asset),
    check that none would go negative, and return the rows with their new values set (not yet written)."""
    deltas: dict[tuple[int, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for leg in legs:
        la = leg.ledger_account
        if la.kind == LedgerAccountKind.CUSTOMER_AVAILABLE:
            deltas[(la.account_id, la.asset_id)][0] += leg.amount  # type: ignore[index]
        elif la.kind == LedgerAccountKind.CUSTOMER_LOCKED:
            deltas[(la.account_id, la.asset_id)][1] += leg.amount  # type: ignore[index]
    if not deltas:
        return []
    by_key = locking.lock_balances(deltas)
    changed = []
    for key, (d_available, d_locked) in sorted(deltas.items()):
        row = by_key.get(key)
        if row is None:
            raise errors.InternalError(f"Balance row missing for account {key[0]} asset {key[1]}.")
        new_available, new_locked = row.available + d_available, row.locked + d_locked
        if new_available < 0 or new_locked < 0:
            places = asset_map()[key[1]].decimals
            raise errors.InsufficientBalance(
                details={
                    "asset": key[1],
                    "available": format_amount(row.available if new_available < 0 else row.locked, places),
                    "required": format_amount(-d_available if new_available < 0 else -d_locked, places),
                }
            )
        row.available, row.locked, row.updated_at = new_available, new_locked, now
        changed.append(row)
    return changed


def _write_customer_rows(rows: list[Any], now: Any) -> None:
    """Write the new values of the locked customer balance rows in one statement."""
    from accounts.models import Balance

    if connection.vendor != "postgresql":
        Balance.objects.bulk_update(rows, ["available", "locked", "updated_at"])
        return
    # One UPDATE from arrays: the ORM's bulk_update builds a CASE per column, which costs more to compile than
    # the statement costs to run.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE accounts_balance AS b SET available = d.available, locked = d.locked, updated_at = %s
              FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[]) AS d(id, available, locked)
             WHERE b.id = d.id
            """,
            [now, [r.pk for r in rows], [r.available for r in rows], [r.locked for r in rows]],
        )


def _settle_book_balances(legs: Sequence[Leg]) -> None:
    """Apply the legs to the exchange's books (house liquidity, fee revenue, external) in one statement.

    It runs last in the transaction on purpose: every fill touches a house row, and a row lock is held from
    the moment it is taken until commit, so taking it last keeps the wait of concurrent fills on the same
    shard to the commit itself. Rows are locked in id order (level 4 of exchange.locking). The database's CHECK
    constraint keeps house and fee balances non-negative; when a concurrent fill drained a shard after the
    caller's unlocked pre-check, the statement fails and ``LiquidityContention`` tells the caller to retry the
    whole transaction.
    """
    deltas: dict[int, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if leg.ledger_account.kind not in (LedgerAccountKind.CUSTOMER_AVAILABLE, LedgerAccountKind.CUSTOMER_LOCKED):
            deltas[leg.ledger_account.pk] += leg.amount
    settle_book_deltas(deltas)


def settle_book_deltas(deltas: dict[int, Decimal]) -> None:
    """Add ``deltas`` (ledger account id -> amount) to the exchange's books in one statement, locking the rows in id
    order (see ``_settle_book_balances``)."""
    deltas = {pk: delta for pk, delta in deltas.items() if delta != 0}
    if not deltas:
        return
    ids = sorted(deltas)
    try:
        updated = locking.add_to_books(deltas)
    except IntegrityError as exc:
        if "ledger_account_balance_non_negative" in str(exc):
            raise errors.LiquidityContention(details={"ledger_accounts": ids}) from exc
        raise
    if updated != len(ids):
        raise errors.InternalError(f"Ledger accounts missing: expected {len(ids)} rows, updated {updated}.")


def journal_post(
    *,
    kind: str,
    legs: Sequence[Leg],
    actor: Any = None,
    memo: str = "",
    reference_type: str = "",
    reference_id: str = "",
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
    before_books: Callable[[JournalEntry], None] | None = None,
) -> JournalEntry:
    """Post one balanced journal entry and settle the balance caches, atomically.

    Raises InsufficientBalance before writing anything when a customer balance would go negative, so the
    caller can still record the refusal (a rejected order) in the same transaction. The exchange's books are
    settled last (see ``_settle_book_balances``); ``before_books`` lets the caller write its own records (the
    order and trade) before that, so house rows stay locked for as short a time as possible. Raises
    LiquidityContention (the transaction is then unusable: roll back and retry) when a house shard ran dry
    after the caller chose it.

    Runs in the caller's transaction when there is one (no savepoint), else in a transaction of its own.
    """
    if not connection.in_atomic_block:
        with transaction.atomic():
            return journal_post(
                kind=kind,
                legs=legs,
                actor=actor,
                memo=memo,
                reference_type=reference_type,
                reference_id=reference_id,
                idempotency_key=idempotency_key,
                metadata=metadata,
                before_books=before_books,
            )
    _validate(legs)
    now = timezone.now()
    customer_rows = _lock_customer_balances(legs, now)
    if customer_rows:
        _write_customer_rows(customer_rows, now)
    entry = JournalEntry.objects.create(
        kind=kind,
        actor=actor if getattr(actor, "pk", None) else None,
        memo=memo[:500],
        reference_type=reference_type,
        reference_id=reference_id,
        idempotency_key=idempotency_key,
        metadata=metadata or {},
    )
    Posting.objects.bulk_create(
        [
            Posting(
                entry=entry,
                ledger_account_id=leg.ledger_account.pk,
                asset_id=leg.ledger_account.asset_id,
                account_id=leg.ledger_account.account_id,
                amount=leg.amount,
            )
            for leg in legs
        ]
    )
    if before_books is not None:
        before_books(entry)
    _settle_book_balances(legs)
    return entry

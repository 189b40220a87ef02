"""Writes to the ledger. ``journal_post`` is the only code that changes a balance.

How a posting settles (all in the caller's database transaction):
1. Validate: at least two legs, no zero amount, no amount finer than its asset's precision, and the legs sum to
   zero per asset (also enforced by a deferred trigger on PostgreSQL; this is the only guard on SQLite).
2. Lock the balance caches the entry touches, always in the same order (customer balance rows by account and
   asset, then the exchange's ledger accounts by id), so two concurrent entries can never deadlock.
3. Check that no customer balance and no house balance would go negative (the sufficient-balance check: the
   rows are locked, so nothing can change them between the check and the update). Nothing has been written
   yet when a check fails, so the caller's transaction stays clean.
4. Update the caches; insert the entry and its postings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from exchange import errors
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
    """Lock the customer balance rows the legs touch (by account, then asset), check that none would go
    negative, and return the rows with their new values set (not yet written)."""
    from accounts.models import Balance  # accounts depends on ledger's models; import here to avoid a cycle

    deltas: dict[tuple[int, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for leg in legs:
        la = leg.ledger_account
        if la.kind == LedgerAccountKind.CUSTOMER_AVAILABLE:
            deltas[(la.account_id, la.asset_id)][0] += leg.amount  # type: ignore[index]
        elif la.kind == LedgerAccountKind.CUSTOMER_LOCKED:
            deltas[(la.account_id, la.asset_id)][1] += leg.amount  # type: ignore[index]
    if not deltas:
        return []
    account_ids = sorted({account_id for account_id, _ in deltas})
    assets = sorted({asset for _, asset in deltas})
    rows = list(
        Balance.objects.select_for_update()
        .filter(account_id__in=account_ids, asset_id__in=assets)
        .order_by("account_id", "asset_id")
    )
    by_key = {(row.account_id, row.asset_id): row for row in rows}
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


def _lock_book_balances(legs: Sequence[Leg]) -> list[LedgerAccount]:
    """Lock the exchange's ledger accounts the legs touch (by id), check that house and fee balances stay
    non-negative, and return the rows with their new balances set (not yet written)."""
    deltas: dict[int, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if leg.ledger_account.kind not in (LedgerAccountKind.CUSTOMER_AVAILABLE, LedgerAccountKind.CUSTOMER_LOCKED):
            deltas[leg.ledger_account.pk] += leg.amount
    if not deltas:
        return []
    rows = list(LedgerAccount.objects.select_for_update().filter(pk__in=deltas).order_by("pk"))
    for row in rows:
        new_balance = row.balance + deltas[row.pk]
        if new_balance < 0 and row.kind != LedgerAccountKind.EXTERNAL:
            if row.kind == LedgerAccountKind.HOUSE_LIQUIDITY:
                raise errors.InsufficientLiquidity(details={"asset": row.asset_id})
            raise errors.LedgerImbalance(f"{row} would go negative.")
        row.balance = new_balance
    return rows


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
) -> JournalEntry:
    """Post one balanced journal entry and settle the balance caches, atomically.

    Raises InsufficientBalance / InsufficientLiquidity (nothing is written) when a customer or house balance
    would go negative.

    Runs in the caller's transaction when there is one (no savepoint: every refusal is raised before the first
    write, so there is nothing to undo), else in a transaction of its own.
    """
    if not connection.in_atomic_block:
        with transaction.atomic():
            return journal_post(kind=kind, legs=legs, actor=actor, memo=memo, reference_type=reference_type,
                                reference_id=reference_id, idempotency_key=idempotency_key, metadata=metadata)
    _validate(legs)
    now = timezone.now()
    # Lock and check everything first, write afterwards: a refusal leaves the transaction untouched, so the
    # caller can still record it (a rejected order) in the same transaction.
    customer_rows = _lock_customer_balances(legs, now)
    book_rows = _lock_book_balances(legs)
    if customer_rows:
        from accounts.models import Balance

        Balance.objects.bulk_update(customer_rows, ["available", "locked", "updated_at"])
    if book_rows:
        LedgerAccount.objects.bulk_update(book_rows, ["balance"])
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
    return entry

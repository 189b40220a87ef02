"""Several journal entries posted together: the ledger side of an order (its trades, its reservation, releases).

An order touches many ledger accounts at once (its own, its makers', the house's) in one transaction. A
``JournalBatch`` collects the entries, validates each one as ``journal_post`` does (two or more legs, no zero leg,
nothing finer than the asset's precision, zero sum per asset), and gives the net change of every balance cache,
so the balances are locked, checked and written once for the whole batch, in the global lock order
(exchange/locking.py): customer balance rows by (account, asset), then the exchange's books by id, last.

Legs name ledger accounts by identity (``Book``) rather than by row: a customer's available and locked accounts by
(account, asset, kind), the exchange's books by their row id. The writer resolves them (orders/store.py writes a
batch together with the order rows, in one call to the database on PostgreSQL).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from exchange import errors
from ledger.models import LedgerAccountKind
from ledger.selectors import asset_map

ZERO = Decimal(0)
AVAILABLE, LOCKED = LedgerAccountKind.CUSTOMER_AVAILABLE.value, LedgerAccountKind.CUSTOMER_LOCKED.value


@dataclass(frozen=True)
class Book:
    """A ledger account by identity: a customer's (``account_pk`` set) or one of the exchange's books (``pk`` set)."""

    kind: str
    asset: str
    account_pk: int | None = None
    pk: int | None = None

    @property
    def is_customer(self) -> bool:
        return self.account_pk is not None


def available(account_pk: int, asset: str) -> Book:
    return Book(AVAILABLE, asset, account_pk=account_pk)


def locked(account_pk: int, asset: str) -> Book:
    return Book(LOCKED, asset, account_pk=account_pk)


@dataclass
class BatchEntry:
    kind: str
    legs: list[tuple[Book, Decimal]]
    reference_type: str = ""
    reference_id: str = ""
    memo: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    entry_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class JournalBatch:
    entries: list[BatchEntry] = field(default_factory=list)

    def add(
        self,
        *,
        kind: str,
        legs: list[tuple[Book, Decimal]],
        reference_type: str = "",
        reference_id: str = "",
        memo: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> BatchEntry:
        """Add one entry; legs of zero are dropped (a fee of 0 is no posting). Raises LedgerImbalance."""
        legs = [(book, amount) for book, amount in legs if amount != 0]
        if len(legs) < 2:
            raise errors.LedgerImbalance("A journal entry needs at least two postings.")
        totals: dict[str, Decimal] = defaultdict(Decimal)
        assets = asset_map()
        for book, amount in legs:
            asset = assets[book.asset]
            if not amount.is_finite() or amount != amount.quantize(asset.quantum):
                raise errors.LedgerImbalance(
                    f"A posting of {amount} {book.asset} is finer than the asset's precision.",
                    details={"asset": book.asset, "amount": str(amount)},
                )
            totals[book.asset] += amount
        unbalanced = {asset: str(total) for asset, total in totals.items() if total != 0}
        if unbalanced:
            raise errors.LedgerImbalance(details={"unbalanced": unbalanced})
        entry = BatchEntry(
            kind=kind,
            legs=legs,
            reference_type=reference_type,
            reference_id=reference_id,
            memo=memo[:500],
            metadata=metadata or {},
        )
        self.entries.append(entry)
        return entry

    def customer_deltas(self) -> dict[tuple[int, str], tuple[Decimal, Decimal]]:
        """Net (available, locked) change of each customer balance row, by (account pk, asset), sorted."""
        deltas: dict[tuple[int, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        for entry in self.entries:
            for book, amount in entry.legs:
                if book.account_pk is not None:
                    deltas[(book.account_pk, book.asset)][0 if book.kind == AVAILABLE else 1] += amount
        return {key: (d[0], d[1]) for key, d in sorted(deltas.items())}

    def book_deltas(self) -> dict[int, Decimal]:
        """Net change of each of the exchange's books (house liquidity, fee revenue, external), by row id, sorted."""
        deltas: dict[int, Decimal] = defaultdict(Decimal)
        for entry in self.entries:
            for book, amount in entry.legs:
                if book.pk is not None:
                    deltas[book.pk] += amount
        return {pk: delta for pk, delta in sorted(deltas.items()) if delta != 0}

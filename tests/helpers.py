"""Small readers used by many tests: balances and journal lines by value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from accounts.models import Balance
from ledger.models import JournalEntry


def balances_of(account: Any) -> dict[str, tuple[Decimal, Decimal]]:
    """asset -> (available, locked) for an account, straight from the database."""
    return {b.asset_id: (b.available, b.locked) for b in Balance.objects.filter(account=account)}


def lines_of(entry: JournalEntry) -> list[tuple[str, str, str, Decimal]]:
    """An entry's postings as (kind of ledger account, asset, owner label or shard, amount), sorted."""
    lines = []
    for p in entry.postings.select_related("ledger_account", "account"):
        owner = p.account.label if p.account_id else f"shard{p.ledger_account.shard}"
        lines.append((p.ledger_account.kind, p.asset_id, owner, p.amount))
    return sorted(lines)


def money_snapshot() -> tuple[Any, ...]:
    """Everything that moves money, to prove that a refused request changed nothing."""
    from ledger.models import LedgerAccount, Posting

    return (
        sorted(Balance.objects.values_list("account_id", "asset_id", "available", "locked")),
        sorted(LedgerAccount.objects.values_list("id", "balance")),
        JournalEntry.objects.count(),
        Posting.objects.count(),
    )

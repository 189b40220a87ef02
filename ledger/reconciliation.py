"""Reconciliation: prove that the balance caches equal the ledger and that the ledger balances.

Checks, each reported with the offending rows:
* every journal entry has at least two postings and sums to zero per asset;
* for every customer account and asset, ``Balance.available`` / ``Balance.locked`` equal the sums of the postings
  to its available / locked ledger accounts;
* for every exchange book (house liquidity, fee revenue, external), the cached balance equals its postings' sum;
* for every asset, customers + house + fees + external sum to zero.
Further checks (orders and trades) register themselves through ``register_check``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum

from ledger.models import JournalEntry, LedgerAccount, LedgerAccountKind, Posting

ZERO = Decimal(0)


@dataclass
class Report:
    checks: dict[str, int] = field(default_factory=dict)  # check name -> rows examined
    discrepancies: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, dict[str, str]] = field(default_factory=dict)  # asset -> group -> sum

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def problem(self, check: str, **details: Any) -> None:
        self.discrepancies.append({"check": check, **{k: str(v) for k, v in details.items()}})

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": self.checks, "totals": self.totals, "discrepancies": self.discrepancies}


_EXTRA_CHECKS: list[Callable[[Report], None]] = []


def register_check(check: Callable[[Report], None]) -> Callable[[Report], None]:
    _EXTRA_CHECKS.append(check)
    return check


def sums_by(queryset: Any, *keys: str) -> dict[Any, Decimal]:
    """Exact sums of ``amount`` grouped by ``keys``. PostgreSQL sums NUMERIC exactly; SQLite's SUM works in
    floating point, so there the rows are added up in Python with Decimal."""
    from django.db import connection

    if connection.vendor == "postgresql":
        rows = queryset.values(*keys).annotate(total=Sum("amount")).values_list(*keys, "total")
        return {(row[0] if len(keys) == 1 else tuple(row[:-1])): row[-1] for row in rows}
    totals: dict[Any, Decimal] = defaultdict(Decimal)
    for row in queryset.values_list(*keys, "amount").iterator(chunk_size=5000):
        totals[row[0] if len(keys) == 1 else tuple(row[:-1])] += row[-1]
    return dict(totals)


def _check_entries(report: Report) -> None:
    entries = JournalEntry.objects.annotate(n=Count("postings"))
    report.checks["entries"] = entries.count()
    for entry_id, n in entries.filter(n__lt=2).values_list("entry_id", "n"):
        report.problem("entry_too_few_postings", entry_id=entry_id, postings=n)
    for (entry_id, asset), total in sums_by(Posting.objects.all(), "entry__entry_id", "asset_id").items():
        if total != 0:
            report.problem("entry_unbalanced", entry_id=entry_id, asset=asset, total=total)


def _check_caches(report: Report) -> None:
    from accounts.models import Balance

    sums = sums_by(Posting.objects.all(), "ledger_account_id")
    customer: dict[tuple[int, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    books = 0
    for la in LedgerAccount.objects.all().only("id", "kind", "asset_id", "account_id", "balance", "shard"):
        total = sums.get(la.pk) or ZERO
        if la.kind == LedgerAccountKind.CUSTOMER_AVAILABLE:
            customer[(la.account_id, la.asset_id)][0] = total  # type: ignore[index]
        elif la.kind == LedgerAccountKind.CUSTOMER_LOCKED:
            customer[(la.account_id, la.asset_id)][1] = total  # type: ignore[index]
        else:
            books += 1
            if la.balance != total:
                report.problem(
                    "book_balance_mismatch",
                    ledger_account=la.pk,
                    kind=la.kind,
                    asset=la.asset_id,
                    shard=la.shard,
                    cached=la.balance,
                    ledger=total,
                )
    report.checks["books"] = books
    balances = Balance.objects.select_related("account").only(
        "account_id", "asset_id", "available", "locked", "account__account_id"
    )
    seen = 0
    for balance in balances:
        seen += 1
        available, locked = customer.pop((balance.account_id, balance.asset_id), [ZERO, ZERO])
        if balance.available != available or balance.locked != locked:
            report.problem(
                "customer_balance_mismatch",
                account_id=balance.account.account_id,
                asset=balance.asset_id,
                cached_available=balance.available,
                ledger_available=available,
                cached_locked=balance.locked,
                ledger_locked=locked,
            )
    report.checks["customer_balances"] = seen
    for (account_pk, asset), (available, locked) in customer.items():
        if available or locked:
            report.problem(
                "customer_balance_missing",
                account=account_pk,
                asset=asset,
                ledger_available=available,
                ledger_locked=locked,
            )


def _check_asset_totals(report: Report) -> None:
    groups = {
        LedgerAccountKind.CUSTOMER_AVAILABLE: "customers",
        LedgerAccountKind.CUSTOMER_LOCKED: "customers",
        LedgerAccountKind.HOUSE_LIQUIDITY: "house",
        LedgerAccountKind.FEE_REVENUE: "fees",
        LedgerAccountKind.EXTERNAL: "external",
    }
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for (asset, kind), total in sums_by(Posting.objects.all(), "asset_id", "ledger_account__kind").items():
        totals[asset][groups[kind]] += total
    for asset, by_group in sorted(totals.items()):
        grand = sum(by_group.values(), ZERO)
        report.totals[asset] = {k: _fmt(v) for k, v in sorted(by_group.items())} | {"sum": _fmt(grand)}
        if grand != 0:
            report.problem("asset_does_not_sum_to_zero", asset=asset, total=grand)
    report.checks["assets"] = len(totals)


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def reconcile() -> Report:
    report = Report()
    _check_entries(report)
    _check_caches(report)
    _check_asset_totals(report)
    for check in _EXTRA_CHECKS:
        check(report)
    return report

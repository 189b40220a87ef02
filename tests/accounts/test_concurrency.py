"""Twenty withdrawals race for one balance on PostgreSQL: exactly the ones the balance covers go through."""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from django.db import connections

from accounts import services
from exchange import errors
from ledger.models import JournalEntry
from ledger.reconciliation import reconcile
from tests.factories import UserFactory, make_account

pytestmark = pytest.mark.django_db(transaction=True)


def _race(n: int, work) -> list[object]:
    """Run ``work(i)`` in n threads released at the same instant; each thread has its own connection."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except Exception as exc:  # collected and asserted on below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_twenty_concurrent_withdrawals_never_overdraw(postgres):
    operator = UserFactory(username="ops")
    account = make_account(owner=UserFactory(username="carol"), funds={"USD": "100.00"})

    # 20 x 7.00 = 140.00 asked for, 100.00 held: exactly 14 fit (98.00), 6 must be refused.
    results = _race(
        20,
        lambda i: services.withdrawal_create(
            account=account, asset="USD", amount="7.00", actor=operator, reason=f"race {i}"
        ),
    )

    done = [r for r in results if isinstance(r, JournalEntry)]
    refused = [r for r in results if isinstance(r, errors.InsufficientBalance)]
    unexpected = [r for r in results if not isinstance(r, (JournalEntry, errors.InsufficientBalance))]
    assert unexpected == []
    assert (len(done), len(refused)) == (14, 6)
    balance = account.balances.get(asset_id="USD")
    assert balance.available == D("2.00") and balance.locked == 0
    assert JournalEntry.objects.filter(kind="withdrawal").count() == 14
    report = reconcile()
    assert report.ok, report.discrepancies


def test_concurrent_withdrawals_on_two_assets_and_deposits_stay_consistent(postgres):
    """Deposits and withdrawals interleave on the same rows without deadlock or lost updates."""
    operator = UserFactory(username="ops")
    account = make_account(owner=UserFactory(username="dave"), funds={"USD": "50", "BTC": "0.5"})

    def work(i: int):
        if i % 3 == 0:
            return services.deposit_create(account=account, asset="USD", amount="1", actor=operator)
        asset, amount = ("USD", "3") if i % 2 else ("BTC", "0.05")
        return services.withdrawal_create(account=account, asset=asset, amount=amount, actor=operator)

    results = _race(18, work)
    assert all(isinstance(r, (JournalEntry, errors.InsufficientBalance)) for r in results), results
    report = reconcile()
    assert report.ok, report.discrepancies
    usd = account.balances.get(asset_id="USD").available
    btc = account.balances.get(asset_id="BTC").available
    assert usd >= 0 and btc >= 0
    deposits = sum(1 for r in results if isinstance(r, JournalEntry) and r.kind == "deposit")
    usd_out = sum(
        1 for r in results if isinstance(r, JournalEntry) and r.kind == "withdrawal" and r.metadata["asset"] == "USD"
    )
    btc_out = sum(1 for r in results if isinstance(r, JournalEntry) and r.metadata["asset"] == "BTC")
    assert usd == D("50") + deposits - 3 * usd_out
    assert btc == D("0.5") - D("0.05") * btc_out

"""A bookkeeping exercise: deposit, withdraw and adjust, then check every balance and every journal line by value."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts import services
from exchange import errors
from ledger.models import EntryKind, JournalEntry
from ledger.reconciliation import reconcile
from tests.factories import make_account
from tests.helpers import balances_of, lines_of

pytestmark = pytest.mark.django_db


def test_deposit_withdraw_adjust_worked_example(alice, operator_user):
    account = make_account(owner=alice, label="alice-main")
    assert balances_of(account) == {
        "BTC": (D("0"), D("0")),
        "ETH": (D("0"), D("0")),
        "USD": (D("0"), D("0")),
        "USDT": (D("0"), D("0")),
    }

    # 1. The operator deposits 1,000.00 USD: custody pays, alice's available USD receives.
    deposit = services.deposit_create(
        account=account, asset="USD", amount="1000.00", actor=operator_user, reason="wire 42"
    )
    assert deposit.kind == EntryKind.DEPOSIT and deposit.actor == operator_user and deposit.memo == "wire 42"
    assert lines_of(deposit) == [
        ("customer_available", "USD", "alice-main", D("1000")),
        ("external", "USD", "shard0", D("-1000")),
    ]

    # 2. alice withdraws 250.50 USD: the reverse movement.
    withdrawal = services.withdrawal_create(
        account=account, asset="USD", amount="250.50", actor=operator_user, reason="payout"
    )
    assert lines_of(withdrawal) == [
        ("customer_available", "USD", "alice-main", D("-250.50")),
        ("external", "USD", "shard0", D("250.50")),
    ]

    # 3. Two operator adjustments: a 0.50 USD fee refund and a 0.00000001 BTC correction downwards after a
    #    0.001 BTC deposit.
    services.deposit_create(account=account, asset="BTC", amount="0.001", actor=operator_user)
    refund = services.adjustment_create(
        account=account, asset="USD", amount="0.50", actor=operator_user, reason="fee refund"
    )
    correction = services.adjustment_create(
        account=account, asset="BTC", amount="-0.00000001", actor=operator_user, reason="dust correction"
    )
    assert lines_of(refund) == [
        ("customer_available", "USD", "alice-main", D("0.50")),
        ("external", "USD", "shard0", D("-0.50")),
    ]
    assert lines_of(correction) == [
        ("customer_available", "BTC", "alice-main", D("-0.00000001")),
        ("external", "BTC", "shard0", D("0.00000001")),
    ]

    # 1000 - 250.50 + 0.50 = 750.00 USD; 0.001 - 0.00000001 = 0.00099999 BTC.
    assert balances_of(account) == {
        "BTC": (D("0.00099999"), D("0")),
        "ETH": (D("0"), D("0")),
        "USD": (D("750.00"), D("0")),
        "USDT": (D("0"), D("0")),
    }
    assert JournalEntry.objects.filter(reference_id=str(account.account_id)).count() == 5

    # 4. Withdrawing more than is available is refused and moves nothing.
    with pytest.raises(errors.InsufficientBalance):
        services.withdrawal_create(account=account, asset="USD", amount="750.01", actor=operator_user)
    assert balances_of(account)["USD"] == (D("750.00"), D("0"))

    report = reconcile()
    assert report.ok, report.discrepancies
    # Everything alice holds came from custody: customers + external sum to zero per asset.
    assert report.totals["USD"]["customers"] == "750.00" or D(report.totals["USD"]["customers"]) == D("750")
    assert D(report.totals["USD"]["sum"]) == 0 and D(report.totals["BTC"]["sum"]) == 0


def test_idempotent_deposit_is_applied_once(alice, operator_user):
    account = make_account(owner=alice)
    first = services.deposit_create(
        account=account, asset="ETH", amount="1.5", actor=operator_user, idempotency_key="wire-7"
    )
    again = services.deposit_create(
        account=account, asset="ETH", amount="1.5", actor=operator_user, idempotency_key="wire-7"
    )
    assert again.pk == first.pk
    assert balances_of(account)["ETH"] == (D("1.5"), D("0"))
    with pytest.raises(errors.IdempotencyConflict):
        services.deposit_create(account=account, asset="ETH", amount="2", actor=operator_user, idempotency_key="wire-7")


def test_suspended_account_receives_deposits_but_cannot_withdraw(alice, operator_user):
    account = make_account(owner=alice, funds={"USD": "10"})
    services.account_suspend(account=account, actor=operator_user, reason="kyc review")
    services.deposit_create(account=account, asset="USD", amount="5", actor=operator_user)
    with pytest.raises(errors.AccountSuspended):
        services.withdrawal_create(account=account, asset="USD", amount="1", actor=operator_user)
    assert balances_of(account)["USD"] == (D("15"), D("0"))


def test_close_needs_zero_balances(alice, operator_user):
    account = make_account(owner=alice, funds={"USD": "10"})
    with pytest.raises(errors.AccountNotEmpty):
        services.account_close(account=account, actor=operator_user)
    services.withdrawal_create(account=account, asset="USD", amount="10", actor=operator_user)
    closed = services.account_close(account=account, actor=operator_user, reason="customer request")
    assert closed.status == "closed"
    with pytest.raises(errors.AccountClosed):
        services.deposit_create(account=account, asset="USD", amount="1", actor=operator_user)

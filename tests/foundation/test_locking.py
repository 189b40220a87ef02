"""The global lock order (exchange.locking): with the checks on, as in the test settings, a transaction that asks
for a lock out of order fails at once instead of deadlocking some day in production."""

from __future__ import annotations

import pytest
from django.db import transaction

from exchange import locking
from ledger.models import LedgerAccount
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def test_levels_in_order_are_accepted_and_statuses_are_read_under_the_lock():
    a, b = make_account(label="a"), make_account(label="b")
    books = list(LedgerAccount.objects.filter(account__isnull=True).order_by("pk").values_list("pk", flat=True)[:2])

    with transaction.atomic():
        assert locking.lock_accounts([b.pk, a.pk], mode=locking.Mode.SHARE) == {a.pk: "active", b.pk: "active"}
        rows = locking.lock_balances([(a.pk, "USD"), (b.pk, "BTC")])
        locking.lock_books(books)
        # Rows already held may be asked for again: that never waits.
        locking.lock_account(a.pk, mode=locking.Mode.SHARE)

    assert set(rows) == {(a.pk, "USD"), (b.pk, "BTC")}


def test_an_account_lock_after_a_balance_lock_is_refused():
    account = make_account()

    with pytest.raises(locking.LockOrderViolation, match="ACCOUNT locks requested after BALANCE"):
        with transaction.atomic():
            locking.lock_balances([(account.pk, "USD")])
            locking.lock_account(account.pk, mode=locking.Mode.SHARE)


def test_rows_of_one_level_out_of_key_order_are_refused():
    a, b = make_account(label="a"), make_account(label="b")

    with pytest.raises(locking.LockOrderViolation, match="requested after"):
        with transaction.atomic():
            locking.lock_account(b.pk, mode=locking.Mode.UPDATE)
            locking.lock_account(a.pk, mode=locking.Mode.UPDATE)


def test_upgrading_a_share_lock_is_refused():
    account = make_account()

    with pytest.raises(locking.LockOrderViolation, match="upgraded"):
        with transaction.atomic():
            locking.lock_account(account.pk, mode=locking.Mode.SHARE)
            locking.lock_account(account.pk, mode=locking.Mode.UPDATE)


def test_each_transaction_starts_afresh():
    account = make_account()

    with transaction.atomic():
        locking.lock_balances([(account.pk, "USD")])
    with transaction.atomic():
        assert locking.lock_account(account.pk, mode=locking.Mode.UPDATE) == "active"


def test_checks_cost_nothing_when_off(settings):
    settings.LOCK_ORDER_CHECKS = False
    account = make_account()

    with transaction.atomic():
        locking.lock_balances([(account.pk, "USD")])
        locking.lock_account(account.pk, mode=locking.Mode.SHARE)

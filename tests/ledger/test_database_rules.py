"""The database itself refuses to unbalance or rewrite the ledger (PostgreSQL triggers and CHECK constraints),
shown with raw SQL that bypasses every Python guard."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, InternalError, connection, transaction
from django.db.utils import DatabaseError

from accounts import services
from ledger.models import LedgerAccount, Posting
from tests.factories import make_account


@pytest.fixture
def funded(postgres, alice, operator_user):
    account = make_account(owner=alice, funds={"USD": "100"})
    return account


def _sql(statement: str, params: list | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def test_update_of_a_posting_is_refused(funded):
    posting = Posting.objects.filter(account=funded).first()
    with pytest.raises(DatabaseError, match="append-only"):
        _sql("UPDATE ledger_posting SET amount = amount + 1 WHERE id = %s", [posting.pk])


def test_delete_of_a_posting_or_entry_is_refused(funded):
    posting = Posting.objects.filter(account=funded).first()
    with pytest.raises(DatabaseError, match="append-only"):
        _sql("DELETE FROM ledger_posting WHERE id = %s", [posting.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _sql("DELETE FROM ledger_journalentry WHERE id = %s", [posting.entry_id])


def _insert_entry(cursor) -> int:
    cursor.execute(
        "INSERT INTO ledger_journalentry (entry_id, kind, reference_type, reference_id, memo, metadata, created_at)"
        " VALUES (gen_random_uuid(), 'adjustment', '', '', 'raw', '{}', now()) RETURNING id"
    )
    return cursor.fetchone()[0]


def _insert_posting(cursor, entry_id: int, ledger_account: LedgerAccount, amount: str) -> None:
    cursor.execute(
        "INSERT INTO ledger_posting (entry_id, ledger_account_id, asset_id, account_id, amount, created_at)"
        " VALUES (%s, %s, %s, %s, %s, now())",
        [entry_id, ledger_account.pk, ledger_account.asset_id, ledger_account.account_id, amount],
    )


def test_an_entry_that_does_not_sum_to_zero_is_refused_at_commit(funded):
    external = LedgerAccount.objects.get(kind="external", asset_id="USD")
    available = LedgerAccount.objects.get(kind="customer_available", asset_id="USD", account=funded)
    before = Posting.objects.count()
    # The check is deferred to commit, so both inserts succeed and the commit (here: the savepoint release
    # is not enough, so we force the deferred check) fails.
    with pytest.raises((IntegrityError, InternalError, DatabaseError), match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            entry_id = _insert_entry(cursor)
            _insert_posting(cursor, entry_id, available, "5.00")
            _insert_posting(cursor, entry_id, external, "-4.00")
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert Posting.objects.count() == before


def test_an_entry_with_a_single_posting_is_refused(funded):
    available = LedgerAccount.objects.get(kind="customer_available", asset_id="USD", account=funded)
    with pytest.raises(DatabaseError, match="at least two"):
        with transaction.atomic(), connection.cursor() as cursor:
            entry_id = _insert_entry(cursor)
            _insert_posting(cursor, entry_id, available, "5.00")
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.corrupts_ledger
def test_a_balanced_raw_entry_is_accepted(funded):
    """The trigger is not simply refusing everything: a balanced entry passes."""
    external = LedgerAccount.objects.get(kind="external", asset_id="USD")
    available = LedgerAccount.objects.get(kind="customer_available", asset_id="USD", account=funded)
    with transaction.atomic(), connection.cursor() as cursor:
        entry_id = _insert_entry(cursor)
        _insert_posting(cursor, entry_id, available, "5.00")
        _insert_posting(cursor, entry_id, external, "-5.00")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert Posting.objects.filter(entry_id=entry_id).count() == 2


def test_a_posting_finer_than_its_asset_precision_is_refused(funded):
    external = LedgerAccount.objects.get(kind="external", asset_id="USD")
    available = LedgerAccount.objects.get(kind="customer_available", asset_id="USD", account=funded)
    with pytest.raises(DatabaseError, match="more than 2 decimals"):
        with transaction.atomic(), connection.cursor() as cursor:
            entry_id = _insert_entry(cursor)
            _insert_posting(cursor, entry_id, available, "0.001")
            _insert_posting(cursor, entry_id, external, "-0.001")


def test_a_posting_on_a_mismatched_asset_is_refused(funded):
    btc_available = LedgerAccount.objects.get(kind="customer_available", asset_id="BTC", account=funded)
    with pytest.raises(DatabaseError, match="differ from its ledger account"):
        with transaction.atomic(), connection.cursor() as cursor:
            entry_id = _insert_entry(cursor)
            cursor.execute(
                "INSERT INTO ledger_posting (entry_id, ledger_account_id, asset_id, account_id, amount, created_at)"
                " VALUES (%s, %s, 'USD', %s, 1, now())",
                [entry_id, btc_available.pk, funded.pk],
            )


def test_negative_balances_are_refused_by_check_constraints(funded):
    with pytest.raises(IntegrityError):
        _sql("UPDATE accounts_balance SET available = -1 WHERE account_id = %s AND asset_id = 'USD'", [funded.pk])
    with pytest.raises(IntegrityError):
        _sql(
            "UPDATE ledger_ledgeraccount SET balance = -1 WHERE kind = 'house_liquidity' AND asset_id = 'BTC'"
            " AND shard = 0"
        )


def test_service_still_posts_after_refusals(funded, operator_user):
    """Refused raw writes leave the ledger usable: a normal deposit still settles."""
    services.deposit_create(account=funded, asset="USD", amount="1", actor=operator_user)
    assert funded.balances.get(asset_id="USD").available == 101


def test_a_posting_added_to_an_existing_entry_must_keep_it_balanced(funded):
    """Entries of earlier transactions are re-checked when a posting is added to them."""
    entry_id = Posting.objects.filter(account=funded).first().entry_id
    external = LedgerAccount.objects.get(kind="external", asset_id="USD")
    with pytest.raises(DatabaseError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            _insert_posting(cursor, entry_id, external, "-1.00")
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

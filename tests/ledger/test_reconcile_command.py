"""`manage.py reconcile`: proves every balance cache equals the journal; a cache changed behind the ledger's back
is found, named, and fails the command."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from accounts import services
from accounts.models import Balance
from ledger.models import LedgerAccount, LedgerAccountKind
from tests.factories import UserFactory, make_account

pytestmark = pytest.mark.django_db


def _reconcile(*args: str) -> tuple[int, str]:
    """Run the command; (exit code, stdout)."""
    out = StringIO()
    try:
        call_command("reconcile", *args, stdout=out, stderr=StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def busy_books(alice: Any, bob: Any, operator_user: Any) -> dict[str, Any]:
    """Three accounts after a day of deposits, withdrawals, adjustments and house funding."""
    carol = UserFactory(username="carol")
    alice_main = make_account(owner=alice, label="alice-main", funds={"USD": "10000", "BTC": "1.5"})
    alice_spare = make_account(owner=alice, label="alice-spare")
    bob_main = make_account(owner=bob, label="bob-main", funds={"ETH": "20", "USDT": "5000"})
    carol_main = make_account(owner=carol, label="carol-main", funds={"USD": "250.75"})
    services.house_fund(asset="BTC", amount="100", actor=operator_user)
    services.house_fund(asset="USD", amount="1000000.01", actor=operator_user)  # odd cents go to shard 0
    services.withdrawal_create(account=alice_main, asset="USD", amount="2500.50", actor=operator_user, reason="payout")
    services.withdrawal_create(account=bob_main, asset="ETH", amount="0.12345678", actor=operator_user)
    services.adjustment_create(account=bob_main, asset="USDT", amount="-0.000001", actor=operator_user, reason="dust")
    services.adjustment_create(account=carol_main, asset="USD", amount="4.25", actor=operator_user, reason="fee refund")
    services.deposit_create(account=alice_spare, asset="ETH", amount="3", actor=operator_user)
    services.account_suspend(account=carol_main, actor=operator_user)
    services.deposit_create(account=carol_main, asset="USD", amount="1", actor=operator_user)
    return {"alice_main": alice_main, "bob_main": bob_main, "carol_main": carol_main}


def test_reconcile_passes_after_a_busy_day(busy_books):
    code, output = _reconcile()

    assert code == 0
    assert output.splitlines()[-1] == "reconciliation OK"
    assert "DISCREPANCY" not in output
    assert output.startswith("checked: ")


def _usd_totals_ok(output: str) -> bool:
    line = next(line for line in output.splitlines() if line.strip().startswith("USD:"))
    parts = dict(part.split("=") for part in line.split(":", 1)[1].split())
    return (
        Decimal(parts["customers"]) == Decimal("7755.50")
        and Decimal(parts["house"]) == Decimal("1000000.01")
        and Decimal(parts["external"]) == Decimal("-1007755.51")
        and Decimal(parts["sum"]) == 0
    )


def test_reconcile_reports_the_usd_totals_by_group(busy_books):
    _code, output = _reconcile()

    assert _usd_totals_ok(output)


def test_json_report_parses_and_says_ok(busy_books):
    code, output = _reconcile("--json")

    assert code == 0
    report = json.loads(output)
    assert report["ok"] is True
    assert report["discrepancies"] == []
    assert report["checks"]["customer_balances"] == 4 * 4  # four accounts, four assets each
    assert report["checks"]["entries"] > 0
    assert set(report["totals"]) == {"BTC", "ETH", "USD", "USDT"}
    for asset, groups in report["totals"].items():
        assert Decimal(groups["sum"]) == 0, asset


@pytest.mark.corrupts_ledger
def test_a_customer_balance_changed_behind_the_ledgers_back_fails_and_is_named(busy_books):
    account = busy_books["bob_main"]
    Balance.objects.filter(account=account, asset_id="ETH").update(available=Decimal("1000"))

    code, output = _reconcile()

    assert code == 1
    assert output.splitlines()[-1] == "reconciliation FAILED: 1 discrepancies"
    (line,) = [line for line in output.splitlines() if line.startswith("DISCREPANCY")]
    assert "check=customer_balance_mismatch" in line
    assert f"account_id={account.account_id}" in line
    assert "asset=ETH" in line
    assert "cached_available=1000" in line


@pytest.mark.corrupts_ledger
def test_a_locked_balance_changed_behind_the_ledgers_back_is_found_too(busy_books):
    account = busy_books["alice_main"]
    Balance.objects.filter(account=account, asset_id="BTC").update(locked=Decimal("0.5"))

    code, output = _reconcile("--json")

    assert code == 1
    # The cache no longer equals the ledger; and no resting order holds what the row says is locked.
    problems = {d["check"]: d for d in json.loads(output)["discrepancies"]}
    assert set(problems) == {"customer_balance_mismatch", "locked_balance_mismatch"}
    problem = problems["customer_balance_mismatch"]
    assert problem["account_id"] == str(account.account_id)
    assert problem["asset"] == "BTC"
    assert Decimal(problem["cached_locked"]) == Decimal("0.5")
    assert Decimal(problem["ledger_locked"]) == 0


@pytest.mark.corrupts_ledger
def test_a_house_book_changed_behind_the_ledgers_back_fails_as_book_balance_mismatch(busy_books):
    shard = LedgerAccount.objects.get(kind=LedgerAccountKind.HOUSE_LIQUIDITY, asset_id="BTC", shard=3)
    LedgerAccount.objects.filter(pk=shard.pk).update(balance=shard.balance + Decimal("7"))

    code, output = _reconcile("--json")

    assert code == 1
    report = json.loads(output)
    assert report["ok"] is False
    (problem,) = report["discrepancies"]
    assert problem["check"] == "book_balance_mismatch"
    assert problem["ledger_account"] == str(shard.pk)
    assert (problem["kind"], problem["asset"], problem["shard"]) == ("house_liquidity", "BTC", "3")
    assert Decimal(problem["cached"]) - Decimal(problem["ledger"]) == Decimal("7")


def test_reconcile_passes_on_an_empty_ledger():
    code, output = _reconcile()

    assert code == 0
    assert output.splitlines()[-1] == "reconciliation OK"

"""Seeding: users, accounts, opening deposits, house liquidity and API keys from the defaults or a file; running
it again funds nothing twice and shows no key twice."""

from __future__ import annotations

import os
import stat
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import Account, ApiKey, Balance
from ledger.models import EntryKind, JournalEntry, LedgerAccount, LedgerAccountKind, Posting
from ledger.reconciliation import reconcile
from tests.factories import make_account

pytestmark = pytest.mark.django_db

EXAMPLE = Path(settings.BASE_DIR) / "seed" / "accounts.example.yaml"


def _seed(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command("seed_accounts", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def _state() -> tuple[Any, ...]:
    """Everything seeding creates or moves."""
    return (
        sorted(get_user_model().objects.values_list("username", flat=True)),
        sorted(Account.objects.values_list("owner__username", "label")),
        sorted(Balance.objects.values_list("account__label", "asset_id", "available", "locked")),
        sorted(LedgerAccount.objects.values_list("id", "balance")),
        JournalEntry.objects.count(),
        Posting.objects.count(),
        ApiKey.objects.count(),
    )


def _balances(username: str, label: str) -> dict[str, Decimal]:
    rows = Balance.objects.filter(account__owner__username=username, account__label=label)
    return {b.asset_id: b.available for b in rows if b.available}


def _house(asset: str) -> Decimal:
    return sum(
        LedgerAccount.objects.filter(kind=LedgerAccountKind.HOUSE_LIQUIDITY, asset_id=asset).values_list(
            "balance", flat=True
        ),
        Decimal(0),
    )


def _printed_keys(output: str) -> list[list[str]]:
    prefix = "new API key (shown once): "
    return [line.removeprefix(prefix).split("\t") for line in output.splitlines() if line.startswith(prefix)]


def test_seed_with_defaults_creates_users_accounts_deposits_house_liquidity_and_keys():
    output = _seed()

    keys = _printed_keys(output)
    assert sorted((username, scopes) for username, scopes, _key in keys) == [
        ("demo-monitor", "monitor"),
        ("demo-trader", "read,trade"),
        ("operator", "operator"),
    ]
    assert _balances("demo-trader", "main") == {
        "BTC": Decimal("1"),
        "ETH": Decimal("10"),
        "USD": Decimal("100000"),
        "USDT": Decimal("50000"),
    }
    assert {asset: _house(asset) for asset in ("BTC", "ETH", "USD", "USDT")} == {
        "BTC": Decimal("100"),
        "ETH": Decimal("2000"),
        "USD": Decimal("10000000"),
        "USDT": Decimal("10000000"),
    }
    assert JournalEntry.objects.filter(kind=EntryKind.HOUSE_FUNDING).count() == 4
    assert JournalEntry.objects.filter(kind=EntryKind.DEPOSIT).count() == 4
    assert "seeded: 3 users; 3 new API keys" in output
    assert reconcile().ok

    # The printed keys work, with the scopes they were printed with.
    keys_by_user = {username: key for username, _scopes, key in keys}
    trader = APIClient()
    trader.credentials(HTTP_AUTHORIZATION=f"Api-Key {keys_by_user['demo-trader']}")
    accounts = trader.get("/api/v1/accounts").json()["accounts"]
    assert [a["label"] for a in accounts] == ["main"]
    monitor = APIClient()
    monitor.credentials(HTTP_AUTHORIZATION=f"Api-Key {keys_by_user['demo-monitor']}")
    account_id = accounts[0]["account_id"]
    assert (
        monitor.post(
            f"/api/v1/accounts/{account_id}/deposits", {"asset": "USD", "amount": "1"}, format="json"
        ).status_code
        == 403
    )


def test_seed_from_the_example_file():
    output = _seed(file=str(EXAMPLE))

    assert sorted(username for username, _scopes, _key in _printed_keys(output)) == [
        "alpha-trading",
        "beta-risk",
        "operator",
    ]
    assert sorted(Account.objects.values_list("owner__username", "label")) == [
        ("alpha-trading", "hedge"),
        ("alpha-trading", "main"),
        ("beta-risk", "monitor"),
    ]
    assert _balances("alpha-trading", "main") == {"USD": Decimal("100000"), "BTC": Decimal("2")}
    assert _balances("alpha-trading", "hedge") == {"USDT": Decimal("50000")}
    assert _balances("beta-risk", "monitor") == {}
    # Every account has a row for every asset, zeros included.
    assert Balance.objects.count() == 3 * 4
    assert reconcile().ok


@pytest.mark.parametrize("spec", ["defaults", "example file"])
def test_seeding_twice_funds_nothing_twice_and_prints_no_key_twice(spec):
    args = {} if spec == "defaults" else {"file": str(EXAMPLE)}
    first = _seed(**args)
    after_first = _state()

    second = _seed(**args)

    assert len(_printed_keys(first)) == 3
    assert _printed_keys(second) == []
    assert "0 new API keys" in second
    assert _state() == after_first
    assert reconcile().ok


def test_keys_file_is_written_with_mode_0600_and_keys_are_not_printed(tmp_path):
    keys_file = tmp_path / "keys.txt"

    output = _seed(keys_file=str(keys_file))

    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    lines = keys_file.read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == ["demo-monitor", "demo-trader", "operator"]
    for line in lines:
        assert line.split("\t")[2] not in output
    assert f"3 new API key(s) written to {keys_file} (mode 0600)" in output


def test_keys_file_that_already_exists_readable_by_others_is_made_private(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("old\n")
    keys_file.chmod(0o644)

    _seed(keys_file=str(keys_file))

    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    assert "old" not in keys_file.read_text()


def test_keys_file_is_left_alone_when_no_key_is_new(tmp_path):
    _seed()
    keys_file = tmp_path / "keys.txt"

    output = _seed(keys_file=str(keys_file))

    assert not keys_file.exists()
    assert "0 new API keys" in output


def test_seed_refuses_a_missing_file():
    with pytest.raises(CommandError, match="no such file"):
        _seed(file="/nonexistent/seed.yaml")
    assert not Account.objects.exists()


def test_seed_with_an_unknown_asset_fails_and_leaves_nothing_half_done(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "users:\n"
        "  - username: zed\n"
        "    scopes: [read]\n"
        "    accounts:\n"
        "      - label: main\n"
        "        deposits: {USD: '5', DOGE: '1'}\n"
    )

    with pytest.raises(CommandError, match="unknown_asset"):
        _seed(file=str(spec))

    assert not get_user_model().objects.filter(username="zed").exists()
    assert not JournalEntry.objects.exists()


def test_seed_demo_does_nothing_when_accounts_exist(alice_account, tmp_path):
    before = _state()
    keys_file = tmp_path / "demo-keys.txt"
    out = StringIO()

    call_command("seed_demo", keys_file=str(keys_file), stdout=out)

    assert "nothing to do" in out.getvalue()
    assert _state() == before
    assert not keys_file.exists()


def test_seed_demo_seeds_an_empty_database_once(tmp_path):
    keys_file = tmp_path / "demo-keys.txt"

    call_command("seed_demo", keys_file=str(keys_file), stdout=StringIO())
    after_first = _state()
    call_command("seed_demo", keys_file=str(keys_file), stdout=StringIO())

    assert Account.objects.filter(owner__username="demo-trader").count() == 1
    assert len(keys_file.read_text().splitlines()) == 3
    assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
    assert _state() == after_first
    assert reconcile().ok


def test_seed_keeps_existing_accounts_and_adds_what_is_missing():
    _seed()
    trader = Account.objects.get(owner__username="demo-trader", label="main")
    make_account(owner=trader.owner, label="other")

    _seed()

    assert sorted(Account.objects.filter(owner=trader.owner).values_list("label", flat=True)) == ["main", "other"]
    assert _balances("demo-trader", "main")["USD"] == Decimal("100000")

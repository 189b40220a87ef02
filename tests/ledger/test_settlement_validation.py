"""Settlement validation: reconciliation proves every fill settled exactly once and exactly as priced, and names
the order, trade and journal entry when a settlement is broken behind the services' back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal as D
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from ledger.models import EntryKind, LedgerAccount, LedgerAccountKind, Posting
from ledger.reconciliation import reconcile
from ledger.selectors import customer_ledger_accounts, external_account
from ledger.services import Leg, journal_post
from orders.models import Order, OrderStatus, Trade
from tests.factories import make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


def place(client, account, **fields) -> dict[str, Any]:
    body = {"account_id": str(account.account_id), "order_type": "market", **fields}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code in (201, 422), response.content
    return response.json() if response.status_code == 201 else response.json()["error"]["details"]["order"]


@pytest.fixture
def traded(alice_client, alice_account, alice, house) -> dict[str, Any]:
    """A buy, a sell, a cross-pair fill and a rejection, all settled by the services."""
    seller = make_account(owner=alice, label="seller", funds={"ETH": "2"})
    return {
        "buy": place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1"),
        "sell": place(alice_client, alice_account, symbol="BTC/USD", side="sell", quantity="0.05"),
        "cross": place(alice_client, seller, symbol="ETH-BTC", side="sell", quantity="1"),
        "rejected": place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="5"),
    }


@contextmanager
def append_only_lifted() -> Iterator[None]:
    """Let this transaction UPDATE journal lines (PostgreSQL refuses it otherwise). The balance checks deferred to
    commit are run first: PostgreSQL cannot alter a table with trigger events pending."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE ledger_posting DISABLE TRIGGER ledger_posting_append_only")
        try:
            yield
        finally:
            cursor.execute("ALTER TABLE ledger_posting ENABLE TRIGGER ledger_posting_append_only")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def problems(report, check: str) -> list[dict[str, str]]:
    return [d for d in report.discrepancies if d["check"] == check]


def test_settled_trading_reconciles_and_the_settlement_checks_ran(traded):
    assert traded["rejected"]["status"] == "rejected"

    report = reconcile()

    assert report.ok, report.discrepancies
    assert report.checks["trades"] == 3
    assert report.checks["trade_entries"] == 3
    assert report.checks["orders_settled"] == 3
    assert report.checks["rejected_orders"] == 1


@pytest.mark.corrupts_ledger
@pytest.mark.postgres
def test_an_edited_journal_line_fails_reconciliation_naming_the_entry_and_trade(traded, postgres):
    trade = Trade.objects.get(trade_id=traded["buy"]["fills"][0]["trade_id"])
    entry = trade.journal_entry
    fee_line = Posting.objects.get(entry=entry, ledger_account__kind=LedgerAccountKind.FEE_REVENUE)
    house_usd = Posting.objects.get(entry=entry, ledger_account__kind=LedgerAccountKind.HOUSE_LIQUIDITY, asset_id="USD")
    # Move a cent of the fee to house liquidity: the entry still balances, only the settlement is wrong. The
    # journal is append-only in the database; lift that for this test (the transaction rolls it back anyway).
    with append_only_lifted():
        Posting.objects.filter(pk=fee_line.pk).update(amount=fee_line.amount - D("0.01"))
        Posting.objects.filter(pk=house_usd.pk).update(amount=house_usd.amount + D("0.01"))

    report = reconcile()

    assert not report.ok
    mismatches = problems(report, "trade_postings_mismatch")
    assert {(p["party"], p["asset"], p["expected"], p["actual"]) for p in mismatches} == {
        ("fees", "USD", "6.51", "6.5"),
        ("house", "USD", "6503.25", "6503.26"),
    }
    for problem in mismatches:
        assert problem["trade_id"] == str(trade.trade_id)
        assert problem["entry_id"] == str(entry.entry_id)
        assert problem["order_id"] == traded["buy"]["order_id"]
    assert not problems(report, "trade_entry_unbalanced")  # it still balances; the cached books do not match it
    assert {p["check"] for p in report.discrepancies} == {"trade_postings_mismatch", "book_balance_mismatch"}


@pytest.mark.corrupts_ledger
@pytest.mark.postgres
def test_an_unbalancing_edit_is_named_too(traded, postgres):
    trade = Trade.objects.get(trade_id=traded["sell"]["fills"][0]["trade_id"])
    line = Posting.objects.get(entry=trade.journal_entry, account__isnull=False, asset_id="BTC")
    with append_only_lifted():
        Posting.objects.filter(pk=line.pk).update(amount=D("-0.04"))

    report = reconcile()

    [unbalanced] = problems(report, "trade_entry_unbalanced")
    assert (unbalanced["trade_id"], unbalanced["entry_id"], unbalanced["asset"], unbalanced["total"]) == (
        str(trade.trade_id),
        str(trade.journal_entry.entry_id),
        "BTC",
        "0.01",
    )
    [mismatch] = problems(report, "trade_postings_mismatch")
    assert (mismatch["party"], mismatch["asset"], mismatch["expected"]) == ("customer", "BTC", "-0.05")
    assert problems(report, "entry_unbalanced") and problems(report, "customer_balance_mismatch")


@pytest.mark.corrupts_ledger
def test_a_changed_trade_price_fails_reconciliation_naming_the_trade(traded):
    trade_id = traded["buy"]["fills"][0]["trade_id"]
    Trade.objects.filter(trade_id=trade_id).update(price=D("65000.00"))

    report = reconcile()

    assert not report.ok
    # The price is no longer the ask, quantity x price is no longer the quote amount, the entry's metadata
    # disagrees, and the order's average price no longer matches its trade. Nothing else is wrong.
    assert {(d["check"], d.get("field")) for d in report.discrepancies} == {
        ("trade_pricing_mismatch", "price"),
        ("trade_pricing_mismatch", "quote_amount"),
        ("trade_metadata_mismatch", "price"),
        ("order_fills_mismatch", "average_price"),
    }
    assert all(d["order_id"] == traded["buy"]["order_id"] for d in report.discrepancies)
    assert all(d.get("trade_id", trade_id) == trade_id for d in report.discrepancies)
    pricing = {p["field"]: p for p in problems(report, "trade_pricing_mismatch")}
    assert (pricing["price"]["expected"], pricing["price"]["actual"]) == ("65032.5", "65000")
    assert (pricing["quote_amount"]["expected"], pricing["quote_amount"]["actual"]) == ("6500", "6503.25")
    assert all(p["trade_id"] == trade_id for p in problems(report, "trade_pricing_mismatch"))


@pytest.mark.corrupts_ledger
def test_a_changed_trade_quantity_disagrees_with_its_postings_and_order(traded):
    trade_id = traded["cross"]["fills"][0]["trade_id"]
    Trade.objects.filter(trade_id=trade_id).update(quantity=D("2"))

    report = reconcile()

    postings = problems(report, "trade_postings_mismatch")
    assert postings and all(p["trade_id"] == trade_id for p in postings)
    [filled] = [p for p in problems(report, "order_fills_mismatch") if p["field"] == "filled_quantity"]
    assert filled["order_id"] == traded["cross"]["order_id"] and D(filled["trades"]) == 2


@pytest.mark.corrupts_ledger
def test_a_filled_order_whose_trade_is_gone_is_flagged_and_its_entry_orphaned(traded):
    trade = Trade.objects.get(trade_id=traded["sell"]["fills"][0]["trade_id"])
    entry_id = str(trade.journal_entry.entry_id)
    trade.delete()

    report = reconcile()

    [missing] = problems(report, "filled_order_without_trade")
    assert missing["order_id"] == traded["sell"]["order_id"]
    [orphan] = problems(report, "trade_entry_without_trade")
    assert orphan["entry_id"] == entry_id and orphan["trade_id"] == traded["sell"]["fills"][0]["trade_id"]


@pytest.mark.corrupts_ledger
def test_an_order_whose_fill_figures_were_changed_is_flagged(traded):
    Order.objects.filter(order_id=traded["buy"]["order_id"]).update(filled_quantity=D("0.2"), fee=D("0"))

    report = reconcile()

    fields = {
        p["field"] for p in problems(report, "order_fills_mismatch") if p["order_id"] == traded["buy"]["order_id"]
    }
    assert fields == {"filled_quantity", "fee"}


@pytest.mark.corrupts_ledger
def test_a_trade_entry_without_a_trade_is_flagged(traded, alice_account, operator_user):
    available, _ = customer_ledger_accounts(account_id=alice_account.pk, asset_code="USD")
    entry = journal_post(
        kind=EntryKind.TRADE,
        legs=[Leg(available, D("1")), Leg(external_account(asset_code="USD"), D("-1"))],
        actor=operator_user,
        memo="forged fill",
    )

    report = reconcile()

    [orphan] = problems(report, "trade_entry_without_trade")
    assert orphan["entry_id"] == str(entry.entry_id) and orphan["kind"] == "trade"


@pytest.mark.corrupts_ledger
def test_a_second_entry_for_a_trade_is_flagged_as_settling_it_twice(traded, alice_account, operator_user):
    trade_id = traded["buy"]["fills"][0]["trade_id"]
    available, _ = customer_ledger_accounts(account_id=alice_account.pk, asset_code="BTC")
    entry = journal_post(
        kind=EntryKind.TRADE,
        legs=[Leg(available, D("0.1")), Leg(external_account(asset_code="BTC"), D("-0.1"))],
        reference_type="trade",
        reference_id=trade_id,
        metadata={"order_id": traded["buy"]["order_id"], "trade_id": trade_id},
    )

    report = reconcile()

    [twice] = problems(report, "trade_settled_twice")
    assert (twice["trade_id"], twice["entry_id"]) == (trade_id, str(entry.entry_id))
    assert twice["settled_by"] == str(Trade.objects.get(trade_id=trade_id).journal_entry.entry_id)


@pytest.mark.corrupts_ledger
def test_a_rejected_order_given_a_trade_and_an_entry_is_flagged(traded, alice_account, operator_user):
    rejected = Order.objects.get(order_id=traded["rejected"]["order_id"])
    assert rejected.status == OrderStatus.REJECTED
    available, _ = customer_ledger_accounts(account_id=alice_account.pk, asset_code="BTC")
    house = LedgerAccount.objects.get(kind=LedgerAccountKind.HOUSE_LIQUIDITY, asset_id="BTC", shard=0)
    # A forged fill of the rejected order: 0.001 BTC out of the house into alice's account, a Trade row for it.
    entry = journal_post(
        kind=EntryKind.TRADE,
        legs=[Leg(available, D("0.001")), Leg(house, D("-0.001"))],
        reference_type="trade",
        reference_id="forged",
        metadata={"order_id": str(rejected.order_id)},
    )
    fake = Trade.objects.create(
        order=rejected,
        account=alice_account,
        market=rejected.market,
        side="buy",
        quantity=D("0.001"),
        price=D("65032.50"),
        quote_amount=D("65.04"),
        fee=D("0.07"),
        fee_asset_id="USD",
        reference_price=D("65000"),
        spread_bps=D("10"),
        fee_bps=D("10"),
        journal_entry=entry,
    )
    # And an entry of another kind that says it belongs to the rejected order.
    usd, _ = customer_ledger_accounts(account_id=alice_account.pk, asset_code="USD")
    tagged = journal_post(
        kind=EntryKind.ADJUSTMENT,
        legs=[Leg(usd, D("1")), Leg(external_account(asset_code="USD"), D("-1"))],
        reference_type="order",
        reference_id=str(rejected.order_id),
    )

    report = reconcile()

    [has_trade] = problems(report, "rejected_order_has_trade")
    assert (has_trade["order_id"], has_trade["trade_id"]) == (str(rejected.order_id), str(fake.trade_id))
    has_entry = {p["entry_id"] for p in problems(report, "rejected_order_has_entry")}
    assert has_entry == {str(entry.entry_id), str(tagged.entry_id)}
    assert all(p["order_id"] == str(rejected.order_id) for p in problems(report, "rejected_order_has_entry"))


@pytest.mark.corrupts_ledger
def test_the_reconcile_command_fails_and_names_the_trade(traded):
    trade_id = traded["sell"]["fills"][0]["trade_id"]
    Trade.objects.filter(trade_id=trade_id).update(fee=D("0"))
    out = StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile", stdout=out)

    assert exit_.value.code == 1
    lines = [line for line in out.getvalue().splitlines() if line.startswith("DISCREPANCY")]
    assert any(
        "check=trade_pricing_mismatch" in line and f"trade_id={trade_id}" in line and "field=fee" in line
        for line in lines
    ), lines
    assert out.getvalue().splitlines()[-1].startswith("reconciliation FAILED")


def test_settlement_checks_take_the_same_queries_for_more_orders(alice_client, alice, house):
    accounts = [make_account(owner=alice, label=f"a{i}", funds={"USD": "1000"}) for i in range(5)]
    place(alice_client, accounts[0], symbol="BTC-USD", side="buy", quantity="0.001")
    with CaptureQueriesContext(connection) as few:
        assert reconcile().ok
    for account in accounts[1:]:
        place(alice_client, account, symbol="BTC-USD", side="buy", quantity="0.001")
        place(alice_client, account, symbol="BTC-USD", side="buy", quantity="1")  # rejected
    with CaptureQueriesContext(connection) as many:
        assert reconcile().ok
    assert len(many.captured_queries) == len(few.captured_queries)

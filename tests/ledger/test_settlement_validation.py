"""Settlement validation: reconciliation proves every trade settled exactly once and exactly as priced, every
reservation is accounted for and the book is not crossed, and names the order, trade and journal entry when a
settlement is broken behind the services' back."""

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
from accounts.models import Balance
from ledger.models import EntryKind, LedgerAccount, LedgerAccountKind, Posting
from ledger.reconciliation import reconcile
from ledger.selectors import customer_ledger_accounts, external_account
from ledger.services import Leg, journal_post
from orders.models import Fill, Order, OrderStatus, Trade
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
def traded(alice_client, bob_client, alice_account, alice, bob, house) -> dict[str, Any]:
    """Trades with the house (a buy, a sell, a cross pair), a rejection, and a trade between two customers: bob
    rests a sell inside the house's spread, alice takes part of it, so bob's order keeps resting."""
    seller = make_account(owner=alice, label="seller", funds={"ETH": "2"})
    bobs = make_account(owner=bob, label="bob", funds={"BTC": "1"})
    orders = {
        "buy": place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1"),
        "sell": place(alice_client, alice_account, symbol="BTC/USD", side="sell", quantity="0.05"),
        "cross": place(alice_client, seller, symbol="ETH-BTC", side="sell", quantity="1"),
        "rejected": place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="5"),
        "resting": place(
            bob_client, bobs, symbol="BTC-USD", side="sell", order_type="limit", price="65010.00", quantity="0.04"
        ),
    }
    orders["take"] = place(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.01")
    return orders


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


def trade_of(order: dict[str, Any]) -> Trade:
    return Trade.objects.get(trade_id=order["fills"][0]["trade_id"])


def test_settled_trading_reconciles_and_the_settlement_checks_ran(traded):
    assert traded["rejected"]["status"] == "rejected"
    assert traded["take"]["fills"][0]["price"] == "65010.00"  # bob's resting sell, not the house

    report = reconcile()

    assert report.ok, report.discrepancies
    assert report.checks["trades"] == 4
    assert report.checks["fills"] == 5  # one per customer side: the customer-to-customer trade has two
    assert report.checks["trade_entries"] == 4
    assert report.checks["orders_settled"] == 5
    assert report.checks["resting_orders"] == 1
    assert report.checks["rejected_orders"] == 1


@pytest.mark.corrupts_ledger
@pytest.mark.postgres
def test_an_edited_journal_line_fails_reconciliation_naming_the_entry_and_trade(traded, postgres):
    trade = trade_of(traded["buy"])
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
        assert problem["taker_order_id"] == traded["buy"]["order_id"]
    assert not problems(report, "trade_entry_unbalanced")  # it still balances; the cached books do not match it
    assert {p["check"] for p in report.discrepancies} == {"trade_postings_mismatch", "book_balance_mismatch"}


@pytest.mark.corrupts_ledger
@pytest.mark.postgres
def test_an_unbalancing_edit_is_named_too(traded, postgres):
    trade = trade_of(traded["sell"])
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
    assert (mismatch["party"], mismatch["ledger_account"], mismatch["asset"], mismatch["expected"]) == (
        "taker",
        "customer_available",
        "BTC",
        "-0.05",
    )
    assert problems(report, "entry_unbalanced") and problems(report, "customer_balance_mismatch")


@pytest.mark.corrupts_ledger
def test_a_changed_trade_price_fails_reconciliation_naming_the_trade(traded):
    trade = trade_of(traded["buy"])
    Trade.objects.filter(pk=trade.pk).update(price=D("64000.00"))

    report = reconcile()

    # quantity x price is no longer the quote amount, the price is inside the house's spread, the taker's order
    # no longer averages its trades' price... and the fee, computed on the quote amount, still is right.
    checks = {(d["check"], d.get("field")) for d in report.discrepancies}
    assert ("trade_pricing_mismatch", "taker_quote") in checks
    assert ("trade_inside_house_spread", None) in checks
    assert all(d.get("trade_id", str(trade.trade_id)) == str(trade.trade_id) for d in report.discrepancies)
    [pricing] = [p for p in problems(report, "trade_pricing_mismatch") if p["field"] == "taker_quote"]
    assert (pricing["expected"], pricing["actual"]) == ("6400", "6503.25")


@pytest.mark.corrupts_ledger
def test_a_changed_trade_quantity_disagrees_with_its_postings_fills_and_order(traded):
    trade = trade_of(traded["cross"])
    Trade.objects.filter(pk=trade.pk).update(quantity=D("2"))

    report = reconcile()

    postings = problems(report, "trade_postings_mismatch")
    assert postings and all(p["trade_id"] == str(trade.trade_id) for p in postings)
    [fill] = problems(report, "fill_trade_mismatch")
    assert fill["order_id"] == traded["cross"]["order_id"]


@pytest.mark.corrupts_ledger
def test_an_order_whose_fill_figures_were_changed_is_flagged(traded):
    # (filled + remaining = quantity is a database rule on PostgreSQL: the quantities cannot be changed apart.)
    Order.objects.filter(order_id=traded["buy"]["order_id"]).update(filled_quote=D("6500.00"), fee=D("0"))

    report = reconcile()

    fields = {
        p["field"] for p in problems(report, "order_fills_mismatch") if p["order_id"] == traded["buy"]["order_id"]
    }
    assert fields == {"filled_quote", "fee"}


@pytest.mark.corrupts_ledger
def test_a_fill_gone_missing_is_flagged(traded):
    Fill.objects.filter(order__order_id=traded["take"]["order_id"]).delete()

    report = reconcile()

    [count] = problems(report, "trade_fill_count")
    assert (count["trade_id"], count["expected"], count["actual"]) == (traded["take"]["fills"][0]["trade_id"], "2", "1")
    [sums] = [p for p in problems(report, "order_fills_mismatch") if p["field"] == "filled_quantity"]
    assert sums["order_id"] == traded["take"]["order_id"]


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
        metadata={"trade_id": trade_id},
    )

    report = reconcile()

    [twice] = problems(report, "trade_settled_twice")
    assert (twice["trade_id"], twice["entry_id"]) == (trade_id, str(entry.entry_id))


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
    )
    fake = Trade.objects.create(
        market=rejected.market,
        price=D("65032.50"),
        quantity=D("0.001"),
        taker_side="buy",
        taker_order=rejected,
        taker_account=alice_account,
        taker_quote=D("65.04"),
        taker_fee=D("0.07"),
        maker_quote=D("65.04"),
        fee_asset_id="USD",
        reference_price=D("65000"),
        spread_bps=D("10"),
        journal_entry=entry,
    )
    # And a reservation that says it belongs to the rejected order.
    usd, usd_locked = customer_ledger_accounts(account_id=alice_account.pk, asset_code="USD")
    tagged = journal_post(
        kind=EntryKind.RESERVATION,
        legs=[Leg(usd, D("-1")), Leg(usd_locked, D("1"))],
        reference_type="order",
        reference_id=str(rejected.order_id),
    )

    report = reconcile()

    [has_trade] = problems(report, "rejected_order_has_trade")
    assert (has_trade["order_id"], has_trade["trade_id"]) == (str(rejected.order_id), str(fake.trade_id))
    [has_entry] = problems(report, "rejected_order_has_entry")
    assert (has_entry["order_id"], has_entry["entry_id"]) == (str(rejected.order_id), str(tagged.entry_id))
    # The forged lock is held by no resting order.
    [locked] = problems(report, "locked_balance_mismatch")
    assert (locked["asset"], locked["locked"], locked["resting_orders_hold"]) == ("USD", "1", "0")


@pytest.mark.corrupts_ledger
def test_a_reservation_changed_behind_the_ledgers_back_is_found(traded):
    resting = Order.objects.get(order_id=traded["resting"]["order_id"])
    assert (resting.status, resting.locked) == (OrderStatus.PARTIALLY_FILLED, D("0.03"))
    Order.objects.filter(pk=resting.pk).update(locked=D("0.02"))

    report = reconcile()

    [order] = problems(report, "order_reservation_mismatch")
    assert (order["order_id"], order["holds"], order["reserved_less_released_and_spent"]) == (
        str(resting.order_id),
        "0.02",
        "0.03",
    )
    [account] = problems(report, "locked_balance_mismatch")
    assert (account["asset"], account["locked"], account["resting_orders_hold"]) == ("BTC", "0.03", "0.02")


@pytest.mark.corrupts_ledger
def test_a_maker_charged_more_than_its_cumulative_rounding_is_found(traded):
    trade = trade_of(traded["take"])
    Trade.objects.filter(pk=trade.pk).update(maker_fee=trade.maker_fee + D("0.01"))
    Fill.objects.filter(trade=trade, liquidity="maker").update(fee=trade.maker_fee + D("0.01"))
    Order.objects.filter(order_id=traded["resting"]["order_id"]).update(fee=trade.maker_fee + D("0.01"))

    report = reconcile()

    [rounding] = problems(report, "maker_rounding_mismatch")
    assert rounding["order_id"] == traded["resting"]["order_id"] and rounding["trade_id"] == str(trade.trade_id)


@pytest.mark.corrupts_ledger
def test_a_crossed_book_is_found(traded, alice):
    # A resting buy above bob's resting sell, written behind matching's back (its reservation made properly).
    buyer = make_account(owner=alice, label="crossing", funds={"USD": "700"})
    order = Order.objects.get(order_id=traded["resting"]["order_id"])
    Order.objects.filter(pk=order.pk).update(side="buy", price=D("66000.00"))
    Balance.objects.filter(account=order.account, asset_id="BTC").update(locked=0, available=D("1") - D("0.04"))

    report = reconcile()

    assert problems(report, "book_crossed_house") and buyer


@pytest.mark.corrupts_ledger
def test_the_reconcile_command_fails_and_names_the_trade(traded):
    trade = trade_of(traded["sell"])
    Trade.objects.filter(pk=trade.pk).update(taker_fee=D("0"))
    out = StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile", stdout=out)

    assert exit_.value.code == 1
    lines = [line for line in out.getvalue().splitlines() if line.startswith("DISCREPANCY")]
    assert any(
        "check=trade_pricing_mismatch" in line and f"trade_id={trade.trade_id}" in line and "field=taker_fee" in line
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
        place(
            alice_client, account, symbol="BTC-USD", side="buy", order_type="limit", price="60000.00", quantity="0.001"
        )
    with CaptureQueriesContext(connection) as many:
        assert reconcile().ok
    assert len(many.captured_queries) == len(few.captured_queries)

"""The two implementations of the order path's database steps write the same rows.

``OrmBookStore`` (the reference, what SQLite runs) and ``PgBookStore`` (PostgreSQL functions) run the same trading
session from the same start; every row the session wrote is then compared, with database ids, UUIDs and clock times
replaced by what they stand for (the client_order_id of an order, the label of an account, ...).
"""

from __future__ import annotations

import random
from decimal import Decimal as D
from typing import Any

import pytest
from django.core.management import call_command

from accounts import services as account_services
from accounts.models import Account, Balance
from exchange.reference_data import ensure_all_reference_data
from ledger.models import JournalEntry, LedgerAccount, Posting
from markets.models import Candle, Market
from orders import services
from orders.models import Fill, Order, Trade
from tests.factories import UserFactory, make_account


def session() -> None:
    """A trading session touching every path: resting, partial and full fills between customers and with the house,
    several levels, quote-sized orders, FOK, IOC, post-only, self-trade prevention, cancels and a price move."""
    random.seed(20261201)
    ops = UserFactory(username="ops", is_staff=True)
    for asset, amount in {"BTC": "40", "ETH": "400", "USD": "4000000", "USDT": "4000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=ops)
    alice = make_account(owner=UserFactory(username="alice"), label="alice", funds={"BTC": "3", "USD": "200000"})
    bob = make_account(owner=UserFactory(username="bob"), label="bob", funds={"BTC": "1", "USD": "300000"})
    btc = Market.objects.get(symbol="BTC-USD")

    def place(account: Account, cid: str, **fields: Any) -> None:
        services.order_place(
            request=services.OrderRequest(account=account, market=btc, client_order_id=cid, **fields),
            actor=account.owner,
        )

    place(alice, "a1", side="sell", order_type="limit", price=D("65010.00"), quantity=D("0.5"))
    place(alice, "a2", side="sell", order_type="limit", price=D("65020.00"), quantity=D("0.3"))
    place(alice, "a3", side="buy", order_type="limit", price=D("64900.00"), quantity=D("0.25"))
    place(bob, "b1", side="buy", order_type="market", quantity=D("0.2"))
    place(bob, "b2", side="buy", order_type="limit", price=D("65100.00"), quantity=D("1.3"), time_in_force="ioc")
    place(bob, "b3", side="buy", order_type="market", quote_quantity=D("40000.00"))
    place(bob, "b4", side="sell", order_type="limit", price=D("64900.00"), quantity=D("0.1"))
    place(bob, "b5", side="buy", order_type="limit", price=D("64000.00"), quantity=D("0.15"), time_in_force="fok")
    place(bob, "b6", side="sell", order_type="limit", price=D("65500.00"), quantity=D("0.2"), post_only=True)
    place(bob, "b7", side="buy", order_type="limit", price=D("65500.00"), quantity=D("0.1"), post_only=True)
    place(alice, "a4", side="buy", order_type="limit", price=D("65500.00"), quantity=D("0.1"))  # meets her own? no
    place(
        bob,
        "b8",
        side="sell",
        order_type="limit",
        price=D("64800.00"),
        quantity=D("0.05"),
        self_trade_prevention="expire_maker",
    )
    place(alice, "a5", side="buy", order_type="limit", price=D("64000.00"), quantity=D("0.4"))
    services.order_cancel(order=Order.objects.get(client_order_id="a5"), actor=alice.owner)
    place(bob, "b9", side="buy", order_type="limit", price=D("60000.00"), quantity=D("0.2"))
    services.market_price_set(market=btc, price="60100.00", actor=ops)
    services.order_cancel_all(account=bob, actor=bob.owner)
    place(bob, "b10", side="buy", order_type="market", quantity=D("50"))  # more than the book: insufficient


def ordered(rows: Any) -> list[Any]:
    return sorted(rows, key=repr)


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    accounts = {a.pk: a.label for a in Account.objects.all()}
    markets = dict(Market.objects.values_list("pk", "symbol"))
    orders = {o.pk: o.client_order_id for o in Order.objects.all()}
    ledger = {
        la.pk: (la.kind, la.asset_id, accounts.get(la.account_id, f"shard{la.shard}"))
        for la in LedgerAccount.objects.all()
    }
    entries = {e.pk: (e.kind, e.reference_type) for e in JournalEntry.objects.order_by("pk")}
    order_fields = [
        f.attname
        for f in Order._meta.concrete_fields
        if f.attname not in ("id", "order_id", "created_at", "updated_at", "filled_at", "created_by_id")
    ]
    return {
        "orders": ordered(
            tuple(accounts[v] if k == "account_id" else markets[v] if k == "market_id" else v for k, v in row.items())
            for row in Order.objects.values(*order_fields)
        ),
        "history": ordered(
            (orders[h.id], h.history_type, h.status, h.remaining_quantity, h.locked, h.filled_quantity, h.fee)
            for h in Order.history.all()
        ),
        "trades": ordered(
            (
                orders.get(t.taker_order_id),
                orders.get(t.maker_order_id),
                t.price,
                t.quantity,
                t.taker_side,
                t.taker_quote,
                t.taker_fee,
                t.maker_quote,
                t.maker_fee,
                t.reference_price,
                entries[t.journal_entry_id],
            )
            for t in Trade.objects.all()
        ),
        "fills": ordered(
            (orders[f.order_id], f.side, f.liquidity, f.price, f.quantity, f.quote_amount, f.fee)
            for f in Fill.objects.all()
        ),
        "entries": [
            (kind, rtype, ordered((ledger[p.ledger_account_id], p.amount) for p in Posting.objects.filter(entry_id=pk)))
            for pk, (kind, rtype) in entries.items()
        ],
        "balances": ordered((accounts[b.account_id], b.asset_id, b.available, b.locked) for b in Balance.objects.all()),
        "books": ordered((ledger[la.pk], la.balance) for la in LedgerAccount.objects.filter(account__isnull=True)),
        "candles": ordered(
            (markets[c.market_id], c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades)
            for c in Candle.objects.all()
        ),
        "markets": ordered(Market.objects.values_list("symbol", "book_sequence", "reference_price")),
    }


def _fresh() -> None:
    call_command("flush", interactive=False, verbosity=0)
    ensure_all_reference_data()


@pytest.mark.postgres
def test_the_postgres_functions_write_what_the_orm_store_writes(transactional_db, settings, postgres):
    settings.ORDER_STORE = "orm"
    session()
    reference = snapshot()
    assert Trade.objects.count() >= 6 and Order.objects.filter(status="partially_filled").exists() is not None

    _fresh()
    settings.ORDER_STORE = "auto"  # PostgreSQL: the functions
    session()
    candidate = snapshot()

    for table in reference:
        assert candidate[table] == reference[table], table

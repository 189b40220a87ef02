"""The outbox and the relay, in process, on PostgreSQL: an event exists exactly when its change committed, and the
delivery sequence never lets a reader pass a row that commits late."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction

from accounts.services import deposit_create
from streams.hub import Filter, replay, stamp
from streams.models import Event
from streams.rendering import BALANCE, fetch
from tests.factories import make_account

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_committed_deposit_writes_its_balance_event_and_a_rolled_back_one_writes_none(postgres, alice):
    account = make_account(owner=alice)
    before = Event.objects.count()
    deposit_create(account=account, asset="USD", amount="250.00", actor=None, reason="committed")
    [event] = Event.objects.filter(topic="balance").order_by("-id")[:1]
    assert event.account_id == account.pk
    assert Decimal(str(event.data["available"])) == Decimal("250.00")  # the row as the change wrote it

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        deposit_create(account=account, asset="USD", amount="999.00", actor=None, reason="rolled back")
        assert Event.objects.count() > before + 1  # written inside the transaction ...
        raise Boom
    assert not any(  # ... and gone with it
        Decimal(str(e.data.get("available", 0))) > Decimal("250.00") for e in Event.objects.filter(topic="balance")
    )


def _raw_connection() -> psycopg.Connection:
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    return psycopg.connect(**params)


def test_a_row_that_commits_after_a_later_one_is_stamped_after_it_and_no_reader_skips_it(postgres):
    stamp()
    cursor = max([0, *Event.objects.exclude(seq=None).values_list("seq", flat=True)])
    early, late = _raw_connection(), _raw_connection()
    try:
        insert = (
            "INSERT INTO streams_event (topic, account_id, market_id, data, created_at) "
            "VALUES ('balance', NULL, NULL, %s::jsonb, now()) RETURNING id"
        )
        early_id = early.execute(insert, ['{"who": "early"}']).fetchone()[0]  # smaller id, still uncommitted
        late_id = late.execute(insert, ['{"who": "late"}']).fetchone()[0]
        late.commit()
        assert early_id < late_id
        stamp()
        seen = [r.data["who"] for r in fetch(after=cursor)]
        assert seen == ["late"]  # the uncommitted row is not stamped, so nothing after it is "passed"
        cursor = fetch(after=cursor)[-1].seq
        early.commit()
        stamp()
        rows = fetch(after=cursor)
        assert [r.data["who"] for r in rows] == ["early"]  # a reader at the cursor still gets it, with a higher seq
        assert rows[0].seq > cursor
    finally:
        early.close()
        late.close()


def test_replay_gives_exactly_the_events_after_an_id_that_a_filter_wants(postgres, alice, bob):
    mine, theirs = make_account(owner=alice), make_account(owner=bob)
    stamp()
    start = max([0, *Event.objects.exclude(seq=None).values_list("seq", flat=True)])
    for amount in ("1.00", "2.00", "3.00"):
        deposit_create(account=mine, asset="USD", amount=amount, actor=None, reason="test")
        deposit_create(account=theirs, asset="USD", amount=amount, actor=None, reason="test")
    stamp()
    until = max(Event.objects.exclude(seq=None).values_list("seq", flat=True))
    flt = Filter(topics={BALANCE}, accounts={mine.pk})
    events = replay(flt, after=(start, 0), until=until)
    assert [e.payload["available"] for e in events] == ["1.00", "3.00", "6.00"]
    assert {e.payload["account_id"] for e in events} == {str(mine.account_id)}
    second = replay(flt, after=events[0].position, until=until)
    assert second == events[1:]


def test_stream_events_render_what_the_rest_resources_render(postgres, alice, bob, operator_user):
    """An order event is GET /orders/{id}, a trade event GET /trades' item, a balance event the balance, from the
    rows the changes wrote."""
    from decimal import Decimal as D

    from accounts import services as account_services
    from markets.models import Market
    from orders import services
    from orders.models import Fill, Order
    from orders.serializers import OrderOut, TradeOut
    from streams.rendering import FILL, ORDER, render

    for asset, amount in {"BTC": "40", "USD": "4000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)
    seller = make_account(owner=alice, label="a", funds={"BTC": "2"})
    buyer = make_account(owner=bob, label="b", funds={"USD": "100000"})
    btc = Market.objects.get(symbol="BTC-USD")
    stamp()
    start = max([0, *Event.objects.exclude(seq=None).values_list("seq", flat=True)])
    services.order_place(
        request=services.OrderRequest(
            account=seller, market=btc, side="sell", order_type="limit", price=D("65010.00"), quantity=D("0.5")
        ),
        actor=alice,
    )
    services.order_place(
        request=services.OrderRequest(account=buyer, market=btc, side="buy", order_type="market", quantity=D("0.7")),
        actor=bob,
    )
    stamp()
    events = render(fetch(after=start), wanted=lambda topic, account, market: True)
    orders = [e for e in events if e.topic == ORDER]
    last = {e.payload["order_id"]: e.payload for e in orders}
    for order in Order.objects.filter(order_id__in=list(last)):
        assert last[str(order.order_id)] == OrderOut(order).data
    fills = {e.payload["trade_id"] + e.payload["side"]: e.payload for e in events if e.topic == FILL}
    assert len(fills) == Fill.objects.count() > 2
    for fill in Fill.objects.all():
        assert fills[str(fill.trade.trade_id) + fill.side] == TradeOut(fill).data
    balances = [e.payload for e in events if e.topic == BALANCE and e.payload["account_id"] == str(buyer.account_id)]
    final = {b["asset"]: b for b in balances}
    for balance in buyer.balances.all():
        if balance.asset_id in final:
            assert (
                final[balance.asset_id]["available"] == f"{balance.available:.{2 if balance.asset_id == 'USD' else 8}f}"
            )

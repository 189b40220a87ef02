"""Price-time priority as the database keeps the book: better prices first, and at one price the order that rested
first; also when the book is read page by page (more resting orders than one read of the store returns).

BTC-USD at 65,000.00: the house asks from 65,032.50; every resting sell here is cheaper, so takers meet them first.
"""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from markets.models import Market
from orders.models import Fill, Order
from orders.services import OrderRequest, order_place
from orders.store import PAGE
from tests.factories import UserFactory, make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(house):
    return Market.objects.get(symbol="BTC-USD")


def sell(market, account, price: str, quantity: str) -> Order:
    placed, _ = order_place(
        request=OrderRequest(
            account=account, market=market, side="sell", order_type="limit", price=D(price), quantity=D(quantity)
        ),
        actor=None,
    )
    assert placed.order.status == "open", placed.order.reject_reason
    return placed.order


def buy(market, account, quantity: str) -> list[Fill]:
    placed, _ = order_place(
        request=OrderRequest(account=account, market=market, side="buy", order_type="market", quantity=D(quantity)),
        actor=None,
    )
    return placed.fills


def test_at_one_price_the_order_that_rested_first_fills_first(market):
    alice = make_account(owner=UserFactory(username="alice"), funds={"BTC": "1"})
    carol = make_account(owner=UserFactory(username="carol"), funds={"BTC": "1"})
    bob = make_account(owner=UserFactory(username="bob"), funds={"USD": "100000"})
    carols = sell(market, carol, "65010.00", "0.2")
    alices_first = sell(market, alice, "65000.00", "0.2")  # a better price: first although younger
    alices_second = sell(market, alice, "65010.00", "0.2")

    fills = buy(market, bob, "0.5")

    assert [(f.trade.maker_order_id, f.price, f.quantity) for f in fills] == [
        (alices_first.pk, D("65000.00"), D("0.2")),
        (carols.pk, D("65010.00"), D("0.2")),
        (alices_second.pk, D("65010.00"), D("0.1")),
    ]


def test_a_taker_walking_more_than_a_page_of_resting_orders_meets_them_in_priority_order(market):
    sellers = [make_account(owner=UserFactory(username=f"seller{i}"), funds={"BTC": "1"}) for i in range(4)]
    bob = make_account(owner=UserFactory(username="bob"), funds={"USD": "1000000"})
    rng = random.Random(9)
    # Prices repeat, so most levels hold several orders of different ages.
    resting = [
        sell(market, rng.choice(sellers), f"{D('65000.00') + D('0.50') * rng.randint(0, 12):.2f}", "0.001")
        for _ in range(PAGE + 15)
    ]
    expected = sorted(resting, key=lambda o: (o.price, o.pk))

    fills = buy(market, bob, f"{D('0.001') * (PAGE + 10):f}")

    assert [f.trade.maker_order_id for f in fills] == [o.pk for o in expected[: PAGE + 10]]
    left = Order.objects.filter(pk__in=[o.pk for o in resting], status="open").order_by("price", "id")
    assert list(left.values_list("pk", flat=True)) == [o.pk for o in expected[PAGE + 10 :]]

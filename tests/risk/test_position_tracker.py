"""The stream hub's positions (risk.positions.PositionTracker) are kept up to date by applying only what happened
since its last read. Worked through step by step: after every trade, deposit, withdrawal and price change, the
tracker must say exactly what a walk over the whole history (``positions_for``, the REST API's answer) says."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts import services as account_services
from markets.models import Market
from markets.services import market_set_price
from risk import positions
from risk.position_apis import PositionOut
from risk.positions import PositionTracker, positions_for
from streams.rendering import position_out
from tests.conftest import _client
from tests.factories import make_account, make_key
from tests.risk.test_positions import (
    house,  # noqa: F401 - fixture
    order,
)

pytestmark = pytest.mark.django_db

FIELDS = ("quantity", "units", "cost_basis", "realized_pnl", "current_price", "entry_price", "unrealized_pnl")


def api(user):
    return _client(make_key(user=user, scopes=["trade"]))


def agrees(tracker: PositionTracker, *accounts) -> int:
    """Asserts the tracker and a full walk agree on every position of ``accounts``; returns how many are open."""
    tracked = tracker.positions([a.pk for a in accounts])
    walked = {(a.pk, p.asset): p for a in accounts for p in positions_for(accounts=[a])}
    for key, position in walked.items():
        assert {f: getattr(tracked[key], f) for f in FIELDS} == {f: getattr(position, f) for f in FIELDS}, key
        # The streams render a position by hand: what the REST serializer renders.
        assert position_out(tracked[key]) == PositionOut(position).data
    for key, position in tracked.items():
        if key not in walked:  # the walk lists no position that holds nothing and never realized anything
            assert (position.quantity, position.realized_pnl, position.units) == (0, 0, 0), key
    return len(walked)


@pytest.mark.parametrize("near", [positions.NEAR, 0], ids=["accounts-read-together", "each-account-alone"])
def test_the_tracker_agrees_with_a_walk_over_the_whole_history_after_every_change(
    alice,
    bob,
    house,  # noqa: F811
    operator_user,
    near,
    monkeypatch,
):
    # With NEAR 0 every account is read alone from its own mark, as one whose mark is far behind the others' is.
    monkeypatch.setattr(positions, "NEAR", near)
    alice_account = make_account(owner=alice, label="t1", funds={"USD": "50000", "ETH": "3"})
    bob_account = make_account(owner=bob, label="t2", funds={"USD": "20000"})
    alice_api, bob_api = api(alice), api(bob)
    tracker = PositionTracker()

    assert agrees(tracker, alice_account, bob_account) == 1  # alice's deposited ETH; bob holds cash only

    order(alice_api, alice_account, symbol="BTC-USD", side="buy", quantity="0.1")
    assert agrees(tracker, alice_account, bob_account) == 2

    market_set_price(market=Market.objects.get(symbol="BTC-USD"), price="70000.00", actor=operator_user)
    order(alice_api, alice_account, symbol="BTC-USD", side="buy", quantity="0.05")  # a second cost
    order(bob_api, bob_account, symbol="BTC-USD", side="buy", quantity="0.02")  # bob's first, read with alice's
    assert agrees(tracker, alice_account, bob_account) == 3

    order(alice_api, alice_account, symbol="BTC-USD", side="sell", quantity="0.12")  # realizes a gain
    order(alice_api, alice_account, symbol="ETH-BTC", side="sell", quantity="1")  # BTC in at BTC's USD price
    assert agrees(tracker, alice_account) == 2  # alice alone: bob's books wait for his next read

    account_services.deposit_create(account=bob_account, asset="BTC", amount="0.5", actor=operator_user)
    account_services.withdrawal_create(account=alice_account, asset="ETH", amount="0.5", actor=operator_user)
    market_set_price(market=Market.objects.get(symbol="BTC-USD"), price="61000.00", actor=operator_user)
    order(bob_api, bob_account, symbol="BTC-USD", side="sell", quantity="0.52")  # bob sells everything: flat
    assert agrees(tracker, alice_account, bob_account) == 3

    # A tracker that meets the accounts only now walks their history once and then goes on from there.
    late = PositionTracker()
    assert agrees(late, bob_account) == 1
    order(alice_api, alice_account, symbol="ETH-BTC", side="buy", quantity="0.25")
    assert agrees(late, alice_account, bob_account) == 3
    assert agrees(tracker, alice_account, bob_account) == 3


def test_a_read_applies_only_what_is_new(alice, house, django_assert_max_num_queries):  # noqa: F811
    account = make_account(owner=alice, label="t3", funds={"USD": "50000"})
    client = api(alice)
    tracker = PositionTracker()
    for _ in range(3):
        order(client, account, symbol="BTC-USD", side="buy", quantity="0.01")
    tracker.positions([account.pk])
    before = {a: (p.units, p.cost_basis) for (_pk, a), p in tracker.positions([account.pk]).items()}
    # Nothing new: the cost books stay as they were (and are not walked again).
    assert {a: (p.units, p.cost_basis) for (_pk, a), p in tracker.positions([account.pk]).items()} == before
    order(client, account, symbol="BTC-USD", side="buy", quantity="0.01")
    with django_assert_max_num_queries(8):
        positions = tracker.positions([account.pk])
    assert positions[(account.pk, "BTC")].units == before["BTC"][0] + D("0.01")

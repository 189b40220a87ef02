"""Positions, checked by value: weighted average cost, realized and unrealized PnL, deposits, cross pairs, and who
may see which position.

Prices: BTC-USD reference 65,000.00, ETH-USD 3,500.00, spread 10 bps (BTC-USD ask 65,032.50, bid 64,967.50),
taker fee 10 bps (the configured defaults).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D

import pytest

from accounts import services as account_services
from markets.models import Market
from markets.services import market_set_price
from risk.positions import positions_for
from tests.factories import make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


def order(client, account, **fields):
    body = {"account_id": str(account.account_id), "order_type": "market", **fields}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def set_price(symbol, price, actor=None):
    market_set_price(market=Market.objects.get(symbol=symbol), price=price, actor=actor)


def positions(client, **params):
    response = client.get("/api/v1/positions", params)
    assert response.status_code == 200, response.content
    return response.json()["positions"]


def cents(value: D) -> str:
    return f"{value.quantize(D('0.01'), rounding=ROUND_HALF_EVEN):f}"


def test_buy_then_partial_sell_average_cost_and_pnl(alice_client, alice_account, house, operator_user):
    order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1")  # 6,503.25 + fee 6.51
    order(alice_client, alice_account, symbol="BTC-USD", side="sell", quantity="0.05")
    # The sell: 0.05 x 64,967.50 = 3,248.375 -> 3,248.37 proceeds (rounded down); fee 3.24837 -> 3.25.

    [position] = positions(alice_client)

    account_id = str(alice_account.account_id)
    # Entry price is the buy's fill price; the sale took out half the cost basis (3,251.625), not a new average.
    # Realized: -6.51 (buy fee) + 3,248.37 - 3,251.625 - 3.25 (sell fee) = -13.015.
    # Unrealized: (65,000.00 - 65,032.50) x 0.05 = -1.625. Both rounded half-even to cents.
    assert position == {
        "position_id": f"{account_id}:BTC",
        "account_id": account_id,
        "asset": "BTC",
        "side": "long",
        "quantity": "0.05000000",
        "entry_price": "65032.50",
        "current_price": "65000.00",
        "unrealized_pnl": "-1.62",
        "realized_pnl": "-13.02",
        "quote_asset": "USD",
    }

    set_price("BTC-USD", "66000.00", actor=operator_user)
    [position] = positions(alice_client)
    # (66,000 - 65,032.50) x 0.05 = 48.375; the entry price and realized PnL do not move with the market.
    assert (position["current_price"], position["unrealized_pnl"]) == ("66000.00", "48.38")
    assert (position["entry_price"], position["realized_pnl"]) == ("65032.50", "-13.02")


def test_two_buys_at_different_prices_average_by_quantity(alice_client, alice, house, operator_user):
    account = make_account(owner=alice, label="avg", funds={"USD": "20000"})
    order(alice_client, account, symbol="BTC-USD", side="buy", quantity="0.1")  # at 65,032.50: 6,503.25, fee 6.51
    set_price("BTC-USD", "70000.00", actor=operator_user)
    order(alice_client, account, symbol="BTC-USD", side="buy", quantity="0.1")  # at 70,035.00: 7,003.50, fee 7.01
    [position] = positions(alice_client, account_id=str(account.account_id))
    # (6,503.25 + 7,003.50) / 0.2 = 67,533.75
    assert position["entry_price"] == "67533.75"
    assert position["quantity"] == "0.20000000"
    assert position["realized_pnl"] == "-13.52"  # the two buy fees
    assert position["unrealized_pnl"] == cents((D("70000") - D("67533.75")) * D("0.2"))  # 493.25

    order(alice_client, account, symbol="BTC-USD", side="sell", quantity="0.15")
    # At the bid 69,965.00: 10,494.75 proceeds, fee 10.49475 -> 10.50; cost of 0.15 at 67,533.75 = 10,130.0625.
    [position] = positions(alice_client, account_id=str(account.account_id))
    assert position["entry_price"] == "67533.75"  # a sale leaves the average cost unchanged
    assert position["quantity"] == "0.05000000"
    assert position["realized_pnl"] == cents(D("-13.52") + D("10494.75") - D("10130.0625") - D("10.50"))  # 340.67


def test_selling_everything_leaves_a_flat_position_with_its_realized_pnl(alice_client, alice_account, house):
    order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1")
    order(alice_client, alice_account, symbol="BTC-USD", side="sell", quantity="0.1")
    # Sold at 64,967.50: 6,496.75 proceeds, fee 6.50; cost 6,503.25; buy fee 6.51.

    [position] = positions(alice_client)

    assert position["side"] == "flat" and position["quantity"] == "0.00000000"
    assert position["realized_pnl"] == cents(D("6496.75") - D("6503.25") - D("6.50") - D("6.51"))  # -19.51
    assert position["unrealized_pnl"] == "0.00"
    assert position["entry_price"] is None


def test_cash_assets_have_no_position_and_an_untouched_account_has_none(alice_client, alice_account):
    assert positions(alice_client) == []  # 10,000 USD only


def test_deposits_enter_at_the_reference_price_then_and_withdrawals_realize_nothing(alice_client, alice, operator_user):
    account = make_account(owner=alice, label="hodl", funds={"BTC": "1"})  # BTC-USD at 65,000.00
    set_price("BTC-USD", "66000.00", actor=operator_user)
    account_services.deposit_create(account=account, asset="BTC", amount="1", actor=operator_user)  # at 66,000
    account_services.withdrawal_create(account=account, asset="BTC", amount="0.5", actor=operator_user)
    set_price("BTC-USD", "70000.00", actor=operator_user)

    [position] = positions(alice_client)

    # Average of the two deposits: 65,500.00; the withdrawal took 0.5 out at that average.
    assert position["entry_price"] == "65500.00"
    assert position["quantity"] == "1.50000000"
    assert position["realized_pnl"] == "0.00"
    assert position["unrealized_pnl"] == "6750.00"  # (70,000 - 65,500) x 1.5


def test_eth_btc_trade_values_both_legs_at_the_btc_price_when_it_filled(alice_client, alice, house, operator_user):
    account = make_account(owner=alice, label="cross", funds={"ETH": "2"})  # ETH enters at 3,500.00
    order(alice_client, account, symbol="ETH-BTC", side="sell", quantity="1")
    # The house's bid 0.05381 BTC (on the 0.00001 tick): proceeds 0.05381 BTC, fee 0.00005381 BTC, 0.05375619 BTC
    # received; BTC-USD 65,000.
    set_price("BTC-USD", "70000.00", actor=operator_user)  # after the fill: must not revalue it

    by_asset = {p["asset"]: p for p in positions(alice_client)}

    eth, btc = by_asset["ETH"], by_asset["BTC"]
    assert (eth["quantity"], eth["entry_price"], eth["current_price"]) == ("1.00000000", "3500.00", "3500.00")
    # 0.05381 x 65,000 = 3,497.65 proceeds - 3,500 cost - 0.00005381 x 65,000 = 3.49765 fee
    assert eth["realized_pnl"] == cents(D("3497.65") - D("3500") - D("3.49765"))  # -5.85
    # The BTC received entered at the BTC-USD price of the fill, 65,000.00, not today's 70,000.00.
    assert (btc["quantity"], btc["entry_price"], btc["realized_pnl"]) == ("0.05375619", "65000.00", "0.00")
    assert btc["unrealized_pnl"] == cents(D("5000") * D("0.05375619"))  # 268.78

    # Buying ETH with that BTC disposes of BTC at the BTC-USD price of that moment (70,000): a realized gain.
    order(alice_client, account, symbol="ETH-BTC", side="buy", quantity="0.5")
    btc = {p["asset"]: p for p in positions(alice_client)}["BTC"]
    ask = D("0.05388")  # 0.05384615 + half of 10 bps, rounded up to the tick
    spent = ask * D("0.5") + (ask * D("0.5") * D("0.001")).quantize(D("0.00000001"), rounding="ROUND_CEILING")
    assert btc["quantity"] == f"{D('0.05375619') - spent:.8f}"
    assert btc["realized_pnl"] == cents(spent * (D("70000") - D("65000")))


def test_position_detail_by_id_and_visibility(
    alice_client, alice_reader, bob_client, operator_client, alice_account, bob, house
):
    order(alice_client, alice_account, symbol="BTC-USD", side="buy", quantity="0.1")
    bob_account = make_account(owner=bob, label="bob", funds={"ETH": "3"})
    alice_position = f"{alice_account.account_id}:BTC"

    detail = alice_client.get(f"/api/v1/positions/{alice_position}")
    assert detail.status_code == 200 and detail.json() == positions(alice_client)[0]
    assert alice_reader.get(f"/api/v1/positions/{alice_position}").status_code == 200
    assert alice_client.get(f"/api/v1/positions/{alice_account.account_id}:btc").status_code == 200

    # Another customer's position is not found, exactly like one that does not exist.
    for client, path in (
        (bob_client, f"/api/v1/positions/{alice_position}"),
        (alice_client, f"/api/v1/positions/{bob_account.account_id}:ETH"),
        (alice_client, f"/api/v1/positions/{alice_account.account_id}:ETH"),  # holds no ETH
        (alice_client, f"/api/v1/positions/{alice_account.account_id}:USD"),  # cash
        (alice_client, "/api/v1/positions/nonsense"),
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert bob_client.get("/api/v1/positions", {"account_id": str(alice_account.account_id)}).status_code == 404
    assert [p["asset"] for p in positions(bob_client)] == ["ETH"]
    assert [p["asset"] for p in positions(alice_client)] == ["BTC"]

    # Operators see every account's positions, or one account's.
    everyone = {p["position_id"] for p in positions(operator_client)}
    assert everyone == {alice_position, f"{bob_account.account_id}:ETH"}
    only_alice = positions(operator_client, account_id=str(alice_account.account_id))
    assert [p["position_id"] for p in only_alice] == [alice_position]
    assert operator_client.get(f"/api/v1/positions/{alice_position}").status_code == 200

    bad = alice_client.get("/api/v1/positions", {"account_id": "not-a-uuid"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"


def test_positions_need_an_api_key(anonymous_client):
    assert anonymous_client.get("/api/v1/positions").status_code == 401


def test_positions_of_many_accounts_take_a_fixed_number_of_queries(
    alice_client, alice, house, django_assert_max_num_queries
):
    accounts = [make_account(owner=alice, label=f"a{i}", funds={"USD": "1000", "ETH": "1"}) for i in range(6)]
    for account in accounts:
        order(alice_client, account, symbol="BTC-USD", side="buy", quantity="0.001")
        order(alice_client, account, symbol="ETH-BTC", side="sell", quantity="0.5")

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        positions_for(accounts=accounts[:1])
    with django_assert_max_num_queries(len(one.captured_queries)):
        result = positions_for(accounts=accounts)
    assert len(result) == 12  # BTC and ETH for each account


def test_every_accounts_positions_are_paged_by_account(operator_client, alice, bob):
    for owner in (alice, bob):
        for label in ("a", "b"):
            make_account(owner=owner, label=label, funds={"BTC": "0.1"})

    first = operator_client.get("/api/v1/positions", {"limit": 3}).json()
    second = operator_client.get(first["next"]).json()

    assert len(first["positions"]) == 3 and first["previous"] is None
    assert len(second["positions"]) == 1 and second["next"] is None
    ids = [p["position_id"] for p in first["positions"] + second["positions"]]
    assert len(set(ids)) == 4

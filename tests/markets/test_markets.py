"""Markets: the five that every database starts with, their quotes and rules over REST, and the operator's price
and halt controls (API and ``set_price``), each kept in the market's history so every fill's price is traceable.

Prices: BTC-USD reference 65,000.00 USD and the configured default spread of 10 bps: half the spread is
32.50 USD, so the bid is 64,967.50 and the ask 65,032.50.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.management import CommandError, call_command

from accounts import services as account_services
from markets.models import Market, MarketStatus
from orders.models import Order, OrderStatus, Trade
from tests.helpers import money_snapshot

pytestmark = pytest.mark.django_db

SYMBOLS = ["BTC-USD", "ETH-USD", "BTC-USDT", "ETH-USDT", "ETH-BTC"]
RULE_FIELDS = {"quantity_step", "min_quantity", "min_notional", "max_notional", "spread_bps", "taker_fee_bps"}


@pytest.fixture
def house(operator_user):
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)


def btc_usd() -> Market:
    return Market.objects.get(symbol="BTC-USD")


def buy(client, account, **fields):
    body = {
        "account_id": str(account.account_id),
        "symbol": "BTC-USD",
        "side": "buy",
        "order_type": "market",
        "quantity": "0.01",
        **fields,
    }
    return client.post("/api/v1/orders", body, format="json")


# --- The markets and their rules ---------------------------------------------------------------------------
def test_the_five_markets_exist_with_their_assets_and_rules():
    markets = {m.symbol: m for m in Market.objects.all()}

    assert sorted(markets) == sorted(SYMBOLS)
    assert {s: (m.base_asset_id, m.quote_asset_id) for s, m in markets.items()} == {
        "BTC-USD": ("BTC", "USD"),
        "ETH-USD": ("ETH", "USD"),
        "BTC-USDT": ("BTC", "USDT"),
        "ETH-USDT": ("ETH", "USDT"),
        "ETH-BTC": ("ETH", "BTC"),
    }
    for market in markets.values():
        assert market.status == MarketStatus.TRADING
        assert market.reference_price > 0 and market.quantity_step > 0
        assert market.min_quantity >= market.quantity_step
        assert 0 < market.min_notional <= market.max_notional
    btc = markets["BTC-USD"]
    assert (btc.quantity_step, btc.min_quantity, btc.min_notional, btc.max_notional) == (
        D("0.00001"),
        D("0.00001"),
        D("1"),
        D("5000000"),
    )


def test_every_market_starts_with_a_first_history_version():
    # The fills made before any price change must be traceable too: each market's history starts at its creation.
    for market in Market.objects.all():
        first = market.history.earliest()
        assert (first.history_type, first.reference_price, first.status) == ("+", market.reference_price, "trading")
        # Dated when the market was created (its price took effect), so it precedes every fill.
        assert abs(first.history_date - market.price_updated_at) < timedelta(seconds=5)


def test_market_list_shows_every_market_with_price_quotes_and_rules(alice_reader, house):
    response = alice_reader.get("/api/v1/markets")

    assert response.status_code == 200
    markets = response.json()["markets"]
    assert [m["symbol"] for m in markets] == sorted(SYMBOLS)
    for market in markets:
        assert market["status"] == "trading"
        assert {"price", "bid", "ask", "base_asset", "quote_asset", "price_updated_at"} | RULE_FIELDS <= set(market)
        assert D(market["bid"]) < D(market["price"]) < D(market["ask"])


def test_btc_usd_quotes_half_the_spread_either_side_of_the_price(alice_reader, house):
    response = alice_reader.get("/api/v1/markets/BTC-USD")

    assert response.status_code == 200
    body = response.json()
    assert (body["symbol"], body["base_asset"], body["quote_asset"]) == ("BTC-USD", "BTC", "USD")
    # Prices are shown at the quote asset's precision (USD: cents).
    assert (body["price"], body["bid"], body["ask"]) == ("65000.00", "64967.50", "65032.50")
    assert body["spread_bps"] == "10" and body["taker_fee_bps"] == "10"
    assert (body["quantity_step"], body["min_quantity"], body["min_notional"], body["max_notional"]) == (
        "0.00001",
        "0.00001",
        "1",
        "5000000",
    )


def test_bid_rounds_down_and_ask_rounds_up_to_the_price_tick(alice_reader, house):
    # ETH-BTC at 0.05384615 BTC, price tick 0.00001: half of 10 bps is 0.000026923075.
    # 0.053819226925 rounds down to the bid 0.05381; 0.053873073075 rounds up to the ask 0.05388.
    body = alice_reader.get("/api/v1/markets/ETH-BTC").json()

    assert (body["price"], body["bid"], body["ask"], body["price_tick"]) == (
        "0.05384615",
        "0.05381000",
        "0.05388000",
        "0.00001",
    )


def test_a_market_spread_overrides_the_configured_default(alice_reader, house):
    Market.objects.filter(symbol="BTC-USD").update(spread_bps=D("25"))

    body = alice_reader.get("/api/v1/markets/BTC-USD").json()

    # Half of 25 bps of 65,000.00 is 81.25.
    assert (body["spread_bps"], body["bid"], body["ask"]) == ("25", "64918.75", "65081.25")


@pytest.mark.parametrize("spelling", ["BTC-USD", "BTC/USD", "btc-usd", "BTC_USD", "btc/usd"])
def test_symbol_may_be_spelled_with_a_slash_underscore_or_in_lower_case(alice_reader, spelling):
    response = alice_reader.get(f"/api/v1/markets/{spelling}")

    assert response.status_code == 200, response.content
    assert response.json()["symbol"] == "BTC-USD"


@pytest.mark.parametrize("symbol", ["DOGE-USD", "BTC-EUR", "USD-BTC"])
def test_unknown_symbol_is_400_and_lists_the_known_ones(alice_reader, symbol):
    response = alice_reader.get(f"/api/v1/markets/{symbol}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_symbol"
    assert sorted(error["details"]["known"]) == sorted(SYMBOLS)


def test_markets_need_an_api_key(anonymous_client):
    assert anonymous_client.get("/api/v1/markets").status_code == 401
    assert anonymous_client.get("/api/v1/markets/BTC-USD").status_code == 401


# --- Setting the price -------------------------------------------------------------------------------------
def test_operator_sets_the_price_and_history_records_who_and_every_price(
    operator_client, operator_user, alice_reader, house
):
    versions_before = btc_usd().history.count()

    first = operator_client.post("/api/v1/markets/BTC-USD/price", {"price": "70000"}, format="json")
    second = operator_client.post(
        "/api/v1/markets/BTC/USD/price", {"price": "68000.5", "reason": "news"}, format="json"
    )

    assert (first.status_code, second.status_code) == (200, 200), second.content
    # 70,000.00 +/- 35.00; the answer is the market as it now stands.
    assert (first.json()["price"], first.json()["bid"], first.json()["ask"]) == ("70000.00", "69965.00", "70035.00")
    assert second.json()["price"] == "68000.50"
    assert btc_usd().reference_price == D("68000.50")
    new_versions = list(btc_usd().history.order_by("history_date", "history_id")[versions_before:])
    assert [v.reference_price for v in new_versions] == [D("70000"), D("68000.50")]
    assert {v.history_user for v in new_versions} == {operator_user}
    assert new_versions[-1].history_change_reason == "news"
    assert alice_reader.get("/api/v1/markets/BTC-USD").json()["price"] == "68000.50"


def test_every_fill_is_priced_from_the_market_version_current_at_its_time(
    alice_client, alice_account, operator_client, house
):
    first = buy(alice_client, alice_account)
    operator_client.post("/api/v1/markets/BTC-USD/price", {"price": "60000"}, format="json")
    second = buy(alice_client, alice_account)

    assert (first.status_code, second.status_code) == (201, 201)
    # The first fill was at the ask from 65,000.00, the second at the ask from 60,000.00 (+30.00).
    assert (first.json()["average_price"], second.json()["average_price"]) == ("65032.50", "60030.00")
    for trade in Trade.objects.order_by("id"):
        version = (
            trade.market.history.filter(history_date__lte=trade.created_at)
            .order_by("-history_date", "-history_id")
            .first()
        )
        assert version is not None
        assert trade.reference_price == version.reference_price
        assert trade.spread_bps == D("10")
    assert [t.reference_price for t in Trade.objects.order_by("id")] == [D("65000"), D("60000")]


def test_setting_a_price_needs_the_operator_scope(alice_client, alice_reader, bob_client, anonymous_client):
    before = btc_usd().history.count()

    for client in (alice_client, alice_reader, bob_client):
        response = client.post("/api/v1/markets/BTC-USD/price", {"price": "1"}, format="json")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert anonymous_client.post("/api/v1/markets/BTC-USD/price", {"price": "1"}, format="json").status_code == 401
    assert btc_usd().reference_price == D("65000.00") and btc_usd().history.count() == before


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ("0", "invalid_amount"),
        (0, "invalid_amount"),
        ("-1", "invalid_amount"),
        ("abc", "validation_error"),
        ("", "validation_error"),
        (None, "validation_error"),
        (True, "validation_error"),
        ("NaN", "validation_error"),
        ("Infinity", "validation_error"),
        ("65000.001", "invalid_amount"),  # USD has 2 decimals
        ("1e40", "invalid_amount"),
        (D("1e40"), "invalid_amount"),
    ],
)
def test_bad_price_is_400_and_changes_nothing(operator_client, price, code):
    market = btc_usd()
    versions = market.history.count()

    response = operator_client.post("/api/v1/markets/BTC-USD/price", {"price": price}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert btc_usd().reference_price == D("65000.00")
    assert btc_usd().price_updated_at == market.price_updated_at
    assert btc_usd().history.count() == versions


def test_price_precision_follows_the_quote_asset(operator_client):
    # ETH-BTC is quoted in BTC (8 decimals), BTC-USDT in USDT (6): more is refused, that much is accepted.
    assert operator_client.post("/api/v1/markets/ETH-BTC/price", {"price": "0.054"}, format="json").status_code == 200
    assert (
        operator_client.post("/api/v1/markets/ETH-BTC/price", {"price": "0.050000001"}, format="json").status_code
        == 400
    )
    assert (
        operator_client.post("/api/v1/markets/BTC-USDT/price", {"price": "65000.123456"}, format="json").status_code
        == 200
    )
    assert (
        operator_client.post("/api/v1/markets/BTC-USDT/price", {"price": "65000.1234567"}, format="json").status_code
        == 400
    )
    assert Market.objects.get(symbol="ETH-BTC").reference_price == D("0.054")
    assert Market.objects.get(symbol="BTC-USDT").reference_price == D("65000.123456")


@pytest.mark.parametrize(("action", "body"), [("price", {"price": "66000"}), ("halt", {}), ("resume", {})])
def test_a_reason_longer_than_history_keeps_is_400_not_a_crash(operator_client, action, body):
    # History keeps the reason in a varchar(100); PostgreSQL would refuse a longer one with a 500.
    versions = btc_usd().history.count()

    too_long = operator_client.post(f"/api/v1/markets/BTC-USD/{action}", {**body, "reason": "r" * 101}, format="json")

    assert too_long.status_code == 400, too_long.content
    assert too_long.json()["error"]["code"] == "validation_error"
    assert btc_usd().history.count() == versions

    just_fits = operator_client.post(f"/api/v1/markets/BTC-USD/{action}", {**body, "reason": "r" * 100}, format="json")

    assert just_fits.status_code == 200, just_fits.content
    assert btc_usd().history.latest().history_change_reason == "r" * 100


def test_price_of_an_unknown_market_is_400_unknown_symbol(operator_client):
    response = operator_client.post("/api/v1/markets/DOGE-USD/price", {"price": "1"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_symbol"


# --- Halting and resuming ----------------------------------------------------------------------------------
def test_operator_halts_and_resumes_a_market(operator_client, operator_user):
    halted = operator_client.post("/api/v1/markets/btc-usd/halt", {"reason": "exchange outage"}, format="json")

    assert halted.status_code == 200, halted.content
    assert halted.json()["status"] == "halted"
    assert btc_usd().status == MarketStatus.HALTED
    latest = btc_usd().history.latest()
    assert (latest.status, latest.history_user, latest.history_change_reason) == (
        "halted",
        operator_user,
        "exchange outage",
    )

    resumed = operator_client.post("/api/v1/markets/BTC-USD/resume", {}, format="json")

    assert resumed.status_code == 200 and resumed.json()["status"] == "trading"
    assert btc_usd().status == MarketStatus.TRADING
    assert btc_usd().history.latest().history_user == operator_user


def test_only_operators_halt_or_resume(alice_client):
    for action in ("halt", "resume"):
        response = alice_client.post(f"/api/v1/markets/BTC-USD/{action}", {}, format="json")
        assert response.status_code == 403
    assert btc_usd().status == MarketStatus.TRADING


def test_order_on_a_halted_market_is_rejected_422_and_stored(alice_client, alice_account, operator_client, house):
    operator_client.post("/api/v1/markets/BTC-USD/halt", {}, format="json")
    before = money_snapshot()

    response = buy(alice_client, alice_account, client_order_id="during-halt")

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "market_halted"
    stored = Order.objects.get(order_id=error["details"]["order_id"])
    assert (stored.status, stored.reject_reason, stored.client_order_id) == (
        OrderStatus.REJECTED,
        "market_halted",
        "during-halt",
    )
    assert error["details"]["order"]["status"] == "rejected"
    assert money_snapshot() == before

    operator_client.post("/api/v1/markets/BTC-USD/resume", {}, format="json")

    assert buy(alice_client, alice_account).status_code == 201
    # Other markets were never halted.
    assert buy(alice_client, alice_account, symbol="ETH-USD", quantity="0.1").status_code == 201


# --- The set_price command ---------------------------------------------------------------------------------
def test_set_price_command_sets_the_price_and_records_it(capsys):
    call_command("set_price", "BTC-USD", "70000")

    assert btc_usd().reference_price == D("70000")
    latest = btc_usd().history.latest()
    assert latest.reference_price == D("70000") and latest.history_user is None
    assert latest.history_change_reason == "set_price command"
    assert "BTC-USD: price 70000 USD, trading" in capsys.readouterr().out


def test_set_price_command_accepts_a_reason_and_the_slash_form():
    call_command("set_price", "eth/usd", "3600.25", "--reason", "rebalance")

    market = Market.objects.get(symbol="ETH-USD")
    assert market.reference_price == D("3600.25")
    assert market.history.latest().history_change_reason == "rebalance"


def test_set_price_command_halts_and_resumes():
    call_command("set_price", "BTC-USD", "--halt")
    assert btc_usd().status == MarketStatus.HALTED

    call_command("set_price", "BTC-USD", "--resume")
    assert btc_usd().status == MarketStatus.TRADING
    assert btc_usd().reference_price == D("65000.00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["BTC-USD"], "give a price, --halt or --resume"),
        (["BTC-USD", "0"], "invalid_amount"),
        (["BTC-USD", "abc"], "invalid_amount"),
        (["BTC-USD", "65000.001"], "invalid_amount"),
        (["DOGE-USD", "1"], "unknown_symbol"),
        (["BTC-USD", "70000", "--reason", "r" * 101], "validation_error"),
    ],
)
def test_set_price_command_refuses_bad_input_and_changes_nothing(args, message):
    versions = btc_usd().history.count()

    with pytest.raises(CommandError, match=message):
        call_command("set_price", *args)

    assert btc_usd().reference_price == D("65000.00") and btc_usd().history.count() == versions

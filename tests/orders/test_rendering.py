"""The fast renderer of a placed order answers exactly what the documented serializer renders."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts import services as account_services
from markets.models import Market
from orders import services
from orders.rendering import order_json
from orders.serializers import OrderOut
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def test_order_json_is_order_out_for_every_kind_of_order(alice, bob, operator_user):
    for asset, amount in {"BTC": "40", "ETH": "400", "USD": "4000000", "USDT": "4000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)
    alice_account = make_account(owner=alice, label="a", funds={"BTC": "2", "ETH": "5", "USD": "100000"})
    bob_account = make_account(owner=bob, label="b", funds={"USD": "100000", "BTC": "1"})
    btc, eth_btc = Market.objects.get(symbol="BTC-USD"), Market.objects.get(symbol="ETH-BTC")
    requests = [
        (alice_account, btc, {"side": "sell", "order_type": "limit", "price": D("65010.00"), "quantity": D("0.5")}),
        (bob_account, btc, {"side": "buy", "order_type": "market", "quantity": D("0.7")}),  # two levels
        (bob_account, btc, {"side": "buy", "order_type": "market", "quote_quantity": D("1000.00")}),
        (bob_account, btc, {"side": "buy", "order_type": "limit", "price": D("60000.00"), "quantity": D("0.1")}),
        (
            bob_account,
            btc,
            {"side": "buy", "order_type": "limit", "price": D("60000.00"), "quantity": D("9"), "time_in_force": "fok"},
        ),
        (bob_account, btc, {"side": "buy", "order_type": "market", "quantity": D("500")}),  # rejected
        (alice_account, eth_btc, {"side": "sell", "order_type": "market", "quantity": D("1.5")}),
        (
            alice_account,
            btc,
            {
                "side": "buy",
                "order_type": "limit",
                "price": D("70000.00"),
                "quantity": D("0.01"),
                "client_order_id": "cross-1",
            },
        ),
    ]
    for account, market, fields in requests:
        placed, _ = services.order_place(
            request=services.OrderRequest(account=account, market=market, **fields), actor=account.owner
        )
        assert order_json(placed.order, placed.fills) == OrderOut(placed.order, context={"fills": placed.fills}).data


def test_the_streams_trade_and_fill_renderers_are_the_rest_serializers(alice, bob, operator_user):
    """streams/rendering.py renders a market's trades (GET /markets/{symbol}/trades) and an account's fills
    (GET /trades) by hand, once per event: field for field what the serializers render, also as read back from the
    outbox rows the changes wrote."""
    from markets.serializers import TapeTradeOut
    from orders.models import Fill, Trade
    from orders.serializers import TradeOut
    from streams.hub import stamp
    from streams.rendering import _rows, fetch, fill_json, market_of, trade_json

    for asset, amount in {"BTC": "40", "ETH": "400", "USD": "4000000", "USDT": "4000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)
    alice_account = make_account(owner=alice, label="a", funds={"BTC": "2", "ETH": "5"})
    bob_account = make_account(owner=bob, label="b", funds={"USD": "100000"})
    btc, eth_btc = Market.objects.get(symbol="BTC-USD"), Market.objects.get(symbol="ETH-BTC")
    for account, market, fields in [
        (alice_account, btc, {"side": "sell", "order_type": "limit", "price": D("65010.00"), "quantity": D("0.3")}),
        (bob_account, btc, {"side": "buy", "order_type": "market", "quantity": D("0.5")}),  # alice's, then the house
        (alice_account, eth_btc, {"side": "sell", "order_type": "market", "quantity": D("1.5")}),
    ]:
        services.order_place(
            request=services.OrderRequest(account=account, market=market, **fields), actor=account.owner
        )
    trades = list(Trade.objects.select_related("market").order_by("id"))
    assert len(trades) == 3
    for trade in trades:
        assert trade_json(trade) == {"symbol": trade.market.symbol, **TapeTradeOut(trade).data}
    stamp()
    raws = fetch(after=0, where="topic = 'trade'")
    assert [r.data["id"] for r in raws] == [t.pk for t in trades]
    for trade, from_outbox in zip(trades, _rows(Trade, raws), strict=True):
        assert trade_json(from_outbox) == trade_json(trade)
    fills = list(Fill.objects.select_related("order", "trade", "trade__journal_entry", "account", "market"))
    assert len(fills) >= 4
    for fill in fills:
        expected = TradeOut(fill).data
        fill.market = market_of(fill.market_id)
        assert fill_json(fill) == expected

"""The books and tickers of several markets at once (``market_views``, what the stream hub sends) are exactly what
``book_get`` and ``ticker_get`` (the REST endpoints) answer for each market, read in a fixed number of queries."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import pytest

from accounts import services as account_services
from markets import market_data
from markets.models import Market
from markets.serializers import TickerOut
from markets.services import market_set_price
from orders import services
from streams.rendering import ticker_out
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def place(account, symbol, **fields):
    market = Market.objects.get(symbol=symbol)
    services.order_place(request=services.OrderRequest(account=account, market=market, **fields), actor=account.owner)


def without_time(view):
    return dataclasses.replace(view, timestamp=None)


def test_market_views_answer_what_book_get_and_ticker_get_answer(
    alice, bob, operator_user, django_assert_max_num_queries
):
    for asset, amount in {"BTC": "40", "ETH": "400", "USD": "4000000", "USDT": "4000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator_user)
    maker = make_account(owner=alice, label="m", funds={"BTC": "3", "ETH": "20", "USD": "200000"})
    taker = make_account(owner=bob, label="t", funds={"USD": "200000", "BTC": "1"})
    # Customer levels inside the house's spread on BTC-USD (two orders on one level) and ETH-BTC, then trades.
    place(maker, "BTC-USD", side="buy", order_type="limit", price=D("64990.00"), quantity=D("0.2"))
    place(maker, "BTC-USD", side="buy", order_type="limit", price=D("64990.00"), quantity=D("0.1"))
    place(maker, "BTC-USD", side="sell", order_type="limit", price=D("65010.00"), quantity=D("0.4"))
    place(maker, "ETH-BTC", side="sell", order_type="limit", price=D("0.05390"), quantity=D("2"))
    place(taker, "BTC-USD", side="buy", order_type="market", quantity=D("0.5"))  # the maker's, then the house
    place(taker, "ETH-BTC", side="buy", order_type="market", quantity=D("1"))
    market_set_price(market=Market.objects.get(symbol="ETH-USD"), price="3600.00", actor=operator_user)
    markets = list(Market.objects.order_by("symbol"))
    assert len(markets) >= 5

    # A fixed number, plus per market its last trade and (the tests run with the chaos cache off) its injections.
    with django_assert_max_num_queries(8 + 2 * len(markets)):
        views = market_data.market_views(markets=markets, depth=20)

    for market in markets:
        book, ticker = views[market.pk]
        assert without_time(book) == without_time(market_data.book_get(market=market, depth=20)), market.symbol
        assert without_time(ticker) == without_time(market_data.ticker_get(market=market)), market.symbol
        # The streams render the ticker by hand: what the REST serializer renders.
        assert ticker_out(ticker, market) == TickerOut(ticker, context={"market": market}).data
    btc = views[Market.objects.get(symbol="BTC-USD").pk]
    assert (D("64990.00"), D("0.3")) in btc[0].bids  # the two orders of one level, summed
    assert btc[1].trades >= 2 and btc[1].last is not None
    # The last trade of a market, when the caller knows it (the stream hub, from the batch's trades), is not read.
    btc_market = Market.objects.get(symbol="BTC-USD")
    with django_assert_max_num_queries(8 + 2 * len(markets) - 1):
        known = market_data.market_views(markets=markets, last_trades={btc_market.pk: btc[1].last})
    assert without_time(known[btc_market.pk][1]) == without_time(btc[1])
    # A shallower book cuts both sides alike.
    shallow = market_data.market_views(markets=markets[:2], depth=3, tickers=False)
    for market in markets[:2]:
        book, ticker = shallow[market.pk]
        assert ticker is None
        assert without_time(book) == without_time(market_data.book_get(market=market, depth=3))

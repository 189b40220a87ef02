"""Candles of a market the price engine moves: an interval without trades carries the price path; intervals with
trades are the trades' own; a market only operators move keeps candles for traded intervals only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from django.utils import timezone

from markets import market_data
from markets.models import Market
from orders import services
from orders.services import OrderRequest, market_price_set, order_place
from simulation.models import MarketSimulation, ModelKind
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def price_at(market: Market, price: str, moment: datetime) -> None:
    """A reference-price change (as a tick makes it) dated ``moment``."""
    market_price_set(market=market, price=price, actor=None, reason="price engine: test")
    latest = market.history.order_by("-history_id").first()
    market.history.filter(history_id=latest.history_id).update(history_date=moment)


def test_intervals_without_trades_carry_the_price_path(alice, house, monkeypatch):
    market = Market.objects.get(symbol="BTC-USD")
    now = minute(timezone.now())
    start = now - timedelta(minutes=4)
    market.history.update(history_date=start - timedelta(hours=1))  # the reference data: 65,000.00 before
    price_at(market, "65100.00", start + timedelta(seconds=10))  # minute 0: 65,000 -> 65,100 -> 64,900
    price_at(market, "64900.00", start + timedelta(seconds=40))
    price_at(market, "65050.00", start + timedelta(minutes=2, seconds=5))  # minute 2
    account = make_account(owner=alice, label="c", funds={"USD": "100000"})
    with monkeypatch.context() as patch:  # a trade in minute 3, at the house's ask
        patch.setattr(services, "timezone", SimpleNamespace(now=lambda: start + timedelta(minutes=3, seconds=1)))
        order_place(
            request=OrderRequest(account=account, market=market, side="buy", order_type="market", quantity=D("0.01")),
            actor=alice,
        )

    assert [c.open_time for c in market_data.candles(market=market, interval="1m", limit=5)] == [
        start + timedelta(minutes=3)
    ]  # not simulated: only the traded minute
    MarketSimulation.objects.create(
        market=market, kind=ModelKind.GBM, seed="t", anchor_price=D("65000"), anchored_at=start
    )
    rows = market_data.candles(market=market, interval="1m", limit=5)
    view = [(c.open_time - start, c.open, c.high, c.low, c.close, c.trades) for c in rows]
    traded = rows[3]
    assert view == [
        (timedelta(minutes=0), D("65000"), D("65000"), D("64900"), D("64900"), 0),  # open 65,000, path close 64,900
        (timedelta(minutes=1), D("64900"), D("64900"), D("64900"), D("64900"), 0),  # nothing moved: carried
        (timedelta(minutes=2), D("64900"), D("65050"), D("64900"), D("65050"), 0),
        (timedelta(minutes=3), traded.open, traded.high, traded.low, traded.close, 1),  # the trade's own candle
        (timedelta(minutes=4), D("65050"), D("65050"), D("65050"), D("65050"), 0),
    ]
    assert traded.open > D("65050") and traded.volume == D("0.01")
    assert all(c.volume == 0 for c in rows if c.trades == 0)
    assert start.tzinfo == UTC or start.utcoffset() == timedelta(0)

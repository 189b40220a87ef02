"""The price engine against the database: each tick is a reference-price change through market_price_set (in the
market's history, the house's ladder moved), on the model's path; replays reproduce their file; cross markets follow
the USD ones; an operator's price re-anchors the path. A fake clock drives the rounds, so nothing waits."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from ledger.reconciliation import reconcile
from markets.models import Market
from orders.models import Order
from orders.services import OrderRequest, market_price_set, order_place
from simulation.engine import PriceEngine, ensure_default_models
from simulation.models import MarketSimulation, ModelKind
from simulation.paths import ModelParams, PricePath
from simulation.replay import EXAMPLES_DIR, load_replay
from tests.factories import make_account

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def history_prices(symbol: str) -> list[D]:
    market = Market.objects.get(symbol=symbol)
    return list(market.history.order_by("history_id").values_list("reference_price", flat=True))


def simulate(symbol: str, **fields) -> MarketSimulation:
    market = Market.objects.get(symbol=symbol)
    defaults = {"seed": f"test:{symbol}", "anchor_price": market.reference_price, "anchored_at": T0, **fields}
    sim, _ = MarketSimulation.objects.update_or_create(market=market, defaults=defaults)
    return sim


def only(*symbols: str) -> None:
    """Simulate only these markets (the others fixed)."""
    for market in Market.objects.exclude(symbol__in=symbols):
        simulate(market.symbol, kind=ModelKind.FIXED)


def run(engine: PriceEngine, clock: Clock, *, seconds: float, step: float) -> None:
    """Rounds every ``step`` seconds of fake time; every driver is due each round (tick <= step)."""
    end = clock.now + timedelta(seconds=seconds)
    while clock.now < end:
        clock.now += timedelta(seconds=step)
        for driver in engine.drivers:
            driver.next_due = 0.0
        engine.round()


def test_each_tick_sets_the_price_the_seeded_path_has_at_that_moment(house):
    only("BTC-USD")
    simulate("BTC-USD", kind=ModelKind.GBM, params={"volatility": "0.8"}, interval_ms=100)
    clock = Clock()
    engine = PriceEngine(clock=clock)
    engine.reload()
    before = len(history_prices("BTC-USD"))
    run(engine, clock, seconds=5, step=0.1)

    expected = PricePath(
        params=ModelParams(kind="gbm", volatility=0.8),
        start=D("65000.00"),
        tick=D("0.01"),
        interval_s=0.1,
        seed="test:BTC-USD",
    )
    path = [expected.next() for _ in range(50)]
    moved = history_prices("BTC-USD")[before:]
    assert moved == [p for i, p in enumerate(path) if i == 0 or p != path[i - 1]]  # an unchanged price sets nothing
    assert len(moved) > 40
    assert Market.objects.get(symbol="BTC-USD").reference_price == path[-1]
    reasons = Market.objects.get(symbol="BTC-USD").history.order_by("-history_id")[0].history_change_reason
    assert reasons == f"price engine: gbm step 50 by {engine.identity}"
    assert engine.identity == f"exchange-simulator@{socket.gethostname()}:{os.getpid()}"


def test_a_resting_order_the_path_crosses_is_filled_by_that_tick(alice, house):
    only("BTC-USD")
    simulate(
        "BTC-USD",
        kind=ModelKind.GBM,
        params={"volatility": "0.5"},
        interval_ms=1000,
        shocks=[{"at": "3", "percent": "-2"}],
    )
    account = make_account(owner=alice, label="dip", funds={"USD": "10000"})
    market = Market.objects.get(symbol="BTC-USD")
    placed, _ = order_place(
        request=OrderRequest(
            account=account, market=market, side="buy", order_type="limit", quantity=D("0.1"), price=D("64000.00")
        ),
        actor=alice,
    )
    assert placed.order.status == "open"
    clock = Clock()
    engine = PriceEngine(clock=clock)
    engine.reload()
    run(engine, clock, seconds=2, step=1)
    assert Order.objects.get(pk=placed.order.pk).status == "open"  # ~65,000: the house asks far above 64,000
    run(engine, clock, seconds=1, step=1)  # the -2 % shock at t = 3 s: about 63,700, asks below 64,000
    order = Order.objects.get(pk=placed.order.pk)
    assert order.status == "filled"
    fill = order.fills.get()
    # filled at its own price, by the tick that moved the reference price (the trade records that price)
    assert fill.price == D("64000.00")
    assert fill.trade.reference_price == Market.objects.get(pk=market.pk).reference_price
    assert reconcile().ok


def test_an_operator_price_re_anchors_the_path(operator_user, house):
    only("ETH-USD")
    simulate("ETH-USD", kind=ModelKind.GBM, params={"volatility": "0.5"}, interval_ms=1000)
    clock = Clock()
    engine = PriceEngine(clock=clock)
    engine.reload()
    run(engine, clock, seconds=3, step=1)
    market_price_set(market=Market.objects.get(symbol="ETH-USD"), price="3000.00", actor=operator_user)
    run(engine, clock, seconds=1, step=1)
    sim = MarketSimulation.objects.get(market__symbol="ETH-USD")
    assert (sim.anchor_price, sim.anchored_at) == (D("3000.00"), T0 + timedelta(seconds=4))
    price = Market.objects.get(symbol="ETH-USD").reference_price
    assert abs(price - D("3000")) < D("10")  # one second of a 50 % path from 3,000, not from 3,500


def test_the_shipped_replay_reproduces_its_prices_at_the_ticks(house):
    only("BTC-USD")
    simulate(
        "BTC-USD",
        kind=ModelKind.REPLAY,
        replay_file=str(EXAMPLES_DIR / "btc-usd-sample.csv"),
        replay_speed="max",
        replay_loop=False,
    )
    engine = PriceEngine(clock=Clock())
    engine.reload()
    before = len(history_prices("BTC-USD"))
    for _ in range(700):  # 600 rows, then it stays at the last one
        engine.round()
    rows = [D("65000.00")] + [row.price for row in load_replay(EXAMPLES_DIR / "btc-usd-sample.csv")]
    # every row in order (a row at the price already set changes nothing: the first one, 65,000.00)
    assert history_prices("BTC-USD")[before:] == [p for i, p in enumerate(rows) if i > 0 and p != rows[i - 1]]
    assert len(history_prices("BTC-USD")[before:]) > 590
    assert engine.drivers == []  # finished: not looping


def test_a_timed_replay_sets_each_row_when_its_time_comes(house):
    only("BTC-USD")
    simulate(
        "BTC-USD",
        kind=ModelKind.REPLAY,
        replay_file=str(EXAMPLES_DIR / "btc-usd-sample.csv"),
        replay_speed="10x",
        replay_loop=True,
    )
    rows = [row.price for row in load_replay(EXAMPLES_DIR / "btc-usd-sample.csv")]
    clock = Clock()
    engine = PriceEngine(clock=clock)
    engine.reload()
    for seconds, row in ((0.0, 0), (0.1, 1), (0.55, 5), (59.9, 599), (60.0 + 0.1 + 0.05, 1)):  # 10x; loop after 60.1 s
        clock.now = T0 + timedelta(seconds=seconds)
        engine.drivers[0].next_due = 0.0
        engine.round()
        assert Market.objects.get(symbol="BTC-USD").reference_price == rows[row], seconds


def test_cross_markets_follow_the_usd_markets_with_a_small_basis(house):
    MarketSimulation.objects.all().delete()
    assert ensure_default_models() == 5
    kinds = dict(MarketSimulation.objects.values_list("market__symbol", "kind"))
    assert kinds == {
        "BTC-USD": "gbm",
        "ETH-USD": "gbm",
        "BTC-USDT": "derived",
        "ETH-USDT": "derived",
        "ETH-BTC": "derived",
    }
    clock = Clock()
    clock.now = MarketSimulation.objects.get(market__symbol="BTC-USD").anchored_at
    engine = PriceEngine(clock=clock)
    engine.reload()
    run(engine, clock, seconds=30, step=1)
    price = dict(Market.objects.values_list("symbol", "reference_price"))
    assert price["BTC-USD"] != D("65000.00")
    assert abs(price["BTC-USDT"] / price["BTC-USD"] - 1) < D("0.002")  # within 20 bps
    assert abs(price["ETH-BTC"] / (price["ETH-USD"] / price["BTC-USD"]) - 1) < D("0.002")
    assert price["ETH-BTC"] == price["ETH-BTC"].quantize(D("0.00001"))

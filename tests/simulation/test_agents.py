"""Simulated participants: deterministic decisions under the seed, real orders through the ledger."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command

from accounts.models import Account
from ledger.reconciliation import reconcile
from orders.models import Order, Trade
from simulation.agents import NoiseTaker, PassiveMaker, draw_size
from simulation.engine import PriceEngine
from simulation.models import Scenario
from simulation.replay import EXAMPLES_DIR

START = datetime(2026, 12, 1, tzinfo=UTC)
NOISE = {
    "name": "noise",
    "kind": "noise_taker",
    "market": "BTC-USD",
    "account": "agent-noise",
    "rate": "2",
    "size": {"distribution": "lognormal", "min": "0.001", "max": "0.05"},
}
MAKER = {
    "name": "maker",
    "kind": "passive_maker",
    "market": "BTC-USD",
    "account": "agent-maker",
    "levels": 3,
    "spread_bps": "6",
    "step_bps": "3",
    "refresh_s": 5.0,
    "size": {"distribution": "uniform", "min": "0.01", "max": "0.1"},
}


def decisions(agent, count: int) -> list:
    out = []
    for _ in range(count):
        out.append((agent.next_s, agent.decide()))
        agent.next_s += agent.interval()
    return out


def test_an_agent_decides_the_same_under_the_same_seed():
    assert decisions(NoiseTaker(NOISE, "42", START), 200) == decisions(NoiseTaker(NOISE, "42", START), 200)
    assert decisions(NoiseTaker(NOISE, "42", START), 50) != decisions(NoiseTaker(NOISE, "43", START), 50)
    assert decisions(PassiveMaker(MAKER, "42", START), 20) == decisions(PassiveMaker(MAKER, "42", START), 20)
    # Poisson moments at 2 a second: 200 of them take about 100 s
    moments = [t for t, _ in decisions(NoiseTaker(NOISE, "42", START), 2000)]
    assert moments[-1] / 2000 == pytest.approx(0.5, rel=0.1)


def test_sizes_stay_in_range_on_the_step():
    import random

    rng = random.Random(1)
    for distribution in ("uniform", "lognormal"):
        sizes = [
            draw_size(rng, distribution=distribution, low=D("0.001"), high=D("0.05"), step=D("0.00001"))
            for _ in range(2000)
        ]
        assert min(sizes) >= D("0.001") and max(sizes) <= D("0.05")
        assert all(s == s.quantize(D("0.00001")) for s in sizes)


@pytest.mark.django_db
def test_agents_trade_through_the_ledger_and_the_books_reconcile(tmp_path, house):
    call_command(
        "load_scenario",
        str(EXAMPLES_DIR / "calm-market.yaml"),
        keys_file=str(tmp_path / "keys.txt"),
        stdout=open(os.devnull, "w"),
    )
    scenario = Scenario.objects.get(current=True)

    class Clock:
        now = scenario.loaded_at

        def __call__(self):
            return self.now

    clock = Clock()
    engine = PriceEngine(clock=clock)
    engine.reload()
    assert len(engine.agents.agents) == 2
    for tenth in range(1, 301):  # 30 s
        clock.now = scenario.loaded_at + timedelta(seconds=tenth / 10)
        engine.round()
    noise = Account.objects.get(label="agent-noise")
    maker = Account.objects.get(label="agent-maker")
    taken = Order.objects.filter(account=noise, order_type="market")
    assert 5 <= taken.count() <= 40  # about 15 at 0.5 a second
    assert taken.filter(status="filled").count() >= 5
    posted = Order.objects.filter(account=maker, order_type="limit")
    assert posted.count() >= 6 * 6  # 6 orders every 5 s
    assert posted.filter(status__in=["open", "partially_filled"]).count() == 6  # the latest round rests
    assert Trade.objects.filter(market__symbol="BTC-USD").count() >= 5
    assert reconcile().ok

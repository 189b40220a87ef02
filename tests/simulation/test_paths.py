"""Price paths are pure and reproducible, and their statistics are those of their parameters."""

from __future__ import annotations

import itertools
import math
import statistics
from decimal import Decimal as D

import pytest

from simulation.paths import (
    SECONDS_PER_YEAR,
    BasisPath,
    Bounds,
    ModelParams,
    PricePath,
    derived_price,
    on_tick,
    step_at,
)


def gbm(seed: int | str = 42, **params: float) -> PricePath:
    return PricePath(
        params=ModelParams(kind="gbm", **({"volatility": 0.8} | params)),
        start=D("65000.00"),
        tick=D("0.01"),
        interval_s=1.0,
        seed=seed,
    )


def log_returns(prices: list[D]) -> list[float]:
    return [math.log(b / a) for a, b in itertools.pairwise(prices)]


def test_the_same_seed_and_parameters_give_the_same_path_bit_for_bit():
    first = list(gbm(seed=7).prices(5000))
    second = list(gbm(seed=7).prices(5000))
    assert first == second
    assert [str(p) for p in first] == [str(p) for p in second]  # same digits, same exponent
    assert list(gbm(seed=8).prices(5000)) != first


def test_prices_are_decimals_on_the_tick():
    for price in gbm().prices(500):
        assert isinstance(price, D)
        assert price == price.quantize(D("0.01")) and price.as_tuple().exponent == -2


def test_realized_volatility_matches_the_parameter():
    # 20 000 one-second ticks at 80 % a year: the sample standard deviation of the log returns has a relative
    # standard error of 1/sqrt(2n) = 0.5 %; 3 % is six of those (and the tick's rounding adds far less).
    volatility = 0.8
    prices = [D("65000.00"), *gbm(seed=2026, volatility=volatility).prices(20_000)]
    realized = statistics.stdev(log_returns(prices)) * math.sqrt(SECONDS_PER_YEAR / 1.0)
    assert realized == pytest.approx(volatility, rel=0.03)
    # and a path at half the volatility is measured at half
    calm = [D("65000.00"), *gbm(seed=2026, volatility=volatility / 2).prices(20_000)]
    assert statistics.stdev(log_returns(calm)) * math.sqrt(SECONDS_PER_YEAR) == pytest.approx(0.4, rel=0.03)


def test_jumps_add_their_variance():
    # 10 jumps an hour of 1 % on a calm path: per one-second step the variance is sigma^2 dt + rate dt * size^2.
    path = gbm(seed=11, volatility=0.2, jump_rate=10.0, jump_size=0.01)
    returns = log_returns([D("65000.00"), *path.prices(50_000)])
    expected = 0.2**2 / SECONDS_PER_YEAR + (1 - math.exp(-10 / 3600)) * 0.01**2
    assert statistics.pvariance(returns) == pytest.approx(expected, rel=0.25)
    big = [r for r in returns if abs(r) > 0.003]  # far beyond the diffusion's 0.0036 %: jumps
    assert 100 < len(big) < 180  # about 139 jumps expected (50 000 s at 10/h), most of them this large


def test_ornstein_uhlenbeck_reverts_to_its_mean_with_the_stationary_spread():
    params = ModelParams(kind="ou", volatility=2.0, mean=D("3000"), half_life_s=60.0)
    path = PricePath(params=params, start=D("3500.00"), tick=D("0.01"), interval_s=1.0, seed=5)
    prices = list(path.prices(60_000))
    logs = [math.log(p) for p in prices[600:]]  # after ten half-lives the start is forgotten
    assert math.exp(statistics.fmean(logs)) == pytest.approx(3000, rel=0.01)
    k = math.log(2) / 60.0
    stationary = 2.0 / math.sqrt(SECONDS_PER_YEAR) / math.sqrt(2 * k)
    assert statistics.pstdev(logs) == pytest.approx(stationary, rel=0.1)
    # it gets halfway from 3500 to 3000 in about one half-life
    halfway = math.exp((math.log(3500) + math.log(3000)) / 2)
    again = PricePath(params=params, start=D("3500.00"), tick=D("0.01"), interval_s=1.0, seed=5)
    assert abs(float(again.at(60)) - halfway) < 40


def test_bounds_keep_prices_positive_and_inside():
    wild = PricePath(
        params=ModelParams(kind="gbm", volatility=400.0, drift=-2000.0),
        start=D("1.00"),
        tick=D("0.01"),
        interval_s=1.0,
        seed=1,
        bounds=Bounds(lower=D("0.5"), upper=D("1.2")),
    )
    prices = list(wild.prices(2000))
    assert min(prices) == D("0.50") and max(prices) <= D("1.20")
    assert on_tick(1e-9, tick=D("0.01")) == D("0.01")  # never zero
    assert on_tick(0.014999, tick=D("0.005")) == D("0.015")


def test_a_shock_is_part_of_the_path():
    calm, shocked = gbm(seed=3), gbm(seed=3)
    shocked.shocks = {30: -20.0}
    assert calm.at(29) == shocked.at(29)
    assert float(shocked.at(30)) == pytest.approx(float(calm.at(30)) * 0.8, rel=1e-6)


def test_looking_at_some_steps_does_not_change_the_others():
    every = list(gbm(seed=9).prices(100))
    sparse = gbm(seed=9)
    assert [sparse.at(10), sparse.at(55), sparse.at(100)] == [every[9], every[54], every[99]]


def test_a_time_driven_path_is_at_the_step_of_the_clock():
    assert step_at(elapsed_s=0.0, interval_s=0.1) == 0
    assert step_at(elapsed_s=0.3, interval_s=0.1) == 3  # not 2 for 0.30000000000000004 / 0.1
    assert step_at(elapsed_s=12.7, interval_s=1.0) == 12
    with pytest.raises(ValueError):
        PricePath(params=ModelParams(), start=D(1), tick=D("0.01"), interval_s=0.05, seed=1)


def test_derived_markets_follow_their_legs_with_a_small_basis():
    basis = BasisPath(seed="ETH-BTC", interval_s=1.0, volatility_bps=2.0)
    values = [basis.at(step) for step in range(1, 5001)]
    assert max(abs(v) for v in values) < 20 and statistics.pstdev(values) == pytest.approx(2.0, rel=0.3)
    assert BasisPath(seed="ETH-BTC", interval_s=1.0).at(77) == BasisPath(seed="ETH-BTC", interval_s=1.0).at(77)
    price = derived_price(numerator=D("3500.00"), denominator=D("65000.00"), basis_bps=1.5, tick=D("0.00001"))
    assert price == D("0.05385")  # 0.0538461... * 1.00015 = 0.0538542...


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "brownian"},
        {"volatility": -1.0},
        {"volatility": math.nan},
        {"half_life_s": 0.0},
        {"jump_rate": -2.0},
        {"mean": D("0")},
    ],
)
def test_invalid_parameters_are_refused(bad: dict):
    with pytest.raises(ValueError):
        ModelParams(**bad)

"""Price paths: pure, deterministic generators of a market's reference prices, one value per tick.

A path is a function of its parameters, its start price, its tick interval and its seed, nothing else: the same
inputs give the same prices bit for bit (``random.Random(seed)``, whose sequence Python keeps stable across
versions for a given seed, draws the noise). The state evolves in floats; what leaves a path is a ``Decimal`` on the
market's price tick, inside the bounds, so what is stored is exact.

Models (units: drift and volatility per year of 365 days, like quoted volatilities; times in seconds):

* ``gbm``, geometric Brownian motion: ``ln S`` moves by ``(drift - volatility**2 / 2) dt + volatility sqrt(dt) Z``;
* ``ou``, Ornstein-Uhlenbeck mean reversion of ``ln S`` towards ``ln mean`` with the given half-life:
  ``x += (1 - exp(-k dt)) (ln mean - x) + volatility sqrt((1 - exp(-2 k dt)) / (2 k)) Z``, ``k = ln 2 / half_life``
  (the exact discretization, so the stationary spread of ``ln S`` is ``volatility / sqrt(2 k)``);
* jumps on top of either: in each tick a jump happens with probability ``1 - exp(-rate dt)`` (``jump_rate`` per
  hour) and moves ``ln S`` by a normal draw of standard deviation ``jump_size`` (mean ``jump_mean``).

Scheduled shocks (a scenario's "price shock of x % at t = 30 s") are part of the path: at their step the state is
multiplied by ``1 + percent / 100``, so a shocked path is as reproducible as a calm one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

SECONDS_PER_YEAR = 365 * 24 * 3600.0
MIN_INTERVAL_S = 0.1
KINDS = ("gbm", "ou")


@dataclass(frozen=True)
class ModelParams:
    kind: str = "gbm"
    drift: float = 0.0
    volatility: float = 0.5
    # OU: the level prices revert to (None: the start price) and how fast (seconds for half the distance).
    mean: Decimal | None = None
    half_life_s: float = 300.0
    jump_rate: float = 0.0  # expected jumps per hour
    jump_size: float = 0.0  # standard deviation of a jump of ln S
    jump_mean: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model {self.kind!r}; one of {KINDS}")
        for name in ("volatility", "jump_rate", "jump_size"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        if not math.isfinite(self.drift):
            raise ValueError("drift must be finite")
        if not math.isfinite(self.half_life_s) or self.half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")
        if self.mean is not None and not (self.mean.is_finite() and self.mean > 0):
            raise ValueError("mean must be a positive price")


@dataclass(frozen=True)
class Bounds:
    """Prices stay within [lower, upper]; ``lower`` is at least one tick, so a price is never zero or negative."""

    lower: Decimal | None = None
    upper: Decimal | None = None


def on_tick(value: float | Decimal, *, tick: Decimal, bounds: Bounds = Bounds()) -> Decimal:
    """The nearest price on ``tick`` (half to even), clamped to the bounds and to at least one tick."""
    exact = Decimal(value)  # a float converts exactly; the rounding below is Decimal's, so it is reproducible
    price = (exact / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick
    lower = max(tick, _ceil_tick(bounds.lower, tick)) if bounds.lower is not None else tick
    if price < lower:
        price = lower
    if bounds.upper is not None:
        upper = max(lower, (bounds.upper / tick).to_integral_value(rounding="ROUND_FLOOR") * tick)
        if price > upper:
            price = upper
    return price.quantize(tick)


def _ceil_tick(value: Decimal, tick: Decimal) -> Decimal:
    return (value / tick).to_integral_value(rounding="ROUND_CEILING") * tick


@dataclass
class PricePath:
    """A market's path: ``next()`` gives the price of the next tick (step 1, 2, ...); ``at(step)`` moves to a
    step (forward only, drawing the noise of the steps in between, so the prices at each step do not depend on
    which steps were looked at)."""

    params: ModelParams
    start: Decimal
    tick: Decimal
    interval_s: float
    seed: int | str
    bounds: Bounds = field(default_factory=Bounds)
    shocks: dict[int, float] = field(default_factory=dict)  # step -> percent

    def __post_init__(self) -> None:
        if self.interval_s < MIN_INTERVAL_S - 1e-9:
            raise ValueError(f"the tick interval is at least {MIN_INTERVAL_S} s")
        if not (self.start.is_finite() and self.start > 0):
            raise ValueError("the start price must be positive")
        self._rng = random.Random(self.seed)
        self._x = math.log(float(self.start))
        self._lower = math.log(float(max(self.tick, self.bounds.lower or self.tick)))
        self._upper = math.log(float(self.bounds.upper)) if self.bounds.upper is not None else math.inf
        self.step = 0
        p, dt = self.params, self.interval_s
        self._dt_years = dt / SECONDS_PER_YEAR
        self._jump_p = 1.0 - math.exp(-p.jump_rate * dt / 3600.0)
        if p.kind == "ou":
            k = math.log(2.0) / p.half_life_s  # per second
            self._pull = 1.0 - math.exp(-k * dt)
            sigma_s = p.volatility / math.sqrt(SECONDS_PER_YEAR)  # per sqrt(second)
            self._ou_sd = sigma_s * math.sqrt((1.0 - math.exp(-2.0 * k * dt)) / (2.0 * k))
            self._target = math.log(float(p.mean if p.mean is not None else self.start))
        else:
            self._gbm_mu = (p.drift - p.volatility**2 / 2.0) * self._dt_years
            self._gbm_sd = p.volatility * math.sqrt(self._dt_years)

    def _advance(self) -> None:
        p, rng = self.params, self._rng
        z = rng.gauss(0.0, 1.0)
        if p.kind == "ou":
            self._x += self._pull * (self._target - self._x) + self._ou_sd * z
        else:
            self._x += self._gbm_mu + self._gbm_sd * z
        if self._jump_p > 0.0:
            u, j = rng.random(), rng.gauss(p.jump_mean, p.jump_size)  # both drawn every step: one stream
            if u < self._jump_p:
                self._x += j
        self.step += 1
        shock = self.shocks.get(self.step)
        if shock is not None:
            self._x += math.log(max(1e-9, 1.0 + shock / 100.0))
        self._x = min(max(self._x, self._lower), self._upper)

    def price(self) -> Decimal:
        """The price at the current step."""
        return on_tick(math.exp(self._x), tick=self.tick, bounds=self.bounds)

    def next(self) -> Decimal:
        self._advance()
        return self.price()

    def at(self, step: int) -> Decimal:
        while self.step < step:
            self._advance()
        return self.price()

    def prices(self, count: int) -> Iterator[Decimal]:
        for _ in range(count):
            yield self.next()


@dataclass
class BasisPath:
    """A derived market's own basis, in basis points: an OU process around ``mean_bps`` (one-minute half-life),
    kept within +-``max_bps``. Deterministic under its seed, one value per step like a price path."""

    seed: int | str
    interval_s: float
    mean_bps: float = 0.0
    volatility_bps: float = 2.0  # stationary standard deviation
    max_bps: float = 50.0
    half_life_s: float = 60.0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        k = math.log(2.0) / self.half_life_s
        self._pull = 1.0 - math.exp(-k * self.interval_s)
        self._sd = self.volatility_bps * math.sqrt(1.0 - math.exp(-2.0 * k * self.interval_s))
        self._b = self.mean_bps
        self.step = 0

    def at(self, step: int) -> float:
        while self.step < step:
            self._b += self._pull * (self.mean_bps - self._b) + self._sd * self._rng.gauss(0.0, 1.0)
            self._b = min(max(self._b, -self.max_bps), self.max_bps)
            self.step += 1
        return self._b


def derived_price(
    *, numerator: Decimal, denominator: Decimal, basis_bps: float, tick: Decimal, bounds: Bounds = Bounds()
) -> Decimal:
    """A cross market's price from the USD prices of its two assets, with its basis: ``numerator / denominator *
    (1 + basis / 10000)`` on the market's tick (ETH-BTC = ETH-USD / BTC-USD; BTC-USDT = BTC-USD / 1 for the USD
    stablecoin)."""
    factor = Decimal(1) + Decimal(repr(round(basis_bps, 6))) / Decimal(10000)
    return on_tick(numerator / denominator * factor, tick=tick, bounds=bounds)


def step_at(*, elapsed_s: float, interval_s: float) -> int:
    """The step a time-driven path is at ``elapsed_s`` seconds after its start: the price at a moment does not
    depend on which instance computed it, so a new leader continues the same path."""
    if elapsed_s <= 0:
        return 0
    return math.floor(elapsed_s / interval_s + 1e-9)

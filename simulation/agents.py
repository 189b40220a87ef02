"""Simulated participants: real accounts that trade on a schedule, so the tape, candles and book depth look alive.

Each agent's account is one of the scenario's accounts; its orders go through ``orders.services`` like anyone's, so
its money moves through the ledger (reservations, fills, fees). Each draws from its own ``random.Random`` seeded by
the scenario's seed and the agent's name, and its actions are scheduled in time from the scenario's start, so the
same scenario gives the same sequence of decisions (sides, sizes, moments, price offsets).

* ``noise_taker``: market orders at Poisson moments (``rate`` per second), buy or sell with even odds (the side it
  can afford when it cannot afford both), sizes uniform or log-normal between ``size.min`` and ``size.max``.
* ``passive_maker``: every ``refresh`` seconds, cancels its resting orders on the market and posts ``levels``
  post-only bids and asks around the reference price, ``spread_bps / 2 + i * step_bps`` away.

An agent does not replay what it missed while no engine led: moments more than ``MAX_LATE_S`` late are skipped
(their draws are still made, so the later decisions stay the same).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

import structlog

from accounts.models import Account, AccountStatus, Balance
from markets.models import Market, MarketStatus

logger = structlog.get_logger("exchange.simulation")

MAX_LATE_S = 5.0


def draw_size(rng: random.Random, *, distribution: str, low: Decimal, high: Decimal, step: Decimal) -> Decimal:
    """A size between ``low`` and ``high`` on ``step`` (rounded down, at least ``low`` rounded up to a step)."""
    lo, hi = float(low), float(high)
    if distribution == "lognormal" and hi > lo:
        mu, sigma = (math.log(lo) + math.log(hi)) / 2, (math.log(hi) - math.log(lo)) / 4
        value = min(max(rng.lognormvariate(mu, sigma), lo), hi)
    else:
        value = rng.uniform(lo, hi)
    size = (Decimal(value) / step).to_integral_value(rounding=ROUND_DOWN) * step
    floor = (low / step).to_integral_value(rounding=ROUND_CEILING) * step
    return max(size, floor).quantize(step)


@dataclass
class Agent:
    spec: dict[str, Any]
    seed: str
    start: datetime
    rng: random.Random = field(init=False)
    next_s: float = field(init=False, default=0.0)
    actions: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:agent:{self.spec['name']}")
        self.next_s = self.first()

    def first(self) -> float:
        return 0.0

    def account(self) -> Account | None:
        return (
            Account.objects.select_related("owner")
            .filter(label=self.spec["account"], status=AccountStatus.ACTIVE)
            .order_by("id")
            .first()
        )

    def due(self, now: datetime) -> bool:
        return (now - self.start).total_seconds() >= self.next_s

    def run(self, *, now: datetime) -> None:
        elapsed = (now - self.start).total_seconds()
        while elapsed >= self.next_s:
            late = elapsed - self.next_s > MAX_LATE_S
            decision = self.decide()
            self.next_s += self.interval()
            if late:
                continue
            try:
                self.act(decision)
                self.actions += 1
            except Exception as exc:  # an agent's failed order is its own problem, not the engine's
                logger.warning(
                    "agent_action_failed", agent=self.spec["name"], error=f"{type(exc).__name__}: {exc}"[:200]
                )

    def seconds_until(self, now: datetime) -> float:
        return self.next_s - (now - self.start).total_seconds()

    def decide(self) -> Any:
        raise NotImplementedError

    def interval(self) -> float:
        raise NotImplementedError

    def act(self, decision: Any) -> None:
        raise NotImplementedError


class NoiseTaker(Agent):
    def first(self) -> float:
        return self.interval()

    def interval(self) -> float:
        return self.rng.expovariate(float(Decimal(self.spec["rate"])))

    def decide(self) -> tuple[str, float]:
        return ("buy" if self.rng.random() < 0.5 else "sell"), self.rng.random()

    def act(self, decision: tuple[str, float]) -> None:
        from orders.services import OrderRequest, order_place

        side, u = decision
        market = Market.objects.get(symbol=self.spec["market"])
        account = self.account()
        if account is None or market.status != MarketStatus.TRADING:
            return
        size = self._size(u, market)
        held = dict(
            Balance.objects.filter(
                account=account, asset_id__in=[market.base_asset_id, market.quote_asset_id]
            ).values_list("asset_id", "available")
        )
        can_sell = held.get(market.base_asset_id, Decimal(0)) >= size
        can_buy = held.get(market.quote_asset_id, Decimal(0)) >= size * market.reference_price * Decimal("1.02")
        if side == "sell" and not can_sell and can_buy:
            side = "buy"
        elif side == "buy" and not can_buy and can_sell:
            side = "sell"
        elif not (can_buy or can_sell):
            return
        order_place(
            request=OrderRequest(account=account, market=market, side=side, order_type="market", quantity=size),
            actor=account.owner,
        )

    def _size(self, u: float, market: Market) -> Decimal:
        size = self.spec["size"]
        rng = random.Random(u)
        low = max(Decimal(size["min"]), market.min_quantity)
        high = max(Decimal(size["max"]), low)
        return draw_size(rng, distribution=size["distribution"], low=low, high=high, step=market.quantity_step)


class PassiveMaker(Agent):
    def interval(self) -> float:
        return float(self.spec["refresh_s"])

    def decide(self) -> list[tuple[float, float]]:
        return [(self.rng.random(), self.rng.random()) for _ in range(2 * int(self.spec["levels"]))]

    def act(self, decision: list[tuple[float, float]]) -> None:
        from orders.services import OrderRequest, order_cancel_all, order_place

        market = Market.objects.get(symbol=self.spec["market"])
        account = self.account()
        if account is None:
            return
        order_cancel_all(account=account, actor=account.owner, market=market)
        if market.status != MarketStatus.TRADING:
            return
        spread, step = Decimal(self.spec["spread_bps"]), Decimal(self.spec["step_bps"])
        size = self.spec["size"]
        low = max(Decimal(size["min"]), market.min_quantity)
        high = max(Decimal(size["max"]), low)
        reference, tick = market.reference_price, market.price_tick
        for i in range(int(self.spec["levels"])):
            for side, (jitter, u) in (("buy", decision[2 * i]), ("sell", decision[2 * i + 1])):
                away = (spread / 2 + step * i + step * Decimal(repr(round(jitter, 6))) / 2) / Decimal(10000)
                if side == "buy":
                    price = (reference * (1 - away) / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
                else:
                    price = (reference * (1 + away) / tick).to_integral_value(rounding=ROUND_CEILING) * tick
                quantity = draw_size(
                    random.Random(u),
                    distribution=size["distribution"],
                    low=low,
                    high=high,
                    step=market.quantity_step,
                )
                order_place(
                    request=OrderRequest(
                        account=account,
                        market=market,
                        side=side,
                        order_type="limit",
                        quantity=quantity,
                        price=price.quantize(tick),
                        post_only=True,
                    ),
                    actor=account.owner,
                )


KINDS = {"noise_taker": NoiseTaker, "passive_maker": PassiveMaker}


class AgentPool:
    def __init__(self, agents: list[Agent]) -> None:
        self.agents = agents
        self._now: datetime | None = None

    @classmethod
    def from_scenario(cls, scenario: Any) -> AgentPool:
        spec = scenario.spec or {}
        return cls([KINDS[a["kind"]](a, scenario.seed, scenario.loaded_at) for a in spec.get("agents") or []])

    def run(self, *, now: datetime) -> None:
        self._now = now
        for agent in self.agents:
            if agent.due(now):
                agent.run(now=now)

    def wait(self) -> float:
        if not self.agents or self._now is None:
            return 0.5
        return max(0.0, min(agent.seconds_until(self._now) for agent in self.agents))

"""The price engine: moves each simulated market's reference price along its model, tick by tick.

One round (``PriceEngine.round``) reads the simulated markets' current prices in one query, and for each market
whose tick is due computes the price its path has at this moment and sets it through
``orders.services.market_price_set`` (history, house ladder, fills of the resting orders the ladder now crosses, all
in one transaction). Derived markets tick after the markets they follow. Then the scenario's due halt/resume events
and the agents (simulation/agents.py) run.

Paths are driven by time from their anchor (simulation/paths.py ``step_at``): the price at a moment does not depend
on which process computed it, nor on how many ticks were late. An operator's ``set_price`` (a reference price the
engine did not set) re-anchors the market's path at that price and moment, and the path carries on from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone
from prometheus_client import Counter, Gauge

from markets.models import Market
from simulation.models import MarketSimulation, ModelKind, Scenario
from simulation.paths import BasisPath, Bounds, ModelParams, PricePath, derived_price, on_tick, step_at
from simulation.replay import ReplayCursor, load_replay, parse_speed

logger = structlog.get_logger("exchange.simulation")

# Beyond this many steps to catch up (a path anchored days ago at 100 ms), the path is re-anchored at the current
# price instead of replaying every step in between.
MAX_CATCH_UP_STEPS = 1_000_000
STABLE_USD = {"USD", "USDT", "USDC"}
ROLE = "price_engine"

TICKS = Counter("exchange_price_ticks", "Reference-price changes the price engine made", ["symbol"])
LEADER = Gauge(
    "exchange_price_engine_leader",
    "1 while this instance's price engine is the one moving prices (one per database)",
    ["instance"],
    multiprocess_mode="livemax",
)
LAST_TICK = Gauge(
    "exchange_price_engine_last_tick_timestamp_seconds",
    "When the leading price engine last moved a price (Unix time)",
    multiprocess_mode="max",
)


def _number(params: dict[str, Any], name: str, default: float) -> float:
    value = params.get(name)
    return default if value in (None, "") else float(Decimal(str(value)))


def model_params(params: dict[str, Any], kind: str) -> ModelParams:
    mean = params.get("mean")
    return ModelParams(
        kind=kind,
        drift=_number(params, "drift", 0.0),
        volatility=_number(params, "volatility", 0.5),
        mean=Decimal(str(mean)) if mean not in (None, "") else None,
        half_life_s=_number(params, "half_life_s", 300.0),
        jump_rate=_number(params, "jump_rate", 0.0),
        jump_size=_number(params, "jump_size", 0.0),
        jump_mean=_number(params, "jump_mean", 0.0),
    )


def usd_legs(base: str, quote: str, symbols: set[str]) -> tuple[str | None, str | None] | None:
    """The USD markets a cross market follows (None: the asset is a USD stablecoin, worth 1), or None when it
    follows none: ETH-BTC -> (ETH-USD, BTC-USD), BTC-USDT -> (BTC-USD, None)."""

    def leg(asset: str) -> tuple[bool, str | None]:
        if f"{asset}-USD" in symbols:
            return True, f"{asset}-USD"
        return asset in STABLE_USD, None

    if quote == "USD":
        return None
    (ok_num, num), (ok_den, den) = leg(base), leg(quote)
    if not (ok_num and ok_den) or (num is None and den is None):
        return None
    return num, den


@dataclass
class Driver:
    """One market's source of prices in this process."""

    sim_pk: int
    market_pk: int
    symbol: str
    kind: str
    tick: Decimal
    interval_s: float
    anchored_at: datetime
    anchor_price: Decimal
    bounds: Bounds
    path: PricePath | None = None
    basis: BasisPath | None = None
    legs: tuple[str | None, str | None] | None = None
    replay: ReplayCursor | None = None
    next_due: float = 0.0
    last_set: Decimal | None = None
    # The market as read at reload: market_price_set re-reads what it needs under the market's lock.
    market: Any = None
    # The model row's updated_at when read: a re-anchor writes only over that version of the configuration.
    sim_updated_at: Any = None
    replay_done: bool = False
    shocks: list[dict[str, Any]] = field(default_factory=list)
    seed: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> None:
        if self.kind in (ModelKind.GBM, ModelKind.OU):
            shocks = {}
            for shock in self.shocks:
                step = step_at(elapsed_s=float(shock["at"]), interval_s=self.interval_s)
                if step > 0:
                    shocks[step] = float(Decimal(str(shock["percent"])))
            self.path = PricePath(
                params=model_params(self.params, self.kind),
                start=self.anchor_price,
                tick=self.tick,
                interval_s=self.interval_s,
                seed=self.seed,
                bounds=self.bounds,
                shocks=shocks,
            )
        elif self.kind == ModelKind.DERIVED:
            self.basis = BasisPath(
                seed=f"{self.seed}:basis",
                interval_s=self.interval_s,
                mean_bps=_number(self.params, "basis_bps", 0.0),
                volatility_bps=_number(self.params, "basis_volatility_bps", 2.0),
            )

    def elapsed(self, now: datetime) -> float:
        return (now - self.anchored_at).total_seconds()

    def price_at(self, now: datetime, prices: dict[str, Decimal]) -> tuple[Decimal | None, str]:
        """The price this market's path has at ``now`` (None: nothing to set), and a reason for the history."""
        if self.kind == ModelKind.REPLAY and self.replay is not None:
            index = self.replay.advance() if self.replay.speed is None else self.replay.index_at(self.elapsed(now))
            if index < 0:
                return None, ""
            self.replay_done = self.replay.finished(index)
            row = self.replay.row(index)
            return on_tick(row.price, tick=self.tick, bounds=self.bounds), f"price engine: replay row {index}"
        step = step_at(elapsed_s=self.elapsed(now), interval_s=self.interval_s)
        if self.kind == ModelKind.DERIVED and self.basis is not None and self.legs is not None:
            num, den = (prices.get(leg) if leg else Decimal(1) for leg in self.legs)
            if num is None or den is None or den <= 0:
                return None, ""
            basis = self.basis.at(step)
            price = derived_price(numerator=num, denominator=den, basis_bps=basis, tick=self.tick, bounds=self.bounds)
            return price, f"price engine: derived step {step} basis {basis:.2f} bps"
        if self.path is not None:
            return self.path.at(step), f"price engine: {self.kind} step {step}"
        return None, ""


class PriceEngine:
    """The engine's state in the leading process: one driver per enabled simulated market."""

    def __init__(self, *, clock: Any = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.drivers: list[Driver] = []
        self.version: Any = None
        self.scenario_pk: int | None = None
        self.agents: Any = None
        self.ticks = 0
        self._checked = 0.0
        self.pending_events = False
        # named in every tick's history reason, so each price change says which process made it
        self.identity = leader_identity()

    # --- configuration ------------------------------------------------------------------------------------------
    def _version(self) -> Any:
        sims = MarketSimulation.objects.aggregate(n=Count("id"), last=Max("updated_at"))
        scenario = Scenario.objects.filter(current=True).values_list("pk", flat=True).first()
        return sims["n"], sims["last"], scenario

    def reload_if_changed(self, *, every: float = 1.0) -> bool:
        """Reload when the models or the current scenario changed (checked at most every ``every`` seconds)."""
        now = time.monotonic()
        if now - self._checked < every:
            return False
        self._checked = now
        version = self._version()
        if version == self.version:
            return False
        self.reload()
        return True

    def reload(self) -> None:
        ensure_default_models()
        self.version = self._version()
        sims = list(
            MarketSimulation.objects.select_related("market").filter(enabled=True).exclude(kind=ModelKind.FIXED)
        )
        symbols = set(Market.objects.values_list("symbol", flat=True))
        drivers: list[Driver] = []
        for sim in sims:
            market = sim.market
            driver = Driver(
                market=market,
                sim_updated_at=sim.updated_at,
                sim_pk=sim.pk,
                market_pk=market.pk,
                symbol=market.symbol,
                kind=sim.kind,
                tick=market.price_tick,
                interval_s=sim.interval_ms / 1000.0,
                anchored_at=sim.anchored_at,
                anchor_price=sim.anchor_price,
                bounds=Bounds(lower=sim.lower_bound, upper=sim.upper_bound),
                shocks=list(sim.shocks or []),
                seed=sim.seed,
                params=dict(sim.params or {}),
            )
            try:
                if sim.kind == ModelKind.REPLAY:
                    rows = load_replay(sim.replay_file)
                    driver.replay = ReplayCursor(rows, speed=parse_speed(sim.replay_speed), loop=sim.replay_loop)
                elif sim.kind == ModelKind.DERIVED:
                    driver.legs = usd_legs(market.base_asset_id, market.quote_asset_id, symbols)
                    if driver.legs is None:
                        raise ValueError(f"{market.symbol} follows no USD market")
                driver.build()
            except (OSError, ValueError) as exc:
                logger.error("price_model_unusable", symbol=market.symbol, error=f"{type(exc).__name__}: {exc}"[:300])
                continue
            self._catch_up(driver, market)
            drivers.append(driver)
        # derived markets tick after the markets they follow
        drivers.sort(key=lambda d: (d.kind == ModelKind.DERIVED, d.symbol))
        self.drivers = drivers
        scenario = Scenario.objects.filter(current=True).first()
        self.scenario_pk = scenario.pk if scenario else None
        self.pending_events = scenario is not None and any(
            i not in set(scenario.events_done or []) and e["action"] in ("halt", "resume")
            for i, e in enumerate((scenario.spec or {}).get("schedule") or [])
        )
        from simulation.agents import AgentPool

        self.agents = AgentPool.from_scenario(scenario) if scenario else None
        logger.info(
            "price_engine_configured",
            markets=[f"{d.symbol}:{d.kind}:{int(d.interval_s * 1000)}ms" for d in drivers],
            scenario=scenario.name if scenario else None,
            agents=len(self.agents.agents) if self.agents else 0,
        )

    def _catch_up(self, driver: Driver, market: Market) -> None:
        if driver.path is None and driver.basis is None:
            return
        now = self.clock()
        steps = step_at(elapsed_s=driver.elapsed(now), interval_s=driver.interval_s)
        if steps > MAX_CATCH_UP_STEPS:
            self._reanchor(driver, market.reference_price, now)
        elif driver.path is not None:
            driver.last_set = driver.path.at(steps)
            if driver.last_set != market.reference_price:
                driver.last_set = None  # not ours (yet): the next tick sets the path's price, or re-anchors

    def _reanchor(self, driver: Driver, price: Decimal, now: datetime) -> None:
        """Restart the market's path at ``price`` and ``now``; the schedule's shocks keep their moment (their
        offsets move back by the time since the old anchor). Stored, so a new leader continues from here too."""
        logger.info("price_path_reanchored", symbol=driver.symbol, price=str(price))
        shift = Decimal(str(round(driver.elapsed(now), 6)))
        driver.shocks = [{**s, "at": str(Decimal(str(s["at"])) - shift)} for s in driver.shocks]
        written = MarketSimulation.objects.filter(pk=driver.sim_pk, updated_at=driver.sim_updated_at).update(
            anchor_price=price, anchored_at=now, shocks=driver.shocks
        )
        if not written:  # the model was changed meanwhile (a scenario loaded): reload it rather than overwrite it
            self.version = None
        driver.anchor_price, driver.anchored_at = price, now
        driver.build()
        # (an update() leaves updated_at alone, so the version does not change; refreshing it here would hide a
        # scenario loaded meanwhile, whose start price is what looked like an operator's price)

    # --- one round ----------------------------------------------------------------------------------------------
    def round(self) -> float:
        """Tick every due market; returns the seconds until the next one is due."""
        from orders.services import market_price_set

        mono = time.monotonic()
        due = [d for d in self.drivers if d.next_due <= mono]
        if due:
            current = {
                row["symbol"]: row["reference_price"] for row in Market.objects.values("symbol", "reference_price")
            }
            prices = dict(current)
            now = self.clock()
            for driver in due:
                if driver.symbol not in current:
                    continue
                if driver.kind in (ModelKind.GBM, ModelKind.OU) and driver.last_set is not None:
                    if current[driver.symbol] != driver.last_set:  # an operator's set_price: follow it
                        self._reanchor(driver, current[driver.symbol], now)
                price, reason = driver.price_at(now, prices)
                if driver.replay is None:
                    driver.next_due = mono + driver.interval_s
                else:  # a timed replay looks often; ``max`` takes a row every round
                    driver.next_due = mono + 0.05 if driver.replay.speed else mono
                if price is None or price == current[driver.symbol]:
                    if price is not None:
                        driver.last_set = price
                    continue
                market_price_set(
                    market=driver.market, price=price, actor=None, reason=f"{reason} by {self.identity}"[:100]
                )
                driver.last_set = price
                prices[driver.symbol] = price
                TICKS.labels(symbol=driver.symbol).inc()
                LAST_TICK.set(time.time())
                self.ticks += 1
            # a replay that reached its end and does not loop leaves the market at its last price
            self.drivers = [d for d in self.drivers if not d.replay_done]
        self._run_schedule()
        if self.agents is not None:
            self.agents.run(now=self.clock())
        pending = [d.next_due for d in self.drivers if not d.replay_done]
        wait = (min(pending) - time.monotonic()) if pending else 0.5
        if self.agents is not None:
            wait = min(wait, self.agents.wait())
        return max(0.0, min(wait, 0.5))

    def _run_schedule(self) -> None:
        if self.scenario_pk is None or not self.pending_events:
            return
        scenario = Scenario.objects.filter(pk=self.scenario_pk, current=True).first()
        if scenario is None:
            return
        events = (scenario.spec or {}).get("schedule") or []
        done = set(scenario.events_done or [])
        elapsed = (self.clock() - scenario.loaded_at).total_seconds()
        from orders.services import market_status_set

        for index, event in enumerate(events):
            if index in done or event["action"] not in ("halt", "resume") or float(event["at"]) > elapsed:
                continue
            market = Market.objects.get(symbol=event["market"])
            status = "halted" if event["action"] == "halt" else "trading"
            market_status_set(market=market, status=status, actor=None, reason=f"scenario {scenario.name}: {status}")
            done.add(index)
            Scenario.objects.filter(pk=scenario.pk).update(events_done=sorted(done))
            logger.info("scenario_event", scenario=scenario.name, action=event["action"], market=event["market"])
        self.pending_events = any(i not in done and e["action"] in ("halt", "resume") for i, e in enumerate(events))


def ensure_default_models() -> int:
    """Markets with no model yet get the default one (when no scenario runs): a GBM for each USD market, every other
    market derived from them (ETH-BTC from ETH-USD and BTC-USD, BTC-USDT from BTC-USD). Returns how many it made."""
    if Scenario.objects.filter(current=True).exists():
        return 0
    markets = list(Market.objects.filter(simulation__isnull=True))
    if not markets:
        return 0
    symbols = set(Market.objects.values_list("symbol", flat=True))
    now = timezone.now()
    made = 0
    for market in markets:
        derived = usd_legs(market.base_asset_id, market.quote_asset_id, symbols)
        kind = ModelKind.DERIVED if derived is not None else ModelKind.GBM
        params = {"volatility": str(settings.PRICE_ENGINE_VOLATILITY)} if kind == ModelKind.GBM else {}
        if kind == ModelKind.DERIVED:
            params = {"basis_bps": "1.5", "basis_volatility_bps": "2"}
        _, created = MarketSimulation.objects.get_or_create(
            market=market,
            defaults={
                "kind": kind,
                "params": params,
                "interval_ms": max(100, round(settings.PRICE_ENGINE_TICK * 1000)),
                "seed": f"{settings.PRICE_ENGINE_SEED}:{market.symbol}",
                "anchor_price": market.reference_price,
                "anchored_at": now,
            },
        )
        made += created
    return made


def leader_identity() -> str:
    """How this process names itself as the leader (the leadership connection's application_name)."""
    import os
    import socket

    return f"{settings.SERVICE_INSTANCE_NAME}@{socket.gethostname()}:{os.getpid()}"[:63]

"""The house's ladder of quotes: derived, never stored.

The house makes a market in every market that has ``house_quoting`` on: ``levels`` bids below and asks above the
reference price. The best bid and ask sit half the spread away from the reference price; each further level is
``step_bps`` further out; each level quotes ``size`` of the base asset. Prices are rounded away from the reference
price to the market's tick (so the house never quotes better than its spread). The ladder is bounded by what the
house holds: its asks add up to at most its base inventory, its bids cost at most its quote inventory; deeper
levels get what is left, then nothing.

Because the ladder is a function of (reference price, settings, inventory) it moves with the reference price for
free: a price engine can move prices many times a second without writing a row per level per tick. Within one
order a level's quantity is consumed like any order's; the next order sees the ladder re-quoted in full (the house
re-quotes at once), which is why customer orders at the same price come first (orders/matching.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

BPS = Decimal(10000)
ZERO = Decimal(0)


@dataclass(frozen=True)
class LadderSettings:
    """Everything the ladder of one market depends on, with defaults and chaos already applied."""

    reference_price: Decimal
    spread_bps: Decimal
    levels: int
    step_bps: Decimal
    size: Decimal
    price_tick: Decimal
    quantity_step: Decimal
    enabled: bool = True


def _to_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).to_integral_value(rounding=rounding) * tick


def _floor_step(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ladder_prices(settings: LadderSettings) -> tuple[list[Decimal], list[Decimal]]:
    """(bid prices best first, ask prices best first), distinct and positive."""
    bids: list[Decimal] = []
    asks: list[Decimal] = []
    ref, tick = settings.reference_price, settings.price_tick
    for i in range(settings.levels):
        offset = (settings.spread_bps / 2 + settings.step_bps * i) / BPS
        bid = _to_tick(ref * (1 - offset), tick, ROUND_FLOOR)
        ask = _to_tick(ref * (1 + offset), tick, ROUND_CEILING)
        if bid > 0 and (not bids or bid < bids[-1]):
            bids.append(bid)
        if not asks or ask > asks[-1]:
            asks.append(ask)
    # A zero spread on a coarse tick could put the best bid at the best ask: the house never crosses itself.
    while bids and asks and bids[0] >= asks[0]:
        bids.pop(0)
    return bids, asks


def house_ladder(
    settings: LadderSettings, *, base_inventory: Decimal, quote_inventory: Decimal
) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """(bids, asks) as lists of (price, base quantity), best first, bounded by the house's inventory."""
    if not settings.enabled or settings.levels <= 0 or settings.size <= 0 or settings.reference_price <= 0:
        return [], []
    bid_prices, ask_prices = ladder_prices(settings)
    step = settings.quantity_step
    asks: list[tuple[Decimal, Decimal]] = []
    base_left = max(base_inventory, ZERO)
    for price in ask_prices:
        quantity = _floor_step(min(settings.size, base_left), step)
        if quantity <= 0:
            break
        asks.append((price, quantity))
        base_left -= quantity
    bids: list[tuple[Decimal, Decimal]] = []
    quote_left = max(quote_inventory, ZERO)
    for price in bid_prices:
        # What the house pays a seller for q is floor(p*q) <= p*q: bounding p*q keeps it within the inventory.
        quantity = _floor_step(min(settings.size, quote_left / price), step)
        if quantity <= 0:
            break
        bids.append((price, quantity))
        quote_left -= price * quantity
    return bids, asks

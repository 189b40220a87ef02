"""Pricing a market fill: pure arithmetic on Decimals, no database.

Rounding always favours the house and never creates or loses a unit: the buyer's price and cost round up, the
seller's price and proceeds round down, fees round up; every amount is a whole number of the asset's smallest
unit, so the journal entry that settles the fill balances exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

BPS = Decimal(10000)


def ceil_to(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_CEILING)


def floor_to(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_FLOOR)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def quote_prices(*, reference: Decimal, spread_bps: Decimal, quote_quantum: Decimal) -> tuple[Decimal, Decimal]:
    """(bid, ask): the reference price minus / plus half the spread, rounded away from the customer."""
    half = reference * spread_bps / BPS / 2
    return floor_to(reference - half, quote_quantum), ceil_to(reference + half, quote_quantum)


@dataclass(frozen=True)
class Fill:
    side: str
    quantity: Decimal  # base
    price: Decimal  # quote per base
    quote_amount: Decimal  # quantity x price, rounded for the house
    fee: Decimal  # in the quote asset

    @property
    def customer_quote_change(self) -> Decimal:
        """What the customer's quote balance changes by: a buyer pays cost plus fee, a seller receives
        proceeds less fee."""
        if self.side == "buy":
            return -(self.quote_amount + self.fee)
        return self.quote_amount - self.fee


def price_fill(*, side: str, quantity: Decimal, price: Decimal, fee_bps: Decimal, quote_quantum: Decimal) -> Fill:
    """A fill of ``quantity`` at ``price``; the fee is charged in the quote asset on the quote amount."""
    raw = quantity * price
    quote_amount = ceil_to(raw, quote_quantum) if side == "buy" else floor_to(raw, quote_quantum)
    fee = ceil_to(quote_amount * fee_bps / BPS, quote_quantum)
    return Fill(side=side, quantity=quantity, price=price, quote_amount=quote_amount, fee=fee)


def quantity_for_quote(
    *, side: str, quote_quantity: Decimal, price: Decimal, fee_bps: Decimal, step: Decimal, quote_quantum: Decimal
) -> Decimal:
    """The largest quantity on the step such that a buy spends at most ``quote_quantity`` including the fee,
    or a sell's gross proceeds are at most ``quote_quantity``."""
    if side == "buy":
        quantity = floor_to_step(quote_quantity / (price * (1 + fee_bps / BPS)), step)
        # Rounding the cost and fee up can overshoot by a unit; step down until it fits.
        while quantity > 0:
            fill = price_fill(side=side, quantity=quantity, price=price, fee_bps=fee_bps, quote_quantum=quote_quantum)
            if fill.quote_amount + fill.fee <= quote_quantity:
                break
            quantity -= step
        return max(quantity, Decimal(0))
    return floor_to_step(quote_quantity / price, step)

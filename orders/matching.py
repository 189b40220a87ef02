"""Matching on one market's book: price-time priority, as pure arithmetic on Decimals (no database).

How an incoming order meets the book
------------------------------------
The opposite side of the book is one sequence in priority order: customers' resting orders and the house's
ladder of quotes (markets/ladder.py), best price first; at the same price customer orders come first and among
them the oldest (the lowest id) first, since the house re-quotes continuously and so is always the newest. The
incoming order (the taker) walks it while it has something left, its limit price is not passed and liquidity is
left. Every match is at the resting (maker) price. Then:

* a post-only order that would match anything is rejected (``post_only_would_take``) before anything happens;
* a fill-or-kill order that cannot be filled completely is expired with no match at all;
* a GTC remainder rests; an IOC or market remainder expires;
* self-trade prevention: an order never matches a resting order of its own account; ``expire_taker`` (the
  default) expires the incoming remainder there, ``expire_maker`` expires the resting order and goes on,
  ``expire_both`` does both.

Amounts and rounding (quote asset units, the fee in the quote asset)
--------------------------------------------------------------------
A taker's amounts are rounded per match against it: a buying taker pays ``ceil(p*q)`` plus the fee, a selling
taker receives ``floor(p*q)`` less the fee; fees are ``ceil(amount * bps / 10000)``.

A resting order's amounts are rounded *cumulatively* over its life as a maker: with ``F`` the quantity it has filled
since it began to rest, a resting buy has spent ``C(F) = ceil(p*F)`` plus fees ``ceil(C(F) * m / 10000)``, and a
match of ``q`` costs the difference between those figures at ``F+q`` and at ``F``; a resting sell has received
``floor(p*F)`` less ``ceil(floor(p*F) * m / 10000)`` likewise. So a resting buy reserves exactly what it will spend
if it fills completely, ``ceil(p*Q) + ceil(ceil(p*Q) * m / 10000)`` for its resting quantity ``Q``, each match
spends exactly what it releases, and cancelling releases exactly what is left. (Rounding each match separately
would let the sum of the matches' costs exceed the reservation by a unit per match.)

Between two customers the buyer pays at least what the seller receives: for a real ``y = p*q`` and any ``a``,
``ceil(a+y) - ceil(a) >= floor(y)`` and ``floor(a+y) - floor(a) <= ceil(y)``. The difference (at most one unit) goes
to fee revenue with the fees, so no match creates or loses a unit, and the house never pays for rounding. Against
the house, the house takes exactly the other side of the customer's amounts.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

BPS = Decimal(10000)
ZERO = Decimal(0)
AVERAGE_QUANTUM = Decimal("1e-18")
BUY, SELL = "buy", "sell"


def ceil_to(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_CEILING)


def floor_to(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_FLOOR)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def fee_of(amount: Decimal, bps: Decimal, quantum: Decimal) -> Decimal:
    return ceil_to(amount * bps / BPS, quantum)


class RejectReason(StrEnum):
    """Why an order was refused. Every API maps these (and only these) to its own codes, in one table each."""

    INSUFFICIENT_BALANCE = "insufficient_balance"
    INSUFFICIENT_LIQUIDITY = "insufficient_liquidity"
    ACCOUNT_SUSPENDED = "account_suspended"
    ACCOUNT_CLOSED = "account_closed"
    MARKET_HALTED = "market_halted"
    INVALID_QUANTITY_STEP = "invalid_quantity_step"
    INVALID_PRICE_TICK = "invalid_price_tick"
    BELOW_MIN_QUANTITY = "below_min_quantity"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    ABOVE_MAX_NOTIONAL = "above_max_notional"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"


class EndReason(StrEnum):
    """Why an order ended cancelled or expired (``Order.end_reason``)."""

    IOC_REMAINDER = "ioc_remainder"
    MARKET_REMAINDER = "market_remainder"
    FOK_NOT_FILLED = "fok_not_filled"
    SELF_TRADE_PREVENTION = "self_trade_prevention"
    CANCELLED = "cancelled"
    ACCOUNT_SUSPENDED = "account_suspended"


@dataclass(frozen=True)
class Terms:
    """What matching needs to know of the market."""

    quantity_step: Decimal
    quote_quantum: Decimal


@dataclass
class BookOrder:
    """A resting customer order as the book holds it (mutated as matching consumes it)."""

    pk: int
    order_id: uuid.UUID
    account_pk: int
    side: str
    price: Decimal
    remaining: Decimal
    rest_quantity: Decimal
    locked: Decimal
    maker_fee_bps: Decimal
    filled_quantity: Decimal = ZERO
    filled_quote: Decimal = ZERO
    fee: Decimal = ZERO
    average_price: Decimal | None = None
    # Set by matching when the order changes.
    expired: bool = False

    def maker_amounts(self, quantity: Decimal, quantum: Decimal) -> tuple[Decimal, Decimal]:
        """(quote, fee) of a match of ``quantity`` at this order's price, rounded cumulatively (module docstring)."""
        before = self.rest_quantity - self.remaining
        after = before + quantity
        rnd = ceil_to if self.side == BUY else floor_to
        quote_before, quote_after = rnd(self.price * before, quantum), rnd(self.price * after, quantum)
        fee_before = fee_of(quote_before, self.maker_fee_bps, quantum)
        fee_after = fee_of(quote_after, self.maker_fee_bps, quantum)
        return quote_after - quote_before, fee_after - fee_before


def buy_reservation(*, price: Decimal, quantity: Decimal, fee_bps: Decimal, quantum: Decimal) -> Decimal:
    """What a resting buy of ``quantity`` at ``price`` locks: all it can spend as a maker (module docstring)."""
    cost = ceil_to(price * quantity, quantum)
    return cost + fee_of(cost, fee_bps, quantum)


@dataclass(frozen=True)
class HouseLevel:
    """One level of the house's ladder: a price and the base quantity the house quotes there."""

    price: Decimal
    quantity: Decimal


Liquidity = BookOrder | HouseLevel


@dataclass
class Match:
    """One trade. ``maker`` is None for the house's quote; ``taker_is_house`` for the house taking a crossed order."""

    maker: BookOrder | None
    price: Decimal
    quantity: Decimal
    taker_side: str
    taker_quote: Decimal
    taker_fee: Decimal
    maker_quote: Decimal
    maker_fee: Decimal
    taker_is_house: bool = False
    trade_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def rounding(self) -> Decimal:
        """What the buyer pays beyond what the seller receives (to fee revenue); 0 against the house."""
        if self.maker is None or self.taker_is_house:
            return ZERO
        return self.taker_quote - self.maker_quote if self.taker_side == BUY else self.maker_quote - self.taker_quote


@dataclass(frozen=True)
class Incoming:
    """The order being placed (the taker)."""

    account_pk: int
    side: str
    order_type: str  # "market" | "limit"
    price: Decimal | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    time_in_force: str  # "gtc" | "ioc" | "fok" | "" (market)
    post_only: bool
    self_trade_prevention: str
    taker_fee_bps: Decimal
    maker_fee_bps: Decimal
    # Chaos (partial fills): at most this fraction of what a match could fill is filled (None: no cap).
    max_fill_fraction: Decimal | None = None


@dataclass
class Outcome:
    """What matching decided for an incoming order. Nothing is written yet."""

    matches: list[Match] = field(default_factory=list)
    expired_makers: list[BookOrder] = field(default_factory=list)
    status: str = ""
    end_reason: str = ""
    reject_reason: RejectReason | None = None
    reject_message: str = ""
    rest_quantity: Decimal = ZERO  # what rests in the book (a GTC remainder)
    reservation: Decimal = ZERO  # what the resting part locks (quote for a buy, base for a sell)
    stopped_by_budget: bool = False  # a quote-sized market order spent what it may

    @property
    def filled_quantity(self) -> Decimal:
        return sum((m.quantity for m in self.matches), ZERO)

    @property
    def filled_quote(self) -> Decimal:
        return sum((m.taker_quote for m in self.matches), ZERO)

    @property
    def fee(self) -> Decimal:
        return sum((m.taker_fee for m in self.matches), ZERO)

    def taker_spends(self, side: str) -> Decimal:
        """What the taker's available balance gives: quote (cost, fees, reservation) for a buy, base for a sell."""
        if side == BUY:
            return self.filled_quote + self.fee + self.reservation
        return self.filled_quantity + self.reservation


def _crosses(side: str, limit: Decimal | None, price: Decimal) -> bool:
    if limit is None:
        return True
    return price <= limit if side == BUY else price >= limit


def _taker_amounts(
    side: str, price: Decimal, quantity: Decimal, fee_bps: Decimal, quantum: Decimal
) -> tuple[Decimal, Decimal]:
    if side == BUY:
        quote = ceil_to(price * quantity, quantum)
    else:
        quote = floor_to(price * quantity, quantum)
    return quote, fee_of(quote, fee_bps, quantum)


def _affordable(order: Incoming, price: Decimal, budget: Decimal, terms: Terms) -> Decimal:
    """The largest quantity on the step a quote-sized market order may take at ``price`` within ``budget``: a buy
    spends at most the budget including the fee, a sell's gross proceeds are at most the budget."""
    step, quantum = terms.quantity_step, terms.quote_quantum
    if order.side == SELL:
        return floor_to_step(budget / price, step)
    quantity = floor_to_step(budget / (price * (1 + order.taker_fee_bps / BPS)), step)
    while quantity > 0:  # rounding the cost and the fee up can overshoot by a unit: step down until it fits
        quote, fee = _taker_amounts(BUY, price, quantity, order.taker_fee_bps, quantum)
        if quote + fee <= budget:
            break
        quantity -= step
    return max(quantity, ZERO)


def match_incoming(order: Incoming, liquidity: Iterable[Liquidity], terms: Terms) -> Outcome:
    """Walk the opposite side of the book for ``order`` (see the module docstring). ``liquidity`` is in priority
    order and may be lazy (it is read only as far as the order goes). The resting orders the outcome matches or
    expires are updated in place; the caller persists them, or drops them if it refuses the order afterwards."""
    outcome = Outcome()
    levels: Iterator[Liquidity] = iter(liquidity)
    is_limit = order.order_type == "limit"
    limit = order.price if is_limit else None

    if order.post_only:
        first = next(levels, None)
        if first is not None and _crosses(order.side, limit, first.price):
            outcome.reject_reason = RejectReason.POST_ONLY_WOULD_TAKE
            outcome.reject_message = "A post-only order would have matched at once."
            return outcome
        levels = itertools.chain([first] if first is not None else [], levels)

    remaining = order.quantity  # None for a market order sized by quote_quantity
    budget = order.quote_quantity or ZERO
    stp_stop = saw_liquidity = False
    for level in levels:
        if (remaining is not None and remaining <= 0) or not _crosses(order.side, limit, level.price):
            break
        saw_liquidity = True
        maker = level if isinstance(level, BookOrder) else None
        if maker is not None and maker.account_pk == order.account_pk:
            if order.self_trade_prevention in ("expire_maker", "expire_both"):
                outcome.expired_makers.append(maker)
            if order.self_trade_prevention in ("expire_taker", "expire_both"):
                stp_stop = True
                break
            continue
        available = maker.remaining if maker is not None else level.quantity
        if remaining is not None:
            quantity = min(remaining, available)
        else:
            quantity = min(_affordable(order, level.price, budget, terms), available)
            if quantity <= 0:
                outcome.stopped_by_budget = True
                break
        if order.max_fill_fraction is not None:
            quantity = floor_to_step(quantity * order.max_fill_fraction, terms.quantity_step)
            if quantity <= 0:
                break
        taker_quote, taker_fee = _taker_amounts(
            order.side, level.price, quantity, order.taker_fee_bps, terms.quote_quantum
        )
        if maker is not None:
            maker_quote, maker_fee = maker.maker_amounts(quantity, terms.quote_quantum)
        else:
            maker_quote, maker_fee = taker_quote, ZERO
        outcome.matches.append(
            Match(
                maker=maker,
                price=level.price,
                quantity=quantity,
                taker_side=order.side,
                taker_quote=taker_quote,
                taker_fee=taker_fee,
                maker_quote=maker_quote,
                maker_fee=maker_fee,
            )
        )
        if remaining is not None:
            remaining -= quantity
        else:
            budget -= taker_quote + taker_fee if order.side == BUY else taker_quote
        if order.max_fill_fraction is not None:
            break  # a capped order takes one match; its time in force decides what happens to the rest

    if order.time_in_force == "fok" and (remaining or ZERO) > 0:
        return Outcome(status="expired", end_reason=EndReason.FOK_NOT_FILLED)
    if order.order_type == "market" and not outcome.matches and not stp_stop:
        if outcome.stopped_by_budget:
            outcome.reject_reason = RejectReason.BELOW_MIN_QUANTITY
            outcome.reject_message = "The quote quantity does not buy one quantity step."
        else:
            outcome.reject_reason = RejectReason.INSUFFICIENT_LIQUIDITY
            outcome.reject_message = (
                "The order is too small for one match."
                if saw_liquidity
                else "There is no liquidity on the other side of the book."
            )
        outcome.expired_makers = []
        return outcome

    for match in outcome.matches:
        if match.maker is not None:
            _maker_filled(match.maker, match)
    for maker in outcome.expired_makers:
        maker.expired = True

    if (remaining is not None and remaining <= 0) or (remaining is None and outcome.stopped_by_budget):
        outcome.status = "filled"
    elif stp_stop:
        outcome.status, outcome.end_reason = "expired", EndReason.SELF_TRADE_PREVENTION
    elif is_limit and order.time_in_force == "gtc":
        outcome.status = "partially_filled" if outcome.matches else "open"
        outcome.rest_quantity = remaining or ZERO
        if order.side == BUY:
            outcome.reservation = buy_reservation(
                price=order.price or ZERO,
                quantity=outcome.rest_quantity,
                fee_bps=order.maker_fee_bps,
                quantum=terms.quote_quantum,
            )
        else:
            outcome.reservation = outcome.rest_quantity
    else:
        reason = EndReason.IOC_REMAINDER if is_limit else EndReason.MARKET_REMAINDER
        outcome.status, outcome.end_reason = "expired", reason
    return outcome


def average_price(
    matches: list[tuple[Decimal, Decimal]], *, before: tuple[Decimal, Decimal] | None = None
) -> Decimal | None:
    """The volume-weighted price of (price, quantity) matches, after ``before`` (average, quantity) if given,
    kept to 18 decimals (shown at the quote asset's precision)."""
    notional = sum((p * q for p, q in matches), ZERO)
    quantity = sum((q for _, q in matches), ZERO)
    if before is not None and before[1]:
        notional += before[0] * before[1]
        quantity += before[1]
    return (notional / quantity).quantize(AVERAGE_QUANTUM) if quantity else None


def _maker_filled(order: BookOrder, match: Match) -> None:
    """A resting order's figures after a match: what it spent comes out of its reservation, exactly."""
    before = (order.average_price, order.filled_quantity) if order.average_price is not None else None
    order.average_price = average_price([(match.price, match.quantity)], before=before)
    order.remaining -= match.quantity
    order.filled_quantity += match.quantity
    order.filled_quote += match.maker_quote
    order.fee += match.maker_fee
    order.locked -= match.maker_quote + match.maker_fee if order.side == BUY else match.quantity


def house_takes_crossed(orders: Iterable[BookOrder], ladder: Iterable[HouseLevel], terms: Terms) -> list[Match]:
    """After the house's quotes moved (a new reference price), the resting customer orders they now cross are
    filled against the house, as makers at their own prices: ``orders`` is one side of the book (best first),
    ``ladder`` the house's opposite side (best first). Each order is filled up to the house quantity at prices it
    crosses; the house is the taker (no taker fee)."""
    matches: list[Match] = []
    levels = [[level.price, level.quantity] for level in ladder]
    i = 0
    for order in orders:
        crossed = False
        while order.remaining > 0 and i < len(levels):
            price, quantity = levels[i]
            if not (price <= order.price if order.side == BUY else price >= order.price):
                break
            crossed = True
            take = min(order.remaining, quantity)
            maker_quote, maker_fee = order.maker_amounts(take, terms.quote_quantum)
            taker_side = SELL if order.side == BUY else BUY
            match = Match(
                maker=order,
                price=order.price,
                quantity=take,
                taker_side=taker_side,
                taker_quote=maker_quote,
                taker_fee=ZERO,
                maker_quote=maker_quote,
                maker_fee=maker_fee,
                taker_is_house=True,
            )
            matches.append(match)
            _maker_filled(order, match)
            levels[i][1] -= take
            if levels[i][1] <= 0:
                i += 1
        if not crossed:
            break
    return matches

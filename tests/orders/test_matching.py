"""The matching engine by worked examples, as pure arithmetic (orders/matching.py): no database.

The market in these examples quotes in USD (a unit is 0.01) and steps quantities by 0.001. Takers pay 10 bps and
resting orders 5 bps unless an example says otherwise. Account 1 is the taker; resting orders belong to accounts 2,
3 and up (the house's quotes belong to no account).
"""

from __future__ import annotations

import random
import uuid
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

import pytest

from markets.ladder import house_ladder
from orders.matching import (
    BookOrder,
    HouseLevel,
    Incoming,
    RejectReason,
    Terms,
    buy_reservation,
    house_takes_crossed,
    match_incoming,
)

USD = D("0.01")
TERMS = Terms(quantity_step=D("0.001"), quote_quantum=USD)
TAKER = 1


def resting(pk: int, side: str, price: str, quantity: str, *, account: int | None = None, maker_bps: str = "5"):
    """A resting order as the book holds it: nothing filled yet, its whole reservation locked."""
    qty, p, bps = D(quantity), D(price), D(maker_bps)
    locked = buy_reservation(price=p, quantity=qty, fee_bps=bps, quantum=USD) if side == "buy" else qty
    return BookOrder(
        pk=pk,
        order_id=uuid.uuid4(),
        account_pk=account if account is not None else pk + 1,
        side=side,
        price=p,
        remaining=qty,
        rest_quantity=qty,
        locked=locked,
        maker_fee_bps=bps,
    )


def house(price: str, quantity: str) -> HouseLevel:
    return HouseLevel(D(price), D(quantity))


def order(side: str, *, price: str | None = None, quantity: str | None = None, **kw) -> Incoming:
    fields = {
        "account_pk": TAKER,
        "side": side,
        "order_type": "limit" if price is not None else "market",
        "price": D(price) if price is not None else None,
        "quantity": D(quantity) if quantity is not None else None,
        "quote_quantity": None,
        "time_in_force": "gtc" if price is not None else "",
        "post_only": False,
        "self_trade_prevention": "expire_taker",
        "taker_fee_bps": D("10"),
        "maker_fee_bps": D("5"),
    }
    fields.update(kw)
    return Incoming(**fields)


def fills(outcome) -> list[tuple]:
    """Each match as (maker pk or "house", price, quantity, taker quote, taker fee, maker quote, maker fee)."""
    return [
        (
            m.maker.pk if m.maker is not None else "house",
            m.price,
            m.quantity,
            m.taker_quote,
            m.taker_fee,
            m.maker_quote,
            m.maker_fee,
        )
        for m in outcome.matches
    ]


# --- Price-time priority -----------------------------------------------------------------------------------------
def test_a_buy_takes_the_best_price_first_and_at_one_price_the_oldest_order_first():
    # The book in priority order: 100.00 (order 7, then the younger order 9), then the house at 100.50.
    asks = [resting(7, "sell", "100.00", "1"), resting(9, "sell", "100.00", "1"), house("100.50", "5")]

    outcome = match_incoming(order("buy", price="101.00", quantity="2.5"), asks, TERMS)

    # 1 x 100.00 = 100.00, taker fee 0.10, maker fee 0.05; 0.5 x 100.50 = 50.25, taker fee 0.050 25 -> 0.06.
    assert fills(outcome) == [
        (7, D("100.00"), D("1"), D("100.00"), D("0.10"), D("100.00"), D("0.05")),
        (9, D("100.00"), D("1"), D("100.00"), D("0.10"), D("100.00"), D("0.05")),
        ("house", D("100.50"), D("0.5"), D("50.25"), D("0.06"), D("50.25"), D("0")),
    ]
    assert (outcome.status, outcome.filled_quantity, outcome.filled_quote, outcome.fee) == (
        "filled",
        D("2.5"),
        D("250.25"),
        D("0.26"),
    )
    assert (asks[0].remaining, asks[1].remaining) == (D("0"), D("0"))


def test_at_one_price_customer_orders_come_before_the_house_in_the_merged_book():
    """The book the engine walks merges resting orders with the house's ladder (orders/services.py): the house
    re-quotes continuously, so at an equal price it is the newest and fills last."""
    from orders.services import _liquidity
    from orders.store import LockedBook, MarketRow

    row = MarketRow(
        pk=1,
        symbol="BTC-USD",
        base="BTC",
        quote="USD",
        status="trading",
        reference_price=D("65000.00"),
        quantity_step=D("0.001"),
        price_tick=USD,
        min_quantity=D("0.001"),
        min_notional=D("1"),
        max_notional=D("5000000"),
        spread_bps=D("10"),
        taker_fee_bps=D("10"),
        maker_fee_bps=D("5"),
        house_quoting=True,
        ladder_levels=3,
        ladder_step_bps=D("5"),
        ladder_size=D("0.5"),
        book_sequence=0,
    )
    # The house asks 65,032.50, 65,065.00 and 65,097.50; customers rest at 65,010.00 and at the house's 65,065.00.
    book_asks = [resting(3, "sell", "65010.00", "0.1"), resting(4, "sell", "65065.00", "0.2")]
    book = LockedBook(row, "active", True, D("80"), D("8000000"), book_asks)

    walked = list(_liquidity(book, side="sell", limit=None))

    assert [(getattr(x, "pk", "house"), x.price) for x in walked] == [
        (3, D("65010.00")),
        ("house", D("65032.50")),
        (4, D("65065.00")),
        ("house", D("65065.00")),
        ("house", D("65097.50")),
    ]
    outcome = match_incoming(order("buy", quantity="1.2"), walked, TERMS)
    assert [(f[0], f[1], f[2]) for f in fills(outcome)] == [
        (3, D("65010.00"), D("0.1")),
        ("house", D("65032.50"), D("0.5")),
        (4, D("65065.00"), D("0.2")),
        ("house", D("65065.00"), D("0.4")),
    ]


def test_a_sell_walks_the_bids_from_the_highest_down_to_its_limit_and_rests_the_rest():
    bids = [
        resting(3, "buy", "99.00", "0.4"),
        house("98.50", "0.3"),
        resting(5, "buy", "98.00", "1"),  # below the limit: never reached
    ]

    outcome = match_incoming(order("sell", price="98.50", quantity="1"), bids, TERMS)

    # 0.4 x 99.00 = 39.60 (taker fee 0.04, maker fee 0.02); 0.3 x 98.50 = 29.55 (taker fee 0.029 55 -> 0.03).
    assert fills(outcome) == [
        (3, D("99.00"), D("0.4"), D("39.60"), D("0.04"), D("39.60"), D("0.02")),
        ("house", D("98.50"), D("0.3"), D("29.55"), D("0.03"), D("29.55"), D("0")),
    ]
    # The limit stops it: 0.3 rests at 98.50, locking 0.3 of the base.
    assert (outcome.status, outcome.rest_quantity, outcome.reservation) == ("partially_filled", D("0.3"), D("0.3"))
    assert bids[2].remaining == D("1")


def test_a_limit_buy_below_the_best_ask_matches_nothing_and_rests_with_its_full_reservation():
    outcome = match_incoming(order("buy", price="99.99", quantity="2"), [house("100.00", "5")], TERMS)

    # 2 x 99.99 = 199.98, plus the most it can pay as a maker: 5 bps of it = 0.099 99 -> 0.10.
    assert (outcome.matches, outcome.status, outcome.rest_quantity, outcome.reservation) == (
        [],
        "open",
        D("2"),
        D("200.08"),
    )


# --- Partial fills, and what a resting order spends ---------------------------------------------------------------
def test_a_resting_sell_filled_in_two_pieces_pays_the_fee_of_the_whole_not_the_sum_of_rounded_fees():
    ask = resting(3, "sell", "100.00", "1")

    first = match_incoming(order("buy", quantity="0.3"), [ask], TERMS)

    # 0.3 x 100 = 30.00: taker fee 10 bps = 0.03, maker fee 5 bps = 0.015 -> 0.02; the maker is filled in part.
    assert fills(first) == [(3, D("100.00"), D("0.3"), D("30.00"), D("0.03"), D("30.00"), D("0.02"))]
    assert first.status == "filled"
    assert (ask.remaining, ask.locked, ask.filled_quantity, ask.filled_quote, ask.fee) == (
        D("0.7"),
        D("0.7"),
        D("0.3"),
        D("30.00"),
        D("0.02"),
    )

    second = match_incoming(order("buy", quantity="1"), [ask, house("100.50", "5")], TERMS)

    # The maker's fee is rounded over its life: 5 bps of 100.00 is 0.05 in all, so this piece pays 0.03, where
    # rounding the piece alone (0.035 -> 0.04) would have charged 0.06 for the order.
    assert fills(second)[0] == (3, D("100.00"), D("0.7"), D("70.00"), D("0.07"), D("70.00"), D("0.03"))
    assert (ask.remaining, ask.locked, ask.fee, ask.average_price) == (D("0"), D("0"), D("0.05"), D("100"))
    # The taker took the rest from the house.
    assert fills(second)[1][:3] == ("house", D("100.50"), D("0.3"))


def test_a_resting_buy_filled_in_three_pieces_spends_exactly_its_reservation():
    # 0.003 at 33.33: 0.099 99 -> 0.10, plus 5 bps of 0.10 = 0.000 05 -> 0.01: it locks 0.11.
    bid = resting(3, "buy", "33.33", "0.003")
    assert bid.locked == D("0.11")

    pieces = [match_incoming(order("sell", quantity="0.001"), [bid], TERMS).matches[0] for _ in range(3)]

    # Rounded cumulatively: it has spent ceil(33.33 x filled) (0.04, 0.07, 0.10) and 5 bps of that (0.01 each
    # time), so the pieces cost 0.04 + 0.01, then 0.03, then 0.03; each seller gets floor(0.033 33) = 0.03.
    assert [(m.maker_quote, m.maker_fee, m.taker_quote, m.rounding) for m in pieces] == [
        (D("0.04"), D("0.01"), D("0.03"), D("0.01")),
        (D("0.03"), D("0"), D("0.03"), D("0")),
        (D("0.03"), D("0"), D("0.03"), D("0")),
    ]
    assert sum(m.maker_quote + m.maker_fee for m in pieces) == D("0.11")
    assert (bid.remaining, bid.locked, bid.filled_quote, bid.fee) == (D("0"), D("0"), D("0.10"), D("0.01"))


# --- Time in force -----------------------------------------------------------------------------------------------
def test_a_fill_or_kill_that_the_book_cannot_fill_matches_nothing_and_leaves_the_book_as_it_was():
    asks = [resting(3, "sell", "100.00", "1"), house("100.50", "0.5")]

    outcome = match_incoming(order("buy", price="100.50", quantity="2", time_in_force="fok"), asks, TERMS)

    assert (outcome.matches, outcome.status, outcome.end_reason, outcome.reservation) == (
        [],
        "expired",
        "fok_not_filled",
        D("0"),
    )
    assert (asks[0].remaining, asks[0].locked, asks[0].filled_quantity) == (D("1"), D("1"), D("0"))


def test_a_fill_or_kill_that_the_book_can_fill_walks_every_level_it_needs():
    asks = [resting(3, "sell", "100.00", "1"), house("100.50", "0.5")]

    outcome = match_incoming(order("buy", price="100.50", quantity="1.5", time_in_force="fok"), asks, TERMS)

    assert outcome.status == "filled"
    assert [(f[0], f[2]) for f in fills(outcome)] == [(3, D("1")), ("house", D("0.5"))]


def test_an_ioc_remainder_expires_and_reserves_nothing():
    outcome = match_incoming(
        order("buy", price="100.00", quantity="2", time_in_force="ioc"), [resting(3, "sell", "100.00", "1")], TERMS
    )

    assert (outcome.filled_quantity, outcome.status, outcome.end_reason) == (D("1"), "expired", "ioc_remainder")
    assert (outcome.rest_quantity, outcome.reservation) == (D("0"), D("0"))


def test_a_market_order_remainder_expires_when_the_book_runs_out():
    outcome = match_incoming(order("sell", quantity="3"), [house("99.50", "1"), house("99.00", "1")], TERMS)

    assert (outcome.filled_quantity, outcome.status, outcome.end_reason) == (D("2"), "expired", "market_remainder")
    assert outcome.reservation == D("0")


def test_a_market_order_on_an_empty_side_is_refused_for_liquidity():
    outcome = match_incoming(order("buy", quantity="1"), [], TERMS)

    assert (outcome.reject_reason, outcome.matches) == (RejectReason.INSUFFICIENT_LIQUIDITY, [])


def test_a_gtc_buy_remainder_rests_locking_its_price_times_quantity_plus_the_largest_maker_fee():
    outcome = match_incoming(
        order("buy", price="100.03", quantity="1.5", maker_fee_bps=D("7.5")), [house("100.00", "0.25")], TERMS
    )

    assert fills(outcome) == [("house", D("100.00"), D("0.25"), D("25.00"), D("0.03"), D("25.00"), D("0"))]
    # 1.25 rests at 100.03: 125.0375 -> 125.04, plus 7.5 bps of it, 0.093 78 -> 0.10.
    assert (outcome.status, outcome.rest_quantity, outcome.reservation) == ("partially_filled", D("1.25"), D("125.14"))
    # What it gives up front: the match (25.00 + 0.03) and the reservation.
    assert outcome.taker_spends("buy") == D("150.17")


# --- Post-only -----------------------------------------------------------------------------------------------------
def test_a_post_only_order_that_would_match_is_rejected_before_anything_happens():
    asks = [resting(3, "sell", "100.00", "1")]

    outcome = match_incoming(order("buy", price="100.00", quantity="1", post_only=True), asks, TERMS)

    assert (outcome.reject_reason, outcome.matches, outcome.expired_makers) == (
        RejectReason.POST_ONLY_WOULD_TAKE,
        [],
        [],
    )
    assert asks[0].remaining == D("1")


def test_a_post_only_order_that_does_not_cross_rests():
    outcome = match_incoming(
        order("sell", price="100.01", quantity="1", post_only=True), [resting(3, "buy", "100.00", "1")], TERMS
    )

    assert (outcome.reject_reason, outcome.status, outcome.rest_quantity, outcome.reservation) == (
        None,
        "open",
        D("1"),
        D("1"),
    )


# --- Self-trade prevention ---------------------------------------------------------------------------------------
def _book_with_own_order():
    """Another customer's ask at 99.90, the taker's own at 100.00, then another customer's at 100.20."""
    return [
        resting(3, "sell", "99.90", "0.5"),
        resting(4, "sell", "100.00", "1", account=TAKER),
        resting(5, "sell", "100.20", "2"),
    ]


def test_by_default_the_incoming_remainder_expires_at_its_own_resting_order():
    asks = _book_with_own_order()

    outcome = match_incoming(order("buy", price="101.00", quantity="2"), asks, TERMS)

    assert [(f[0], f[2]) for f in fills(outcome)] == [(3, D("0.5"))]
    assert (outcome.status, outcome.end_reason, outcome.rest_quantity) == (
        "expired",
        "self_trade_prevention",
        D("0"),
    )
    assert (outcome.expired_makers, asks[1].expired, asks[1].remaining) == ([], False, D("1"))


def test_expire_maker_expires_the_own_resting_order_and_the_incoming_order_goes_on():
    asks = _book_with_own_order()

    outcome = match_incoming(
        order("buy", price="101.00", quantity="2", self_trade_prevention="expire_maker"), asks, TERMS
    )

    assert [(f[0], f[2]) for f in fills(outcome)] == [(3, D("0.5")), (5, D("1.5"))]
    assert outcome.status == "filled"
    assert outcome.expired_makers == [asks[1]]
    # Expired with nothing filled: the caller releases all it still holds.
    assert (asks[1].expired, asks[1].remaining, asks[1].locked) == (True, D("1"), D("1"))


def test_expire_both_expires_the_own_resting_order_and_the_incoming_remainder():
    asks = _book_with_own_order()

    outcome = match_incoming(
        order("buy", price="101.00", quantity="2", self_trade_prevention="expire_both"), asks, TERMS
    )

    assert [(f[0], f[2]) for f in fills(outcome)] == [(3, D("0.5"))]
    assert (outcome.status, outcome.end_reason) == ("expired", "self_trade_prevention")
    assert outcome.expired_makers == [asks[1]] and asks[1].expired
    assert asks[2].remaining == D("2")


# --- Market orders sized in the quote asset ----------------------------------------------------------------------
def test_a_quote_sized_market_buy_spends_at_most_its_budget_including_fees():
    asks = [resting(3, "sell", "100.00", "1"), house("100.50", "5"), house("101.00", "5")]

    outcome = match_incoming(order("buy", quote_quantity=D("150.00")), asks, TERMS)

    # 1 at 100.00 costs 100.00 + 0.10; 49.90 is left, which buys 0.496 at 100.50: 49.848 -> 49.85 + 0.05 fee.
    assert fills(outcome) == [
        (3, D("100.00"), D("1"), D("100.00"), D("0.10"), D("100.00"), D("0.05")),
        ("house", D("100.50"), D("0.496"), D("49.85"), D("0.05"), D("49.85"), D("0")),
    ]
    assert outcome.filled_quote + outcome.fee == D("150.00")
    assert outcome.status == "filled"


def test_a_quote_sized_market_buy_steps_down_when_rounding_the_fee_up_would_overspend():
    # 10.00 at 3.33 and 30 bps: 10 / (3.33 x 1.003) = 2.994..., but 2.994 costs 9.970 02 -> 9.98 plus 0.03 fee =
    # 10.01; one step less, 2.993, costs 9.966 69 -> 9.97 plus 0.03 = 10.00.
    outcome = match_incoming(
        order("buy", quote_quantity=D("10.00"), taker_fee_bps=D("30")), [house("3.33", "100")], TERMS
    )

    [(_, _, quantity, quote, fee, _, _)] = fills(outcome)
    assert (quantity, quote, fee) == (D("2.993"), D("9.97"), D("0.03"))
    more = (D("2.994") * D("3.33")).quantize(USD, rounding=ROUND_CEILING)
    assert more + (more * D("0.003")).quantize(USD, rounding=ROUND_CEILING) > D("10.00")


def test_a_quote_sized_market_sell_receives_at_most_the_asked_gross():
    bids = [resting(3, "buy", "100.00", "1"), house("99.50", "5"), house("99.00", "5")]

    outcome = match_incoming(order("sell", quote_quantity=D("150.00")), bids, TERMS)

    # 1 at 100.00 = 100.00; 50.00 is left: floor(50 / 99.50) = 0.502 -> 49.949 -> 49.94 gross; 0.06 buys nothing.
    assert [(f[0], f[2], f[3]) for f in fills(outcome)] == [(3, D("1"), D("100.00")), ("house", D("0.502"), D("49.94"))]
    assert outcome.filled_quote == D("149.94") <= D("150.00")
    assert outcome.status == "filled"


def test_a_quote_sized_market_order_too_small_for_one_step_is_refused():
    outcome = match_incoming(order("buy", quote_quantity=D("0.05")), [house("100.00", "5")], TERMS)

    assert (outcome.reject_reason, outcome.matches) == (RejectReason.BELOW_MIN_QUANTITY, [])


# --- Partial fills on purpose (chaos) ----------------------------------------------------------------------------
def test_max_fill_fraction_fills_that_share_of_one_match_and_the_time_in_force_decides_the_rest():
    asks = [resting(3, "sell", "100.00", "3"), house("100.50", "5")]

    gtc = match_incoming(order("buy", price="101.00", quantity="2", max_fill_fraction=D("0.37")), asks, TERMS)

    # 37 % of the 2 it could take at once, on the step: 0.74; the rest rests.
    assert [(f[0], f[2]) for f in fills(gtc)] == [(3, D("0.74"))]
    assert (gtc.status, gtc.rest_quantity) == ("partially_filled", D("1.26"))

    ioc = match_incoming(
        order("buy", price="101.00", quantity="2", time_in_force="ioc", max_fill_fraction=D("0.5")), asks, TERMS
    )
    assert [(f[0], f[2]) for f in fills(ioc)] == [(3, D("1"))]
    assert (ioc.status, ioc.end_reason) == ("expired", "ioc_remainder")


def test_max_fill_fraction_below_one_step_fills_nothing_and_a_gtc_order_rests_whole():
    outcome = match_incoming(
        order("buy", price="101.00", quantity="0.001", max_fill_fraction=D("0.5")), [house("100.00", "5")], TERMS
    )

    assert (outcome.matches, outcome.status, outcome.rest_quantity) == ([], "open", D("0.001"))


# --- The house takes resting orders its moved quotes cross --------------------------------------------------------
def test_after_a_price_move_the_house_fills_the_bids_its_asks_cross_at_their_own_prices():
    bids = [resting(3, "buy", "101.00", "0.4"), resting(4, "buy", "100.60", "1"), resting(5, "buy", "100.00", "1")]
    asks = [house("100.50", "0.5"), house("100.70", "5")]

    matches = house_takes_crossed(bids, asks, TERMS)

    # Order 3 fills whole at 101.00; order 4 takes the 0.1 left at 100.50 (the next level, 100.70, is above it);
    # order 5 is not crossed.
    assert [(m.maker.pk, m.price, m.quantity, m.taker_side, m.taker_fee, m.taker_is_house) for m in matches] == [
        (3, D("101.00"), D("0.4"), "sell", D("0"), True),
        (4, D("100.60"), D("0.1"), "sell", D("0"), True),
    ]
    # 0.4 x 101 = 40.40 + 0.03 fee: exactly the reservation (40.40 + 0.0202 -> 0.03).
    assert (bids[0].remaining, bids[0].locked, bids[0].fee) == (D("0"), D("0"), D("0.03"))
    assert [m.taker_quote for m in matches] == [m.maker_quote for m in matches] == [D("40.40"), D("10.06")]
    assert bids[2].remaining == D("1")


# --- Arithmetic invariants (module docstring), on random cases -----------------------------------------------------
QUANTA = [D("0.01"), D("0.000001"), D("0.00000001")]
STEPS = [D("0.001"), D("0.00001"), D("1")]


def _random_piece(rng: random.Random, left: D, step: D) -> D:
    units = int(left / step)
    return step * rng.randint(1, max(1, min(units, rng.choice([1, 3, 10, units]))))


def _units(value: D, quantum: D) -> bool:
    return value == value.quantize(quantum) and value >= 0


@pytest.mark.parametrize("seed", [20261201])
def test_random_resting_orders_filled_in_random_pieces_keep_the_rounding_invariants(seed):
    rng = random.Random(seed)
    for _case in range(3000):
        quantum, step = rng.choice(QUANTA), rng.choice(STEPS)
        terms = Terms(quantity_step=step, quote_quantum=quantum)
        price = quantum * rng.randint(1, 10 ** rng.randint(1, 9))
        quantity = step * rng.randint(1, 5000)
        maker_bps = D(rng.choice(["0", "1", "2.5", "5", "7.25", "10", "30", "99.99"]))
        taker_bps = D(rng.choice(["0", "3", "10", "12.5", "25"]))
        side = rng.choice(["buy", "sell"])
        locked = (
            buy_reservation(price=price, quantity=quantity, fee_bps=maker_bps, quantum=quantum)
            if side == "buy"
            else quantity
        )
        maker = BookOrder(
            pk=2,
            order_id=uuid.uuid4(),
            account_pk=2,
            side=side,
            price=price,
            remaining=quantity,
            rest_quantity=quantity,
            locked=locked,
            maker_fee_bps=maker_bps,
        )
        reservation = locked
        spent = D(0)
        case = (seed, _case, side, price, quantity, maker_bps, taker_bps, quantum, step)
        while maker.remaining > 0:
            piece = _random_piece(rng, maker.remaining, step)
            taker = Incoming(
                account_pk=1,
                side="sell" if side == "buy" else "buy",
                order_type="market",
                price=None,
                quantity=piece,
                quote_quantity=None,
                time_in_force="",
                post_only=False,
                self_trade_prevention="expire_taker",
                taker_fee_bps=taker_bps,
                maker_fee_bps=D(0),
            )
            [match] = match_incoming(taker, [maker], terms).matches
            assert match.quantity == piece, case
            for amount in (match.taker_quote, match.taker_fee, match.maker_quote, match.maker_fee):
                assert _units(amount, quantum), (case, match)
            buyer_pays = match.maker_quote if side == "buy" else match.taker_quote
            seller_gets = match.taker_quote if side == "buy" else match.maker_quote
            exact = price * piece
            assert seller_gets <= exact.quantize(quantum, rounding=ROUND_CEILING), case
            assert buyer_pays >= exact.quantize(quantum, rounding=ROUND_FLOOR), case
            assert D(0) <= buyer_pays - seller_gets <= quantum, (case, match)
            assert match.rounding == buyer_pays - seller_gets, case
            spent += match.maker_quote + match.maker_fee if side == "buy" else piece
            assert spent <= reservation, case
            assert maker.locked == reservation - spent >= 0, case
        assert spent == reservation, case
        assert maker.filled_quantity == quantity and maker.locked == 0, case
        # Over its life the maker paid (or received) the whole order's amount rounded once, and one fee on it.
        rnd = ROUND_CEILING if side == "buy" else ROUND_FLOOR
        assert maker.filled_quote == (price * quantity).quantize(quantum, rounding=rnd), case
        assert maker.fee == (maker.filled_quote * maker_bps / 10000).quantize(quantum, rounding=ROUND_CEILING), case


def test_random_ladders_never_quote_more_than_the_house_holds():
    from markets.ladder import LadderSettings

    rng = random.Random(7)
    for _ in range(500):
        tick = rng.choice([D("0.01"), D("0.00001")])
        step = rng.choice([D("0.001"), D("0.00001")])
        settings = LadderSettings(
            reference_price=tick * rng.randint(100, 10_000_000),
            spread_bps=D(rng.randint(0, 100)),
            levels=rng.randint(0, 12),
            step_bps=D(rng.randint(0, 50)),
            size=step * rng.randint(0, 100_000),
            price_tick=tick,
            quantity_step=step,
        )
        base, quote = step * rng.randint(0, 200_000), D(rng.randint(0, 10_000_000))
        bids, asks = house_ladder(settings, base_inventory=base, quote_inventory=quote)
        assert sum(q for _, q in asks) <= base
        assert sum(p * q for p, q in bids) <= quote
        assert all(q > 0 and q % step == 0 for _, q in bids + asks)
        assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
        assert [p for p, _ in asks] == sorted({p for p, _ in asks})
        if bids and asks:
            assert bids[0][0] < settings.reference_price < asks[0][0] or settings.spread_bps == 0
            assert bids[0][0] < asks[0][0]

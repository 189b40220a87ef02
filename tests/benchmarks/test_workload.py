"""The benchmark's limit workload, as a generator of requests (no service, no database): what it sends is what
docs/benchmarks.md says it sends, and the same seed sends the same."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal as D

from benchmarks.workload import MARKETS, LimitWorkload, MarketWorkload, Touch
from markets.reference_data import MARKETS as REFERENCE

# The house's best bid and ask of the seeded markets (spread 10 bps around the reference price, on the tick).
TOUCHES = {
    "BTC-USD": Touch(bid=D("64967.50"), ask=D("65032.50"), tick=D("0.01")),
    "ETH-USD": Touch(bid=D("3498.25"), ask=D("3501.75"), tick=D("0.01")),
    "BTC-USDT": Touch(bid=D("64977.49"), ask=D("65042.51"), tick=D("0.01")),
    "ETH-USDT": Touch(bid=D("3499.24"), ask=D("3502.76"), tick=D("0.01")),
    "ETH-BTC": Touch(bid=D("0.05381"), ask=D("0.05388"), tick=D("0.00001")),
}
CLIENTS = 16


def drive(seed: int, steps: int) -> tuple[list, LimitWorkload]:
    """Every client sends ``steps`` requests; every maker order rests and every cancel succeeds."""
    workload = LimitWorkload(accounts=[f"acc-{i}" for i in range(CLIENTS)], touches=TOUCHES, seed=seed, tag="l")
    sent = []
    for _ in range(steps):
        for index in range(CLIENTS):
            intent = workload.next(index)
            sent.append((index, intent))
            if intent.kind == "maker_gtc":
                body = f'{{"order_id": "{uuid.uuid4()}", "status": "open", "fills": []}}'.encode()
                workload.observe(index, intent, 201, body)
    return sent, workload


def test_the_same_seed_sends_the_same_orders():
    def bodies(seed: int) -> list:
        sent, _ = drive(seed, 50)
        return [(i, x.kind, x.body) for i, x in sent if x.body]

    assert bodies(7) == bodies(7)
    assert bodies(7) != bodies(8)


def test_makers_rest_inside_the_spread_and_takers_cross_them_but_not_the_house():
    sent, _ = drive(1, 200)
    makers = {symbol: {"buy": [], "sell": []} for symbol in TOUCHES}
    takers = {symbol: {"buy": [], "sell": []} for symbol in TOUCHES}
    roles: dict[str, set] = {"maker_gtc": set(), "taker_ioc": set(), "taker_market": set()}
    for index, intent in sent:
        if intent.kind == "cancel":
            assert intent.method == "DELETE" and index % 2 == 0
            continue
        roles[intent.kind].add(index % 2)
        body = intent.body
        if intent.kind == "maker_gtc":
            assert body["time_in_force"] == "gtc"
            makers[body["symbol"]][body["side"]].append(D(body["price"]))
        elif intent.kind == "taker_ioc":
            assert body["time_in_force"] == "ioc"
            takers[body["symbol"]][body["side"]].append(D(body["price"]))
    assert roles == {"maker_gtc": {0}, "taker_ioc": {1}, "taker_market": {1}}
    for symbol, touch in TOUCHES.items():
        buys, sells = makers[symbol]["buy"], makers[symbol]["sell"]
        assert buys and sells and takers[symbol]["buy"] and takers[symbol]["sell"]
        assert all(p % touch.tick == 0 for p in buys + sells)
        # Strictly inside the house's spread (the best prices of the book); makers never cross each other.
        assert touch.bid < min(buys) and max(buys) < min(sells) and max(sells) < touch.ask
        # A taker's limit crosses every maker order on the other side, and stays inside the house's quotes.
        assert all(max(sells) <= p < touch.ask for p in takers[symbol]["buy"])
        assert all(touch.bid < p <= min(buys) for p in takers[symbol]["sell"])


def test_sizes_are_on_the_step_above_the_market_minimums():
    sent, _ = drive(2, 100)
    rules = {m["symbol"]: m for m in REFERENCE}
    for _, intent in sent:
        if not intent.body:
            continue
        symbol, quantity = intent.body["symbol"], D(intent.body["quantity"])
        step, _, high = MARKETS[symbol]
        assert quantity % rules[symbol]["quantity_step"] == 0 and quantity % step == 0
        assert quantity >= rules[symbol]["min_quantity"]
        assert quantity * rules[symbol]["reference_price"] >= rules[symbol]["min_notional"]
        assert quantity <= step * high


def test_about_a_third_of_resting_orders_are_cancelled_and_every_order_has_its_own_client_order_id():
    sent, workload = drive(3, 300)
    kinds = Counter(intent.kind for _, intent in sent)
    assert 0.28 < kinds["cancel"] / workload.counts["maker_rested"] < 0.39
    assert 0.2 < kinds["taker_market"] / (kinds["taker_market"] + kinds["taker_ioc"]) < 0.3
    ids = [(i, intent.body["client_order_id"]) for i, intent in sent if intent.body]
    assert len(ids) == len(set(ids))


def test_market_orders_are_seeded_and_carry_a_client_order_id():
    def orders(seed: int) -> list:
        workload = MarketWorkload(accounts=["a", "b"], seed=seed, tag="s")
        return [workload.next(i % 2).body for i in range(20)]

    first = orders(5)
    assert first == orders(5)
    assert {b["order_type"] for b in first} == {"market"}
    assert len({b["client_order_id"] for b in first}) == 20

"""The orders the benchmark sends: seeded, so the same ``--seed`` gives the same intents.

Two workloads, both on all five markets and both with a ``client_order_id`` on every order:

* ``MarketWorkload`` (the ``service`` phase; also the bodies of ``drf_trivial``): small random market buys and
  sells, filled against the house's ladder (the seeded house is far deeper than any run needs).
* ``LimitWorkload`` (the ``limit`` phase): a book between customers. Clients alternate roles by index, so makers
  and takers share every market and never meet themselves (self-trade prevention would expire the taker):

  - **makers** (even indexes) rest GTC limit orders strictly inside the house's spread, 1..``DEPTH`` ticks from the
    house's best bid (buys) or best ask (sells), so they are the best prices of the book; buys stay below sells,
    so makers never cross each other. A third of their resting orders (``CANCEL_SHARE``) are cancelled with the
    maker's next request (``DELETE /api/v1/orders/{order_id}``); one a taker filled first answers 409
    ``order_not_cancelable``.
  - **takers** (odd indexes) cross them: three in four are IOC limit orders one tick inside the house's touch (they
    match every maker order on that side and never the house: with nothing resting they expire unfilled), one in
    four are market orders (the makers first, then the house's ladder).

  Taker sizes come from the lower half of the makers' range: after cancels the makers supply about as much as the
  takers ask, so the book stays shallow and near the touch without running dry.

Sizes are whole multiples of each market's quantity step, above its minimum quantity and notional, so nothing is
refused by design. The decisions (role, market, side, price offset, size, type, whether to cancel) are drawn from
one ``random.Random`` per client, before the answer arrives; which order a cancel finds still open, and what a taker
matches, depends on timing.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# symbol -> (quantity step, smallest and largest number of steps per order)
MARKETS: dict[str, tuple[Decimal, int, int]] = {
    "BTC-USD": (Decimal("0.00001"), 10, 100),  # 0.0001-0.001 BTC, about 6.5-65 USD
    "ETH-USD": (Decimal("0.0001"), 10, 200),  # 0.001-0.02 ETH, about 3.5-70 USD
    "BTC-USDT": (Decimal("0.00001"), 10, 100),
    "ETH-USDT": (Decimal("0.0001"), 10, 200),
    "ETH-BTC": (Decimal("0.001"), 5, 50),  # 0.005-0.05 ETH, about 0.00027-0.0027 BTC
}
SYMBOLS = sorted(MARKETS)
# How far inside the house's spread makers rest (ticks from its touch), what share of resting orders is cancelled,
# and what share of taker orders are market orders.
DEPTH = 5
CANCEL_SHARE = 1 / 3
MARKET_SHARE = 1 / 4
RESTING = ("open", "partially_filled")


def random_order(rng: random.Random) -> tuple[str, str, Decimal]:
    """(symbol, side, quantity) of one market order."""
    symbol = rng.choice(SYMBOLS)
    step, low, high = MARKETS[symbol]
    return symbol, rng.choice(("buy", "sell")), step * rng.randint(low, high)


@dataclass(frozen=True)
class Intent:
    """One request a client sends: ``kind`` names it in the report; ``ok_status`` is its success answer and
    ``refused_status`` the answer that is a business refusal (counted by code, not as an error)."""

    kind: str
    method: str
    path: str
    body: dict[str, Any] | None
    ok_status: int = 201
    refused_status: int = 422
    cancel_later: bool = False  # a maker's order the maker cancels with its next request if it rests


def _market_body(account_id: str, symbol: str, side: str, quantity: Decimal, client_order_id: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "symbol": symbol,
        "side": side,
        "order_type": "market",
        "quantity": f"{quantity:f}",
        "client_order_id": client_order_id,
    }


class MarketWorkload:
    """Random small market orders on every market (the ``service`` phase)."""

    def __init__(self, *, accounts: list[str], seed: int, tag: str) -> None:
        self.accounts, self.tag = accounts, tag
        self.rngs = [random.Random(f"{seed}:{tag}:{i}") for i in range(len(accounts))]
        self.sent = [0] * len(accounts)

    def next(self, index: int) -> Intent:
        symbol, side, quantity = random_order(self.rngs[index])
        self.sent[index] += 1
        cid = f"{self.tag}-{index}-{self.sent[index]}"
        return Intent(
            "market", "POST", "/api/v1/orders", _market_body(self.accounts[index], symbol, side, quantity, cid)
        )

    def observe(self, index: int, intent: Intent, status: int, body: bytes) -> None:
        """Market orders need nothing from the answer."""


@dataclass(frozen=True)
class Touch:
    """The house's best bid and ask of a market (read from its book before any customer order rests) and the tick."""

    bid: Decimal
    ask: Decimal
    tick: Decimal

    @property
    def depth(self) -> int:
        """How many ticks inside the spread makers may rest on each side without buys reaching sells."""
        inside = int((self.ask - self.bid) / self.tick) - 1
        return max(0, min(DEPTH, inside // 2))

    def maker_price(self, side: str, ticks: int) -> Decimal:
        return self.bid + self.tick * ticks if side == "buy" else self.ask - self.tick * ticks

    def taker_limit(self, side: str) -> Decimal:
        """A limit that crosses every maker order on the other side and never the house (when there is room)."""
        inside = self.tick if self.depth else Decimal(0)
        return self.ask - inside if side == "buy" else self.bid + inside


@dataclass
class _Client:
    role: str
    rng: random.Random
    sent: int = 0
    to_cancel: list[str] = field(default_factory=list)  # order ids, cancelled one per request before placing


class LimitWorkload:
    """Makers resting limit orders inside the spread, takers crossing them, a third of resting orders cancelled."""

    def __init__(self, *, accounts: list[str], touches: dict[str, Touch], seed: int, tag: str) -> None:
        if set(touches) != set(SYMBOLS):
            raise ValueError(f"a touch is needed for every market: {sorted(touches)}")
        self.accounts, self.touches, self.tag = accounts, touches, tag
        self.clients = [
            _Client("maker" if i % 2 == 0 else "taker", random.Random(f"{seed}:{tag}:{i}"))
            for i in range(len(accounts))
        ]
        self.counts: Counter[str] = Counter()  # what the answers said (rested, taker fills, ...)

    def next(self, index: int) -> Intent:
        client = self.clients[index]
        if client.to_cancel:
            order_id = client.to_cancel.pop(0)
            return Intent("cancel", "DELETE", f"/api/v1/orders/{order_id}", None, ok_status=200, refused_status=409)
        client.sent += 1
        rng = client.rng
        symbol = rng.choice(SYMBOLS)
        side = rng.choice(("buy", "sell"))
        step, low, high = MARKETS[symbol]
        touch = self.touches[symbol]
        cid = f"{self.tag}-{index}-{client.sent}"
        account = self.accounts[index]
        if client.role == "maker":
            quantity = step * rng.randint(low, high)
            price = touch.maker_price(side, rng.randint(min(1, touch.depth), touch.depth))
            body = {
                "account_id": account,
                "symbol": symbol,
                "side": side,
                "order_type": "limit",
                "time_in_force": "gtc",
                "price": f"{price:f}",
                "quantity": f"{quantity:f}",
                "client_order_id": cid,
            }
            return Intent("maker_gtc", "POST", "/api/v1/orders", body, cancel_later=rng.random() < CANCEL_SHARE)
        quantity = step * rng.randint(low, (low + high) // 2)
        if rng.random() < MARKET_SHARE:
            return Intent("taker_market", "POST", "/api/v1/orders", _market_body(account, symbol, side, quantity, cid))
        body = {
            "account_id": account,
            "symbol": symbol,
            "side": side,
            "order_type": "limit",
            "time_in_force": "ioc",
            "price": f"{touch.taker_limit(side):f}",
            "quantity": f"{quantity:f}",
            "client_order_id": cid,
        }
        return Intent("taker_ioc", "POST", "/api/v1/orders", body)

    def observe(self, index: int, intent: Intent, status: int, body: bytes) -> None:
        """Learn from a placement's answer: a maker's order id if it rests, a taker's fills."""
        if intent.method != "POST" or status != 201:
            return
        order = json.loads(body)
        if intent.kind == "maker_gtc":
            if order["status"] in RESTING:
                self.counts["maker_rested"] += 1
                if intent.cancel_later:
                    self.clients[index].to_cancel.append(order["order_id"])
        else:
            fills = len(order.get("fills") or [])
            self.counts["taker_fills"] += fills
            self.counts[f"{intent.kind}_{'filled' if fills else 'unfilled'}"] += 1

    def makers(self) -> list[str]:
        return [a for a, c in zip(self.accounts, self.clients, strict=True) if c.role == "maker"]

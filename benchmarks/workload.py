"""The orders the benchmark places: small random market buys and sells spread over every market.

Sizes are whole multiples of each market's quantity step, always above its minimum quantity and notional, so no
order is rejected by design; the funded balances cover thousands of orders in either direction.
"""

from __future__ import annotations

import random
from decimal import Decimal

# symbol -> (quantity step, smallest and largest number of steps per order)
MARKETS: dict[str, tuple[Decimal, int, int]] = {
    "BTC-USD": (Decimal("0.00001"), 10, 100),  # 0.0001-0.001 BTC, about 6.5-65 USD
    "ETH-USD": (Decimal("0.0001"), 10, 200),  # 0.001-0.02 ETH, about 3.5-70 USD
    "BTC-USDT": (Decimal("0.00001"), 10, 100),
    "ETH-USDT": (Decimal("0.0001"), 10, 200),
    "ETH-BTC": (Decimal("0.001"), 5, 50),  # 0.005-0.05 ETH, about 0.00027-0.0027 BTC
}
SYMBOLS = sorted(MARKETS)


def random_order(rng: random.Random) -> tuple[str, str, Decimal]:
    """(symbol, side, quantity) of one order."""
    symbol = rng.choice(SYMBOLS)
    step, low, high = MARKETS[symbol]
    return symbol, rng.choice(("buy", "sell")), step * rng.randint(low, high)

"""Reads for markets: symbol spellings, lookups and USD valuation prices."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from exchange import errors
from markets.models import Market

_SYMBOL = re.compile(r"^([A-Za-z]{2,10})[-/_]([A-Za-z]{2,10})$")


def symbol_normalize(symbol: Any) -> str:
    """ "BTC-USD", "BTC/USD", "btc_usd" -> "BTC-USD"."""
    match = _SYMBOL.match(str(symbol).strip())
    if not match:
        raise errors.UnknownSymbol(f"Unknown market symbol {symbol!r}.", details={"symbol": str(symbol)[:40]})
    return f"{match.group(1).upper()}-{match.group(2).upper()}"


def market_list() -> QuerySet[Market]:
    return Market.objects.all().order_by("symbol")


def market_get(*, symbol: Any) -> Market:
    normalized = symbol_normalize(symbol)
    market = Market.objects.filter(symbol=normalized).first()
    if market is None:
        raise errors.UnknownSymbol(
            f"Unknown market symbol {symbol!r}.",
            details={"symbol": str(symbol)[:40], "known": list(Market.objects.values_list("symbol", flat=True))},
        )
    return market


def usd_prices() -> dict[str, Decimal] | None:
    """USD value of one unit of each asset, from the USD markets' reference prices. USDT is valued at its
    1:1 peg (the simulator has no USDT-USD market). None when no market exists yet."""
    prices = dict(Market.objects.filter(quote_asset_id="USD").values_list("base_asset_id", "reference_price"))
    if not prices:
        return None
    return {"USD": Decimal(1), "USDT": Decimal(1), **prices}

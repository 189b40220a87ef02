"""Reads for markets: symbol spellings, lookups and USD valuation prices."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from exchange import errors
from markets.models import Market

_SYMBOL = re.compile(r"^([A-Za-z]{2,10})[-/_]([A-Za-z]{2,10})$")


_JOINED = re.compile(r"^[A-Za-z0-9]{4,20}$")
# "BTCUSD" -> "BTC-USD" for every market; markets are only ever added, so a miss reloads once.
_JOINED_SYMBOLS: dict[str, str] = {}


def symbol_normalize(symbol: Any) -> str:
    """ "BTC-USD", "BTC/USD", "btc_usd", "BTCUSD" -> "BTC-USD"."""
    text = str(symbol).strip()
    match = _SYMBOL.match(text)
    if match:
        return f"{match.group(1).upper()}-{match.group(2).upper()}"
    if _JOINED.match(text):
        joined = text.upper()
        if joined not in _JOINED_SYMBOLS:
            _JOINED_SYMBOLS.update(
                {f"{b}{q}": s for s, b, q in Market.objects.values_list("symbol", "base_asset_id", "quote_asset_id")}
            )
        if joined in _JOINED_SYMBOLS:
            return _JOINED_SYMBOLS[joined]
    raise errors.UnknownSymbol(f"Unknown market symbol {symbol!r}.", details={"symbol": text[:40]})


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


# A market's identity (id, symbol, assets) never changes; its price, status and rules do, and the order path reads
# those again under the market's lock (orders/store.py).
_IDENTITIES: dict[str, tuple[int, str, str]] = {}


def clear_identities() -> None:
    _IDENTITIES.clear()
    _JOINED_SYMBOLS.clear()


def market_for_trading(*, symbol: Any) -> Market:
    """The market of a symbol in any spelling, without a query once seen: a Market carrying its identity only
    (id, symbol, base and quote asset)."""
    normalized = symbol_normalize(symbol)
    identity = _IDENTITIES.get(normalized)
    if identity is None:
        market = market_get(symbol=normalized)
        identity = _IDENTITIES[normalized] = (market.pk, market.base_asset_id, market.quote_asset_id)
    pk, base, quote = identity
    return Market(id=pk, symbol=normalized, base_asset_id=base, quote_asset_id=quote)


_USD_PRICES_SQL = "SELECT base_asset_id, reference_price FROM markets_market WHERE quote_asset_id = 'USD'"


def usd_prices() -> dict[str, Decimal] | None:
    """USD value of one unit of each asset, from the USD markets' reference prices. USDT is valued at its
    1:1 peg (the simulator has no USDT-USD market). None when no market exists yet."""
    from django.db import connection

    if connection.vendor == "postgresql":  # asked for by every position read: one prepared statement
        from exchange.db.postgresql import statements

        prices = dict(statements.rows(_USD_PRICES_SQL))
    else:  # the ORM: SQLite's own cursor would give floats for NUMERIC columns
        prices = dict(Market.objects.filter(quote_asset_id="USD").values_list("base_asset_id", "reference_price"))
    if not prices:
        return None
    return {"USD": Decimal(1), "USDT": Decimal(1), **prices}

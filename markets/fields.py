"""The market symbol as an input (body field, query or path parameter): exactly the listed markets, in the
spellings the API accepts ("BTC-USD", "BTC/USD", "btc_usd", "BTCUSD": any case, separator -, /, _ or none), and the
same rule in the OpenAPI schema (one regular expression built from the reference data)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from exchange import errors
from exchange.api import PatternField, any_case
from markets.reference_data import MARKETS


def symbol_pattern() -> str:
    spellings = sorted(f"{any_case(m['base'])}[-/_]?{any_case(m['quote'])}" for m in MARKETS)
    return rf"^(?:{'|'.join(spellings)})$"


SYMBOLS = sorted(m["symbol"] for m in MARKETS)
SYMBOL_HELP = f"A listed market: {', '.join(SYMBOLS)} (also spelled BTC/USD, btc_usd or BTCUSD)."


class SymbolField(PatternField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", SYMBOL_HELP)
        kwargs.setdefault("max_length", 21)
        super().__init__(symbol_pattern(), code=errors.UnknownSymbol.code, **kwargs)
        self.error_messages[errors.UnknownSymbol.code] = f"Unknown market symbol; the markets: {', '.join(SYMBOLS)}."


SYMBOL_PARAMETER = OpenApiParameter(
    "symbol",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description=SYMBOL_HELP,
    pattern=symbol_pattern(),
)

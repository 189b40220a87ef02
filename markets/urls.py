from __future__ import annotations

from django.urls import path, re_path

from markets import apis

# A symbol may be spelled "BTC-USD", "BTC/USD", "btc_usd" or "BTCUSD"; the slash form needs a regex route.
SYMBOL = r"(?P<symbol>[A-Za-z0-9]{1,10}[-/_][A-Za-z0-9]{1,10}|[A-Za-z0-9]{4,20})"

urlpatterns = [
    path("markets", apis.MarketListApi.as_view(), name="market-list"),
    re_path(rf"^markets/{SYMBOL}/price$", apis.MarketPriceApi.as_view(), name="market-price"),
    re_path(rf"^markets/{SYMBOL}/halt$", apis.MarketHaltApi.as_view(), name="market-halt"),
    re_path(rf"^markets/{SYMBOL}/resume$", apis.MarketResumeApi.as_view(), name="market-resume"),
    re_path(rf"^markets/{SYMBOL}/book$", apis.MarketBookApi.as_view(), name="market-book"),
    re_path(rf"^markets/{SYMBOL}/trades$", apis.MarketTapeApi.as_view(), name="market-trades"),
    re_path(rf"^markets/{SYMBOL}/ticker$", apis.MarketTickerApi.as_view(), name="market-ticker"),
    re_path(rf"^markets/{SYMBOL}/candles$", apis.MarketCandlesApi.as_view(), name="market-candles"),
    # After the routes under a market: "BTCUSD/book" also reads as a slash-separated symbol.
    re_path(rf"^markets/{SYMBOL}$", apis.MarketDetailApi.as_view(), name="market-detail"),
    # The names the ecosystem's plans use for the same data.
    re_path(rf"^orderbook/{SYMBOL}$", apis.MarketBookApi.as_view(), name="orderbook"),
    re_path(rf"^trades/{SYMBOL}/recent$", apis.MarketTapeApi.as_view(), name="trades-recent"),
]

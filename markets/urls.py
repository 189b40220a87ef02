from __future__ import annotations

from django.urls import path, re_path

from markets import apis

# A symbol may be spelled "BTC-USD", "BTC/USD" or "btc_usd"; the slash form needs a regex route.
SYMBOL = r"(?P<symbol>[A-Za-z0-9]{1,10}[-/_][A-Za-z0-9]{1,10})"

urlpatterns = [
    path("markets", apis.MarketListApi.as_view(), name="market-list"),
    re_path(rf"^markets/{SYMBOL}$", apis.MarketDetailApi.as_view(), name="market-detail"),
    re_path(rf"^markets/{SYMBOL}/price$", apis.MarketPriceApi.as_view(), name="market-price"),
    re_path(rf"^markets/{SYMBOL}/halt$", apis.MarketHaltApi.as_view(), name="market-halt"),
    re_path(rf"^markets/{SYMBOL}/resume$", apis.MarketResumeApi.as_view(), name="market-resume"),
]

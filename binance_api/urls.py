"""/api/v3: the Binance Spot REST API (binance_api/views.py)."""

from __future__ import annotations

from django.urls import path

from binance_api import views

urlpatterns = [
    path("ping", views.ping),
    path("time", views.server_time),
    path("exchangeInfo", views.exchange_info),
    path("depth", views.depth),
    path("trades", views.trades),
    path("aggTrades", views.agg_trades),
    path("klines", views.klines),
    path("avgPrice", views.avg_price),
    path("ticker/24hr", views.ticker_24hr),
    path("ticker/price", views.ticker_price),
    path("ticker/bookTicker", views.book_ticker),
    path("order", views.order),
    path("order/test", views.order_test),
    path("openOrders", views.open_orders),
    path("allOrders", views.all_orders),
    path("myTrades", views.my_trades),
    path("account", views.account),
    path("userDataStream", views.user_data_stream),
]

from __future__ import annotations

from django.urls import path

from orders import apis

urlpatterns = [
    path("orders", apis.OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<str:order_id>", apis.OrderDetailApi.as_view(), name="order-detail"),
    path("trades", apis.TradeListApi.as_view(), name="trade-list"),
]

"""Positions and risk monitoring (read-only views over the ledger, orders and trades)."""

from __future__ import annotations

from django.urls import path

from risk import position_apis, risk_apis

urlpatterns = [
    path("positions", position_apis.PositionListApi.as_view(), name="position-list"),
    path("positions/<str:position_id>", position_apis.PositionDetailApi.as_view(), name="position-detail"),
    path("risk/summary", risk_apis.RiskSummaryApi.as_view(), name="risk-summary"),
    path("accounts/<str:account_id>/risk", risk_apis.AccountRiskApi.as_view(), name="account-risk"),
]

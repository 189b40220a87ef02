from __future__ import annotations

from django.urls import path

from simulation import apis

urlpatterns = [
    path("scenarios", apis.ScenarioListApi.as_view(), name="scenario-list"),
    path("scenarios/current", apis.ScenarioCurrentApi.as_view(), name="scenario-current"),
    path("accounts/<str:account_id>/reset", apis.AccountResetApi.as_view(), name="account-reset"),
]

from __future__ import annotations

from django.urls import path

from ledger import apis

urlpatterns = [
    path("reconciliation", apis.ReconciliationApi.as_view(), name="reconciliation"),
]

from __future__ import annotations

from django.urls import path

from accounts import apis

urlpatterns = [
    path("accounts", apis.AccountListCreateApi.as_view(), name="account-list"),
    path("api-keys", apis.ApiKeyCreateApi.as_view(), name="api-key-create"),
    path("accounts/<str:account_id>", apis.AccountDetailApi.as_view(), name="account-detail"),
    path("accounts/<str:account_id>/balances", apis.AccountBalancesApi.as_view(), name="account-balances"),
    path("accounts/<str:account_id>/transactions", apis.AccountTransactionsApi.as_view(), name="account-transactions"),
    path("accounts/<str:account_id>/audit", apis.AccountAuditApi.as_view(), name="account-audit"),
    path("accounts/<str:account_id>/deposits", apis.AccountDepositApi.as_view(), name="account-deposits"),
    path("accounts/<str:account_id>/withdrawals", apis.AccountWithdrawalApi.as_view(), name="account-withdrawals"),
    path("accounts/<str:account_id>/adjustments", apis.AccountAdjustmentApi.as_view(), name="account-adjustments"),
    path("accounts/<str:account_id>/suspend", apis.AccountSuspendApi.as_view(), name="account-suspend"),
    path("accounts/<str:account_id>/reactivate", apis.AccountReactivateApi.as_view(), name="account-reactivate"),
    path("accounts/<str:account_id>/close", apis.AccountCloseApi.as_view(), name="account-close"),
]

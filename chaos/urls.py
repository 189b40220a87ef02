"""/chaos at the root (ECOSYSTEM.md, "Chaos API the test coordinator calls")."""

from django.urls import path

from chaos import apis

urlpatterns = [
    path("inject-latency", apis.LatencyApi.as_view(), name="chaos-inject-latency"),
    path("reject-orders", apis.RejectOrdersApi.as_view(), name="chaos-reject-orders"),
    path("simulate-downtime", apis.DowntimeApi.as_view(), name="chaos-simulate-downtime"),
    path("manipulate-spreads", apis.SpreadsApi.as_view(), name="chaos-manipulate-spreads"),
    path("reduce-liquidity", apis.LiquidityApi.as_view(), name="chaos-reduce-liquidity"),
    path("restore-liquidity", apis.RestoreLiquidityApi.as_view(), name="chaos-restore-liquidity"),
    path("partial-fills", apis.PartialFillsApi.as_view(), name="chaos-partial-fills"),
    path("unknown-outcome", apis.UnknownOutcomeApi.as_view(), name="chaos-unknown-outcome"),
    path("tighten-rate-limits", apis.RateLimitsApi.as_view(), name="chaos-tighten-rate-limits"),
    path("status", apis.StatusApi.as_view(), name="chaos-status"),
    path("history", apis.HistoryApi.as_view(), name="chaos-history"),
    path("clear-all", apis.ClearAllApi.as_view(), name="chaos-clear-all"),
    path("<str:chaos_id>", apis.ClearApi.as_view(), name="chaos-clear"),
]

"""REST endpoints for risk monitoring (computed in risk/monitoring.py; see its docstring for the definitions)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import ACCOUNT_ID
from accounts.permissions import MonitorScope, ReadScope
from accounts.selectors import account_get
from risk.monitoring import account_risk, risk_summary


def _amount(help_text: str = "", **kwargs: object) -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=help_text or "Decimal as a string.", **kwargs)  # type: ignore[arg-type]


class RiskAssetOut(serializers.Serializer):
    asset = serializers.CharField()
    price_usd = _amount("USD value of one unit now (null without a USD market).")
    house_inventory = _amount("House liquidity (sum of its shards).")
    house_inventory_usd = _amount()
    house_funding = _amount("What operators moved into house liquidity, net.")
    house_funding_usd = _amount()
    net_exposure = _amount("house_inventory - house_funding: what trading changed (positive: the house is long).")
    net_exposure_usd = _amount()
    customer_liabilities = _amount("Sum of customer balances (available + locked).")
    customer_liabilities_usd = _amount()
    fees_earned = _amount("Fee revenue books.")
    fees_earned_usd = _amount()


class RiskTotalsOut(serializers.Serializer):
    house_inventory_usd = _amount(required=False)
    house_funding_usd = _amount(required=False)
    net_exposure_usd = _amount(required=False)
    customer_liabilities_usd = _amount(required=False)
    fees_earned_usd = _amount(required=False)


class OrderFlowOut(serializers.Serializer):
    minutes = serializers.IntegerField()
    orders = serializers.IntegerField()
    rejections = serializers.IntegerField()
    orders_per_minute = serializers.CharField()
    rejections_per_minute = serializers.CharField()


class AccountNearLimitOut(serializers.Serializer):
    account_id = serializers.UUIDField()
    equity_usd = _amount()
    largest_asset = serializers.CharField(allow_null=True)
    concentration = _amount("Share of equity in the largest non-cash asset, 0..1.")
    cash_available_usd = _amount("Available USD + USDT.")


class RiskAlertOut(serializers.Serializer):
    alert = serializers.ChoiceField(
        choices=[("house_inventory_low", "house_inventory_low"), ("rejection_rate_high", "rejection_rate_high")]
    )
    asset = serializers.CharField(allow_null=True)
    value = serializers.CharField()
    threshold = serializers.CharField()


class RiskThresholdsOut(serializers.Serializer):
    house_inventory_low_usd = serializers.CharField()
    rejection_rate_high_per_min = serializers.CharField()


class RiskSummaryOut(serializers.Serializer):
    computed_at = serializers.DateTimeField()
    assets = RiskAssetOut(many=True)
    totals = RiskTotalsOut()
    order_flow = OrderFlowOut(many=True)
    accounts_nearest_limits = AccountNearLimitOut(many=True)
    thresholds = RiskThresholdsOut()
    alerts = RiskAlertOut(many=True)


class AccountRiskAssetOut(serializers.Serializer):
    asset = serializers.CharField()
    total = serializers.CharField()
    available = serializers.CharField()
    price_usd = _amount()
    value_usd = _amount()
    share_of_equity = _amount("0..1; null when the equity is zero or the asset has no price.")
    cash = serializers.BooleanField(help_text="USD and USDT are cash; the others are exposure.")


class RecentRejectionOut(serializers.Serializer):
    order_id = serializers.UUIDField()
    symbol = serializers.CharField()
    side = serializers.CharField()
    reason = serializers.CharField()
    message = serializers.CharField()
    created_at = serializers.DateTimeField()


class AccountRiskOut(serializers.Serializer):
    account_id = serializers.UUIDField()
    status = serializers.CharField()
    computed_at = serializers.DateTimeField()
    equity_usd = _amount("Every balance at USD reference prices.")
    cash_available_usd = _amount()
    largest_asset = serializers.CharField(allow_null=True)
    concentration = _amount("Share of equity in the largest non-cash asset, 0..1.")
    assets = AccountRiskAssetOut(many=True)
    order_flow = OrderFlowOut(many=True)
    recent_rejections = RecentRejectionOut(many=True)


class RiskSummaryApi(APIView):
    permission_classes = [MonitorScope]

    @extend_schema(
        responses={200: RiskSummaryOut},
        tags=["risk"],
        summary="House inventory, exposure, liabilities, fees, order flow, accounts nearest their limits, alerts",
        description="Computing the summary also sets the exchange_* Prometheus gauges and logs a warning for each "
        "alert that holds (thresholds: risk.house_inventory_low_usd, risk.rejection_rate_high_per_min).",
    )
    def get(self, request: Request) -> Response:
        return Response(RiskSummaryOut(risk_summary()).data)


class AccountRiskApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[ACCOUNT_ID],
        responses={200: AccountRiskOut},
        tags=["accounts"],
        summary="An account's equity, exposure and concentration per asset, and its recent rejections",
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = account_get(account_id=account_id, user=request.user, key=request.auth)
        return Response(AccountRiskOut(account_risk(account=account)).data)

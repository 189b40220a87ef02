"""REST endpoint for reconciliation: operators run the same proof as ``manage.py reconcile`` over the API."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import MonitorScope
from ledger.reconciliation import reconcile


class ReconciliationOut(serializers.Serializer):
    ok = serializers.BooleanField(help_text="True when there is no discrepancy.")
    checks = serializers.DictField(child=serializers.IntegerField(), help_text="Check name -> rows examined.")
    totals = serializers.DictField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text="Asset -> group (customers, house, fees, external, sum) -> ledger total, as a decimal string.",
    )
    discrepancies = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text="One object per problem: 'check' names it; the other keys name the rows (order_id, trade_id, "
        "entry_id, account_id, asset ...) and the expected and actual values.",
    )


class ReconciliationApi(APIView):
    """Answers 200 whether or not the books reconcile: the report is the resource and it was produced. A failed
    reconciliation is a finding about the books, not a failed request, so monitors branch on ``ok`` (an HTTP error
    would be retried by clients and alerted on as an outage of this service)."""

    permission_classes = [MonitorScope]

    @extend_schema(
        responses={
            200: OpenApiResponse(ReconciliationOut, description="The report; ok=false lists the discrepancies."),
        },
        examples=[
            OpenApiExample(
                "A failed reconciliation",
                value={
                    "ok": False,
                    "checks": {"entries": 12, "books": 72, "customer_balances": 8, "assets": 4, "trades": 3},
                    "totals": {"BTC": {"customers": "0.1", "house": "79.9", "external": "-80", "sum": "0"}},
                    "discrepancies": [
                        {
                            "check": "trade_pricing_mismatch",
                            "trade_id": "7ff435af-84b9-4da1-b4b3-262e98c84487",
                            "order_id": "dc262c8b-1077-47e3-89f0-5e649833832d",
                            "entry_id": "faa86a28-a736-4d65-9777-830d470da16a",
                            "field": "price",
                            "expected": "65032.5",
                            "actual": "1",
                        }
                    ],
                },
                response_only=True,
            )
        ],
        tags=["risk"],
        summary="Prove the books: caches equal the ledger, entries balance, every fill settled as priced",
    )
    def get(self, request: Request) -> Response:
        return Response(ReconciliationOut(reconcile().as_dict()).data)

"""The chaos API under /chaos (the ecosystem test coordinator's ``chaos_api_path``): operator keys only.

Every injection answers 200 with its ``chaos_id`` (the coordinator treats anything else as a failure and clears by
that id). With ``CHAOS_ENABLED`` off every endpoint answers 404.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import OperatorScope
from chaos import selectors, services
from chaos import serializers as s
from chaos.models import ChaosType, Injection
from exchange import errors
from exchange.api import page_of, paginate, raise_validation
from exchange.schema import error_codes

CHAOS_ID = OpenApiParameter(
    "chaos_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The id an injection answered with."
)


def injection_json(injection: Injection) -> dict[str, Any]:
    now = timezone.now()
    if injection.cleared_at is not None:
        status = "cleared"
    elif injection.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return {
        "chaos_id": injection.chaos_id,
        "type": injection.type,
        "status": status,
        "params": injection.params,
        "scope": {"operations": injection.operations, "accounts": injection.accounts, "markets": injection.markets},
        "seed": injection.seed,
        "created_at": injection.created_at,
        "expires_at": injection.expires_at,
        "remaining_s": round(max(0.0, (injection.expires_at - now).total_seconds()), 3) if status == "active" else 0.0,
        "cleared_at": injection.cleared_at,
        "cleared_reason": injection.cleared_reason,
        "affected": injection.affected,
    }


class _ChaosApi(APIView):
    permission_classes = [OperatorScope]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not settings.CHAOS_ENABLED:
            raise errors.NotFound("No such endpoint.")
        super().initial(request, *args, **kwargs)


def _inject_view(kind: str, serializer: type[serializers.Serializer], path: str, summary: str) -> type[APIView]:
    class InjectApi(_ChaosApi):
        @extend_schema(
            operation_id=f"chaos_{path.replace('-', '_')}",
            request=serializer,
            responses={200: s.InjectionOut},
            extensions=error_codes(errors.UnknownSymbol),
            tags=["chaos"],
            summary=summary,
        )
        def post(self, request: Request) -> Response:
            data = raise_validation(serializer(data=s.normalize(request.data)))
            common = {
                n: data.pop(n, None)
                for n in ("duration_s", "duration", "seed", "operations", "affected_accounts", "symbols")
            }
            if common["duration_s"] is None and common["duration"]:
                common["duration_s"] = s.duration_seconds(common["duration"])
            injection = services.injection_create(
                kind=kind,
                params=data,
                actor=request.user,
                duration_s=common["duration_s"],
                seed=common["seed"],
                operations=common["operations"],
                accounts=common["affected_accounts"],
                symbols=common["symbols"],
            )
            return Response(s.InjectionOut(injection_json(injection)).data)

    InjectApi.__name__ = InjectApi.__qualname__ = f"Chaos{kind.title().replace('_', '')}Api"
    return InjectApi


LatencyApi = _inject_view(
    ChaosType.LATENCY, s.LatencyIn, "inject-latency", "Delay requests (fixed delay plus jitter) before they are handled"
)
RejectOrdersApi = _inject_view(
    ChaosType.REJECT_ORDERS, s.RejectOrdersIn, "reject-orders", "Reject a share of orders with the reason given"
)
DowntimeApi = _inject_view(
    ChaosType.DOWNTIME,
    s.DowntimeIn,
    "simulate-downtime",
    "Downtime: every trading call 503 with Retry-After, readiness 503, gRPC health NOT_SERVING",
)
SpreadsApi = _inject_view(
    ChaosType.SPREADS, s.SpreadsIn, "manipulate-spreads", "Multiply the house's spread on the markets named"
)
LiquidityApi = _inject_view(
    ChaosType.LIQUIDITY, s.LiquidityIn, "reduce-liquidity", "Thin the house's depth on the markets named"
)
PartialFillsApi = _inject_view(
    ChaosType.PARTIAL_FILLS,
    s.PartialFillsIn,
    "partial-fills",
    "Cap the share of an order filled per match (with a probability); the rest as its time in force says",
)
UnknownOutcomeApi = _inject_view(
    ChaosType.UNKNOWN_OUTCOME,
    s.UnknownOutcomeIn,
    "unknown-outcome",
    "Orders execute and commit, but the answer is lost (504 or a dropped connection)",
)
RateLimitsApi = _inject_view(
    ChaosType.RATE_LIMITS,
    s.RateLimitsIn,
    "tighten-rate-limits",
    "Tighten the per-key request weight and order limits for a while",
)


class RestoreLiquidityApi(_ChaosApi):
    @extend_schema(
        operation_id="chaos_restore_liquidity",
        request=s.RestoreLiquidityIn,
        responses={200: s.ClearedOut},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["chaos"],
        summary="End the liquidity reductions on the markets named (all when none)",
    )
    def post(self, request: Request) -> Response:
        data = raise_validation(s.RestoreLiquidityIn(data=s.normalize(request.data)))
        action, cleared = services.liquidity_restore(actor=request.user, symbols=data.get("symbols"))
        ids = [i.chaos_id for i in cleared]
        return Response({"chaos_id": action.chaos_id, "cleared": ids, "count": len(ids)})


class StatusApi(_ChaosApi):
    @extend_schema(
        operation_id="chaos_status", responses={200: s.StatusOut}, tags=["chaos"], summary="Everything in force"
    )
    def get(self, request: Request) -> Response:
        from exchange import key_limits

        active = [injection_json(i) for i in selectors.injection_in_force()]
        return Response(
            {
                "enabled": settings.CHAOS_ENABLED,
                "count": len(active),
                "active": s.InjectionOut(active, many=True).data,
                "rate_limits": key_limits.limits_in_force(),
            }
        )


class HistoryApi(_ChaosApi):
    @extend_schema(
        operation_id="chaos_history",
        parameters=[selectors.HistoryFilterIn],
        responses={200: page_of(s.InjectionOut, "injections")},
        tags=["chaos"],
        summary="Every injection, newest first (cursor pagination)",
    )
    def get(self, request: Request) -> Response:
        from exchange.api import query_params

        filters = query_params(request, selectors.HistoryFilterIn)
        qs = selectors.injection_history(**filters)
        return paginate(self, qs, _HistoryItem, "injections")


class _HistoryItem(serializers.BaseSerializer):
    def to_representation(self, instance: Injection) -> dict[str, Any]:
        return dict(s.InjectionOut(injection_json(instance)).data)


class ClearAllApi(_ChaosApi):
    @extend_schema(
        operation_id="chaos_clear_all", responses={200: s.ClearedOut}, tags=["chaos"], summary="End every injection"
    )
    def delete(self, request: Request) -> Response:
        cleared = services.injection_clear_all(actor=request.user)
        ids = [i.chaos_id for i in cleared]
        return Response({"chaos_id": ids[0] if ids else "", "cleared": ids, "count": len(ids)})


class ClearApi(_ChaosApi):
    @extend_schema(
        operation_id="chaos_clear",
        parameters=[CHAOS_ID],
        responses={200: s.InjectionOut},
        tags=["chaos"],
        summary="End one injection (one that has ended already answers as it is)",
    )
    def delete(self, request: Request, chaos_id: str) -> Response:
        injection = services.injection_clear(chaos_id=chaos_id, actor=request.user)
        return Response(s.InjectionOut(injection_json(injection)).data)

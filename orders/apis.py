"""REST endpoints for orders and trades."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.permissions import ReadScope, TradeScope
from exchange import errors
from exchange.api import COMMON_ERRORS, paginate, raise_validation
from markets import selectors as market_selectors
from orders import selectors, services
from orders.matching import RejectReason
from orders.models import OrderStatus
from orders.rendering import order_json
from orders.serializers import (
    CancelAllIn,
    OrderFilterIn,
    OrderIn,
    OrderOut,
    TradeFilterIn,
    TradeOut,
)

REJECTION_CODES = ", ".join(RejectReason)


class OrderListCreateApi(APIView):
    def get_permissions(self) -> list[Any]:
        return [TradeScope()] if self.request.method in ("POST", "DELETE") else [ReadScope()]

    @extend_schema(
        parameters=[CancelAllIn],
        responses={200: OrderOut(many=True), **COMMON_ERRORS},
        tags=["orders"],
        summary="Cancel every resting order of an account (optionally on one market)",
        operation_id="v1_orders_cancel_all",
    )
    def delete(self, request: Request) -> Response:
        data = raise_validation(CancelAllIn(data=request.query_params))
        account = account_selectors.account_get(account_id=data["account_id"], user=request.user, key=None)
        market = market_selectors.market_get(symbol=data["symbol"]) if data.get("symbol") else None
        cancelled = services.order_cancel_all(account=account, market=market, actor=request.user)
        orders = selectors.order_list(user=request.user, key=None).filter(pk__in=[o.pk for o in cancelled])
        return Response({"orders": OrderOut(orders.prefetch_related(selectors.FILLS), many=True).data})

    @extend_schema(
        parameters=[OrderFilterIn],
        responses={200: OrderOut(many=True), **COMMON_ERRORS},
        tags=["orders"],
        summary="Orders, newest first (cursor pagination)",
    )
    def get(self, request: Request) -> Response:
        filters = raise_validation(OrderFilterIn(data=request.query_params))
        filters.pop("cursor", None)
        filters.pop("limit", None)
        qs = selectors.order_list(user=request.user, key=request.auth, **filters).prefetch_related(selectors.FILLS)
        return paginate(self, qs, OrderOut, "orders")

    @extend_schema(
        request=OrderIn,
        responses={
            201: OrderOut,
            200: OpenApiResponse(OrderOut, description="Idempotent replay of the same client_order_id"),
            **COMMON_ERRORS,
            409: OpenApiResponse(description="client_order_id_conflict"),
            401: OpenApiResponse(description="not_authenticated (also: the key was revoked while the order was sent)"),
            422: OpenApiResponse(
                description=f"Rejected and recorded; code is the reason: {REJECTION_CODES}. "
                "details.order_id and details.order identify the stored order."
            ),
        },
        tags=["orders"],
        summary="Place a market or limit order: it matches the book at once; a GTC limit remainder rests",
    )
    def post(self, request: Request) -> Response:
        data = raise_validation(OrderIn(data=request.data))
        # Orders are placed on one's own accounts only; an operator key has no trade scope.
        account = account_selectors.account_for_trading(account_id=data["account_id"], user=request.user)
        market = market_selectors.market_for_trading(symbol=data["symbol"])
        placed, created = services.order_place(
            request=services.OrderRequest(
                account=account,
                market=market,
                side=data["side"],
                order_type=data["order_type"],
                quantity=data["quantity"],
                quote_quantity=data["quote_quantity"],
                price=data["price"],
                time_in_force=data["time_in_force"],
                post_only=data["post_only"],
                self_trade_prevention=data["self_trade_prevention"],
                client_order_id=data["client_order_id"],
                key_id=getattr(request.auth, "pk", None),
            ),
            actor=request.user,
        )
        order = placed.order
        body = order_json(order, placed.fills)  # = OrderOut(order, context={"fills": placed.fills}).data, faster
        if order.status == OrderStatus.REJECTED:
            raise errors.OrderRejected(
                order.reject_reason,
                order.reject_message or None,
                details={"order_id": str(order.order_id), "order": body},
            )
        return Response(body, status=201 if created else 200)


class OrderDetailApi(APIView):
    def get_permissions(self) -> list[Any]:
        return [TradeScope()] if self.request.method == "DELETE" else [ReadScope()]

    @extend_schema(responses={200: OrderOut, **COMMON_ERRORS}, tags=["orders"])
    def get(self, request: Request, order_id: str) -> Response:
        return Response(OrderOut(selectors.order_get(order_id=order_id, user=request.user, key=request.auth)).data)

    @extend_schema(
        responses={200: OrderOut, **COMMON_ERRORS, 409: OpenApiResponse(description="order_not_cancelable")},
        tags=["orders"],
        summary="Cancel a resting order and release its reservation (a final order answers 409)",
    )
    def delete(self, request: Request, order_id: str) -> Response:
        order = selectors.order_get(order_id=order_id, user=request.user, key=None)
        services.order_cancel(order=order, actor=request.user)
        return Response(OrderOut(selectors.order_get(order_id=order_id, user=request.user, key=None)).data)


class TradeListApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[TradeFilterIn],
        responses={200: TradeOut(many=True), **COMMON_ERRORS},
        tags=["orders"],
        summary="Trades (fills), newest first (cursor pagination)",
    )
    def get(self, request: Request) -> Response:
        filters = raise_validation(TradeFilterIn(data=request.query_params))
        filters.pop("cursor", None)
        filters.pop("limit", None)
        qs = selectors.trade_list(user=request.user, key=request.auth, **filters)
        return paginate(self, qs, TradeOut, "trades")

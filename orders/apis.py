"""REST endpoints for orders and trades."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.permissions import ReadScope, TradeScope
from chaos.effects import lost_answer
from exchange import errors
from exchange.api import page_of, paginate, query_params, raise_validation
from exchange.schema import error_codes
from markets import selectors as market_selectors
from orders import selectors, services
from orders.matching import RejectReason
from orders.models import OrderStatus
from orders.rendering import order_json
from orders.serializers import (
    ORDER_IN_SCHEMA,
    CancelAllIn,
    CancelledOrdersOut,
    OrderFilterIn,
    OrderIn,
    OrderOut,
    TradeFilterIn,
    TradeOut,
)

# The reasons a placed order is rejected (stored, and answered 422 with the reason as the error code).
REJECTION_CODES = [reason.value for reason in RejectReason]
ORDER_ID = OpenApiParameter("order_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The order's id.")


class OrderListCreateApi(APIView):
    def get_permissions(self) -> list[Any]:
        return [TradeScope()] if self.request.method in ("POST", "DELETE") else [ReadScope()]

    @extend_schema(
        operation_id="v1_orders_list",
        parameters=[OrderFilterIn],
        responses={200: page_of(OrderOut, "orders")},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["orders"],
        summary="Orders, newest first (cursor pagination)",
    )
    def get(self, request: Request) -> Response:
        filters = query_params(request, OrderFilterIn)
        qs = selectors.order_list(user=request.user, key=request.auth, **filters).prefetch_related(selectors.FILLS)
        return paginate(self, qs, OrderOut, "orders")

    @extend_schema(
        operation_id="v1_orders_cancel_all",
        parameters=[CancelAllIn],
        responses={200: CancelledOrdersOut},
        extensions=error_codes(errors.UnknownSymbol, errors.NotFound),
        tags=["orders"],
        summary="Cancel every resting order of an account (optionally on one market)",
    )
    def delete(self, request: Request) -> Response:
        data = query_params(request, CancelAllIn)
        account = account_selectors.account_get(account_id=data["account_id"], user=request.user, key=None)
        market = market_selectors.market_get(symbol=data["symbol"]) if data.get("symbol") else None
        cancelled = services.order_cancel_all(account=account, market=market, actor=request.user)
        orders = selectors.order_list(user=request.user, key=None).filter(pk__in=[o.pk for o in cancelled])
        return Response({"orders": OrderOut(orders.prefetch_related(selectors.FILLS), many=True).data})

    @extend_schema(
        request=ORDER_IN_SCHEMA,
        responses={
            201: OrderOut,
            200: OpenApiResponse(OrderOut, description="Idempotent replay of the same client_order_id"),
        },
        extensions=error_codes(
            errors.InvalidAmount,
            errors.UnknownSymbol,
            errors.UnsupportedOrderType,
            errors.ParameterNotAllowed,
            errors.NotFound,
            errors.NotAuthenticated,
            errors.ClientOrderIdConflict,
            errors.ServiceUnavailable,
            errors.Maintenance,
            errors.RateLimited,
            errors.ExecutionStatusUnknown,
            [(422, reason) for reason in REJECTION_CODES],
        ),
        description="A rejection is recorded and answered 422 with the reason as the error code; details.order_id "
        "and details.order identify the stored order. 404: the account is not one of this key's.",
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
                post_only=bool(data["post_only"]),
                self_trade_prevention=data["self_trade_prevention"],
                client_order_id=data["client_order_id"],
                key_id=getattr(request.auth, "pk", None),
            ),
            actor=request.user,
        )
        order = placed.order
        if placed.chaos is not None and placed.chaos.unknown_outcome:
            # Chaos: the order is committed, but its answer is lost (chaos/asgi.py drops the connection for "drop").
            return lost_answer(order_id=str(order.order_id), mode=placed.chaos.unknown_outcome, chaos=placed.chaos)
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

    @extend_schema(parameters=[ORDER_ID], responses={200: OrderOut}, tags=["orders"])
    def get(self, request: Request, order_id: str) -> Response:
        return Response(OrderOut(selectors.order_get(order_id=order_id, user=request.user, key=request.auth)).data)

    @extend_schema(
        parameters=[ORDER_ID],
        responses={200: OrderOut},
        extensions=error_codes(errors.OrderNotCancelable),
        tags=["orders"],
        summary="Cancel a resting order and release its reservation (a final order answers 409)",
    )
    def delete(self, request: Request, order_id: str) -> Response:
        order = selectors.order_for_cancel(order_id=order_id, user=request.user)
        cancelled = services.order_cancel(order=order, actor=request.user)
        return Response(order_json(cancelled, list(selectors.order_fills(order=cancelled))))


class TradeListApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        operation_id="v1_trades_list",
        parameters=[TradeFilterIn],
        responses={200: page_of(TradeOut, "trades")},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["orders"],
        summary="Trades (fills), newest first (cursor pagination)",
    )
    def get(self, request: Request) -> Response:
        filters = query_params(request, TradeFilterIn)
        qs = selectors.trade_list(user=request.user, key=request.auth, **filters)
        return paginate(self, qs, TradeOut, "trades")

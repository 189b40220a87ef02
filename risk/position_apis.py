"""REST endpoints for positions (computed in risk/positions.py; see its docstring for the method)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ReadScope
from accounts.selectors import account_list
from exchange.api import (
    UUID_PATTERN,
    PageIn,
    StrictUUIDField,
    WrappedCursorPagination,
    any_case,
    format_amount,
    query_params,
)
from exchange.schema import error_codes
from ledger.reference_data import ASSETS
from ledger.selectors import asset_map
from risk.positions import CASH_ASSETS, USD, Position, position_get, position_list, positions_for

# Positions are kept for the listed assets that are not cash (risk/positions.py); the asset in an id may be
# written in any case.
POSITION_ASSETS = sorted(a["code"] for a in ASSETS if a["code"] not in CASH_ASSETS)
POSITION_ID = OpenApiParameter(
    "position_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description=f'"<account_id>:<asset>" for a non-cash asset ({", ".join(POSITION_ASSETS)}).',
    pattern=UUID_PATTERN.removesuffix("$") + f":(?:{'|'.join(any_case(a) for a in POSITION_ASSETS)})$",
)
POSITION_SIDES = [("long", "long"), ("flat", "flat")]
DECIMAL = {"type": "string", "format": "decimal", "nullable": True}
EXAMPLE = {
    "position_id": "0b6f7c1e-4a59-4a8e-9d0e-5c1f1e2d3a4b:BTC",
    "account_id": "0b6f7c1e-4a59-4a8e-9d0e-5c1f1e2d3a4b",
    "asset": "BTC",
    "side": "long",
    "quantity": "0.05000000",
    "entry_price": "65032.50",
    "current_price": "66000.00",
    "unrealized_pnl": "48.38",
    "realized_pnl": "-13.02",
    "quote_asset": "USD",
}


def _usd(value: object) -> str | None:
    return format_amount(value, 2) if value is not None else None  # type: ignore[arg-type]


class PositionOut(serializers.Serializer):
    position_id = serializers.CharField(help_text='"<account_id>:<asset>", stable.')
    account_id = serializers.UUIDField()
    asset = serializers.ChoiceField(choices=[(a, a) for a in POSITION_ASSETS])
    side = serializers.ChoiceField(
        choices=POSITION_SIDES,
        help_text='"long" while held; "flat" when nothing is held but PnL was realized.',
    )
    quantity = serializers.SerializerMethodField(help_text="Total balance of the asset (available + locked).")
    entry_price = serializers.SerializerMethodField(help_text="Average cost per unit in USD (weighted average).")
    current_price = serializers.SerializerMethodField(help_text="Reference price of the asset's USD market.")
    unrealized_pnl = serializers.SerializerMethodField(help_text="(current_price - entry_price) x quantity, USD.")
    realized_pnl = serializers.SerializerMethodField(
        help_text="Proceeds - cost basis of what was sold - fees paid, USD."
    )
    quote_asset = serializers.SerializerMethodField(help_text='Prices and PnL are in "USD".')

    @extend_schema_field(DECIMAL)
    def get_quantity(self, obj: Position) -> str | None:
        return format_amount(obj.quantity, asset_map()[obj.asset].decimals)

    @extend_schema_field(DECIMAL)
    def get_entry_price(self, obj: Position) -> str | None:
        return _usd(obj.entry_price)

    @extend_schema_field(DECIMAL)
    def get_current_price(self, obj: Position) -> str | None:
        return _usd(obj.current_price)

    @extend_schema_field(DECIMAL)
    def get_unrealized_pnl(self, obj: Position) -> str | None:
        return _usd(obj.unrealized_pnl)

    @extend_schema_field(DECIMAL)
    def get_realized_pnl(self, obj: Position) -> str | None:
        return _usd(obj.realized_pnl)

    @extend_schema_field({"type": "string", "enum": ["USD"]})
    def get_quote_asset(self, obj: Position) -> str:
        return USD


class PositionFilterIn(PageIn):
    account_id = StrictUUIDField(required=False, help_text="One account; default: every account visible.")


class PositionListOut(serializers.Serializer):
    positions = PositionOut(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page of accounts' positions.")
    previous = serializers.URLField(allow_null=True)


class PositionListApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        operation_id="v1_positions_list",
        parameters=[PositionFilterIn],
        responses={200: PositionListOut},
        examples=[OpenApiExample("A long BTC position", value={"positions": [EXAMPLE]}, response_only=True)],
        tags=["positions"],
        extensions=error_codes((404, "not_found")),
        summary="Positions in BTC and ETH of one account or of every account the key sees (operators: all)",
    )
    def get(self, request: Request) -> Response:
        """Every visible account's positions are paged by account (``?limit=`` accounts, 50 by default, at most
        500, newest account first), so an operator's answer is bounded however many accounts there are."""
        filters = query_params(request, PositionFilterIn)
        if filters.get("account_id"):
            positions = position_list(user=request.user, key=request.auth, account_id=filters["account_id"])
            return Response({"positions": PositionOut(positions, many=True).data, "next": None, "previous": None})
        paginator = WrappedCursorPagination()
        paginator.results_key = "positions"
        accounts = paginator.paginate_queryset(account_list(user=request.user, key=request.auth), request, view=self)
        positions = positions_for(accounts=list(accounts or []))
        return paginator.get_paginated_response(PositionOut(positions, many=True).data)


class PositionDetailApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[POSITION_ID],
        responses={200: PositionOut},
        examples=[OpenApiExample("A long BTC position", value=EXAMPLE, response_only=True)],
        tags=["positions"],
        summary='One position by its id "<account_id>:<asset>"',
    )
    def get(self, request: Request, position_id: str) -> Response:
        return Response(PositionOut(position_get(position_id=position_id, user=request.user, key=request.auth)).data)

"""REST endpoints for markets: list, detail, and the operators' price, halt and resume."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import OperatorScope, ReadScope
from exchange import errors
from exchange.api import raise_validation
from exchange.schema import error_codes
from markets import selectors, services
from markets.fields import SYMBOL_PARAMETER
from markets.models import MarketStatus
from markets.serializers import MarketListOut, MarketOut, MarketPriceIn, MarketStatusIn

# The market actions under /markets/{symbol}/...: a path such as /markets/BTC/halt (no quote asset) would
# otherwise reach the detail route with the symbol "BTC/halt" (the slash spelling) and answer 405.
MARKET_ACTIONS = ("price", "halt", "resume")


class MarketListApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(operation_id="v1_markets_list", responses={200: MarketListOut}, tags=["markets"])
    def get(self, request: Request) -> Response:
        return Response({"markets": MarketOut(selectors.market_list(), many=True).data})


class MarketDetailApi(APIView):
    permission_classes = [ReadScope]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        head, _, action = str(kwargs.get("symbol", "")).rpartition("/")
        if head and action.lower() in MARKET_ACTIONS:
            raise errors.NotFound("No such endpoint.", details={"path": request.path[:200]})
        super().initial(request, *args, **kwargs)

    @extend_schema(
        parameters=[SYMBOL_PARAMETER],
        responses={200: MarketOut},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["markets"],
        summary='Price, bid, ask and trading rules ("BTC/USD" is accepted for "BTC-USD")',
    )
    def get(self, request: Request, symbol: str) -> Response:
        return Response(MarketOut(selectors.market_get(symbol=symbol)).data)


class MarketPriceApi(APIView):
    permission_classes = [OperatorScope]

    @extend_schema(
        parameters=[SYMBOL_PARAMETER],
        request=MarketPriceIn,
        responses={200: MarketOut},
        extensions=error_codes(errors.UnknownSymbol, errors.InvalidAmount),
        tags=["operator"],
        summary="Set a market's reference price (operator)",
    )
    def post(self, request: Request, symbol: str) -> Response:
        market = selectors.market_get(symbol=symbol)
        data = raise_validation(MarketPriceIn(data=request.data))
        market = services.market_set_price(
            market=market, price=data["price"], actor=request.user, reason=data["reason"]
        )
        return Response(MarketOut(market).data)


class _MarketStatusApi(APIView):
    permission_classes = [OperatorScope]
    target_status = MarketStatus.TRADING

    def post(self, request: Request, symbol: str) -> Response:
        market = selectors.market_get(symbol=symbol)
        data = raise_validation(MarketStatusIn(data=request.data))
        market = services.market_set_status(
            market=market, status=self.target_status, actor=request.user, reason=data["reason"]
        )
        return Response(MarketOut(market).data)


def _status_schema(summary: str) -> Any:
    return extend_schema(
        parameters=[SYMBOL_PARAMETER],
        request=MarketStatusIn,
        responses={200: MarketOut},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["operator"],
        summary=summary,
    )


class MarketHaltApi(_MarketStatusApi):
    target_status = MarketStatus.HALTED

    @_status_schema("Halt trading on a market (operator): orders are rejected as market_halted")
    def post(self, request: Request, symbol: str) -> Response:
        return super().post(request, symbol)


class MarketResumeApi(_MarketStatusApi):
    target_status = MarketStatus.TRADING

    @_status_schema("Resume trading on a halted market (operator)")
    def post(self, request: Request, symbol: str) -> Response:
        return super().post(request, symbol)

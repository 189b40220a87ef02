"""REST endpoints for markets: list, detail, and the operators' price, halt and resume."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import OperatorScope, ReadScope
from exchange.api import COMMON_ERRORS, raise_validation
from markets import selectors, services
from markets.models import MarketStatus
from markets.serializers import MarketOut, MarketPriceIn, MarketStatusIn


class MarketListApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(responses={200: MarketOut(many=True), **COMMON_ERRORS}, tags=["markets"])
    def get(self, request: Request) -> Response:
        return Response({"markets": MarketOut(selectors.market_list(), many=True).data})


class MarketDetailApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        responses={200: MarketOut, **COMMON_ERRORS},
        tags=["markets"],
        summary='Price, bid, ask and trading rules ("BTC/USD" is accepted for "BTC-USD")',
    )
    def get(self, request: Request, symbol: str) -> Response:
        return Response(MarketOut(selectors.market_get(symbol=symbol)).data)


class MarketPriceApi(APIView):
    permission_classes = [OperatorScope]

    @extend_schema(
        request=MarketPriceIn,
        responses={200: MarketOut, **COMMON_ERRORS},
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

    @extend_schema(request=MarketStatusIn, responses={200: MarketOut, **COMMON_ERRORS}, tags=["operator"])
    def post(self, request: Request, symbol: str) -> Response:
        market = selectors.market_get(symbol=symbol)
        data = raise_validation(MarketStatusIn(data=request.data))
        market = services.market_set_status(
            market=market, status=self.target_status, actor=request.user, reason=data["reason"]
        )
        return Response(MarketOut(market).data)


class MarketHaltApi(_MarketStatusApi):
    target_status = MarketStatus.HALTED


class MarketResumeApi(_MarketStatusApi):
    target_status = MarketStatus.TRADING

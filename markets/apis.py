"""REST endpoints for markets: list, detail, and the operators' price, halt and resume."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import OperatorScope, ReadScope
from exchange.api import COMMON_ERRORS, raise_validation
from markets import market_data, selectors
from markets.models import MarketStatus
from markets.serializers import (
    BookIn,
    BookOut,
    CandleOut,
    CandlesIn,
    MarketOut,
    MarketPriceIn,
    MarketStatusIn,
    TapeIn,
    TapeTradeOut,
    TickerOut,
    book_out,
)
from orders import services as order_services


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
        market = order_services.market_price_set(
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
        market = order_services.market_status_set(
            market=market, status=self.target_status, actor=request.user, reason=data["reason"]
        )
        return Response(MarketOut(market).data)


class MarketHaltApi(_MarketStatusApi):
    target_status = MarketStatus.HALTED


class MarketResumeApi(_MarketStatusApi):
    target_status = MarketStatus.TRADING


class MarketBookApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[BookIn],
        responses={200: BookOut, **COMMON_ERRORS},
        tags=["market data"],
        summary="The book by price level (house and customers), best first, with its sequence",
    )
    def get(self, request: Request, symbol: str) -> Response:
        params = raise_validation(BookIn(data=request.query_params))
        market = selectors.market_get(symbol=symbol)
        return Response(book_out(market_data.book_get(market=market, depth=params["depth"]), market))


class MarketTapeApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[TapeIn],
        responses={200: TapeTradeOut(many=True), **COMMON_ERRORS},
        tags=["market data"],
        summary="The market's latest trades (the public tape), newest first",
    )
    def get(self, request: Request, symbol: str) -> Response:
        params = raise_validation(TapeIn(data=request.query_params))
        market = selectors.market_get(symbol=symbol)
        trades = market_data.tape(market=market, limit=params["limit"])
        for trade in trades:
            trade.market = market
        return Response({"symbol": market.symbol, "trades": TapeTradeOut(trades, many=True).data})


class MarketTickerApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        responses={200: TickerOut, **COMMON_ERRORS},
        tags=["market data"],
        summary="Last price, best bid and ask, and the last 24 hours: open, high, low, volumes, change",
    )
    def get(self, request: Request, symbol: str) -> Response:
        market = selectors.market_get(symbol=symbol)
        return Response(TickerOut(market_data.ticker_get(market=market), context={"market": market}).data)


class MarketCandlesApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[CandlesIn],
        responses={200: CandleOut(many=True), **COMMON_ERRORS},
        tags=["market data"],
        summary="Candles (open, high, low, close, volume) of the intervals that had trades, oldest first",
    )
    def get(self, request: Request, symbol: str) -> Response:
        params = raise_validation(CandlesIn(data=request.query_params))
        market = selectors.market_get(symbol=symbol)
        rows = market_data.candles(market=market, interval=params["interval"], limit=params["limit"])
        return Response(
            {
                "symbol": market.symbol,
                "interval": params["interval"],
                "candles": CandleOut(rows, many=True, context={"market": market}).data,
            }
        )

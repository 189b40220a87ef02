"""REST endpoints for markets: list, detail, the operators' price, halt and resume, and market data (book, tape,
ticker, candles)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import OperatorScope, ReadScope
from exchange import errors
from exchange.api import query_params, raise_validation
from exchange.schema import error_codes
from markets import market_data, selectors
from markets.fields import SYMBOL_PARAMETER
from markets.models import MarketStatus
from markets.serializers import (
    BookIn,
    BookOut,
    CandleOut,
    CandlesIn,
    CandlesOut,
    MarketListOut,
    MarketOut,
    MarketPriceIn,
    MarketStatusIn,
    TapeIn,
    TapeOut,
    TapeTradeOut,
    TickerOut,
    book_out,
)
from orders import services as order_services

# The market actions under /markets/{symbol}/...: a path such as /markets/BTC/halt (no quote asset) would
# otherwise reach the detail route with the symbol "BTC/halt" (the slash spelling) and answer 405.
MARKET_ACTIONS = ("price", "halt", "resume", "book", "trades", "ticker", "candles")


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
        market = order_services.market_price_set(
            market=market, price=data["price"], actor=request.user, reason=data["reason"]
        )
        return Response(MarketOut(market).data)


class _MarketStatusApi(APIView):
    permission_classes = [OperatorScope]
    target_status = MarketStatus.TRADING

    def post(self, request: Request, symbol: str) -> Response:
        market = selectors.market_get(symbol=symbol)
        data = raise_validation(MarketStatusIn(data=request.data))
        market = order_services.market_status_set(
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


# --- Market data (read scope) --------------------------------------------------------------------------------
class MarketBookApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[SYMBOL_PARAMETER, BookIn],
        responses={200: BookOut},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["market data"],
        summary="The book by price level (house and customers), best first, with its sequence",
    )
    def get(self, request: Request, symbol: str) -> Response:
        params = query_params(request, BookIn)
        market = selectors.market_get(symbol=symbol)
        return Response(book_out(market_data.book_get(market=market, depth=params["depth"]), market))


class MarketTapeApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[SYMBOL_PARAMETER, TapeIn],
        responses={200: TapeOut},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["market data"],
        summary="The market's latest trades (the public tape), newest first",
    )
    def get(self, request: Request, symbol: str) -> Response:
        params = query_params(request, TapeIn)
        market = selectors.market_get(symbol=symbol)
        trades = market_data.tape(market=market, limit=params["limit"])
        for trade in trades:
            trade.market = market
        return Response({"symbol": market.symbol, "trades": TapeTradeOut(trades, many=True).data})


class MarketTickerApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[SYMBOL_PARAMETER],
        responses={200: TickerOut},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["market data"],
        summary="Last price, best bid and ask, and the last 24 hours: open, high, low, volumes, change",
    )
    def get(self, request: Request, symbol: str) -> Response:
        market = selectors.market_get(symbol=symbol)
        return Response(TickerOut(market_data.ticker_get(market=market), context={"market": market}).data)


class MarketCandlesApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        parameters=[SYMBOL_PARAMETER, CandlesIn],
        responses={200: CandlesOut},
        extensions=error_codes(errors.UnknownSymbol),
        tags=["market data"],
        summary="Candles (open, high, low, close, volume) of the intervals that had trades, oldest first",
    )
    def get(self, request: Request, symbol: str) -> Response:
        params = query_params(request, CandlesIn)
        market = selectors.market_get(symbol=symbol)
        rows = market_data.candles(market=market, interval=params["interval"], limit=params["limit"])
        return Response(
            {
                "symbol": market.symbol,
                "interval": params["interval"],
                "candles": CandleOut(rows, many=True, context={"market": market}).data,
            }
        )

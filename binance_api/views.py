"""The Binance Spot REST API v3 over our services: same paths, parameters, fields, enums and errors.

Every endpoint is a plain Django view wrapped by ``endpoint``: it reads the parameters (query string and form body),
authenticates (``X-MBX-APIKEY``, and for signed endpoints the HMAC signature and timestamp, binance_api/auth.py),
counts the request's weight (binance_api/weights.py), runs the handler and answers JSON, with Binance's
``{"code", "msg"}`` on any refusal (binance_api/errors.py). Orders and cancels go through orders.services, reads
through the selectors and markets.market_data: this module holds no money logic.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts import selectors as account_selectors
from accounts.models import Scope
from binance_api import auth, errors, rendering
from binance_api import selectors as selectors
from binance_api.weights import request_weigh
from exchange import errors as domain_errors
from exchange.ratelimit import client_address
from exchange.runtime_config import get_config
from markets import market_data
from markets import selectors as market_selectors
from markets.models import Market
from orders import services
from orders.models import OrderStatus, OrderType, SelfTradePrevention

logger = structlog.get_logger("exchange.binance_api")

_SYMBOL_CHARS = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_JOINED = re.compile(r"^[A-Z0-9]{2,20}$")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
KLINE_INTERVALS = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1h", "4h": "4h", "1d": "1d"}
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
TIF = {"GTC": "gtc", "IOC": "ioc", "FOK": "fok"}
STP = {
    "EXPIRE_TAKER": SelfTradePrevention.EXPIRE_TAKER,
    "EXPIRE_MAKER": SelfTradePrevention.EXPIRE_MAKER,
    "EXPIRE_BOTH": SelfTradePrevention.EXPIRE_BOTH,
    # We always prevent self-trades; NONE (allow them) is answered with the default mode.
    "NONE": SelfTradePrevention.EXPIRE_TAKER,
}


@dataclass
class Ctx:
    request: HttpRequest
    params: auth.Params
    caller: auth.Caller | None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data, separators=(",", ":")), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _error(exc: errors.BinanceError, headers: dict[str, str]) -> HttpResponse:
    extra = dict(headers)
    extra.update(getattr(exc, "headers", {}) or {})
    if exc.retry_after:
        extra["Retry-After"] = str(exc.retry_after)
    return _json(exc.body(), status=exc.status, headers=extra)


def endpoint(
    *,
    methods: dict[str, tuple[Callable[[Ctx], Any], int | Callable[[auth.Params], int]]],
    security: str = "none",
    trade_methods: tuple[str, ...] = (),
    order_methods: tuple[str, ...] = (),
) -> Callable[[HttpRequest], HttpResponse]:
    """A view: ``methods`` maps an HTTP method to (handler, weight); ``security`` is none, key (X-MBX-APIKEY) or
    signed; ``trade_methods`` need the trade scope; ``order_methods`` count as an order."""

    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        headers: dict[str, str] = {}
        try:
            if request.method not in methods:
                raise errors.BinanceError(-1000, f"Method {request.method} is not supported here.", status=405)
            handler, weight = methods[request.method]
            params = auth.Params(request)
            caller = None
            if security != "none":
                key, user = auth.api_key(request)
                if security == "signed":
                    auth.verify_signature(key=key, params=params)
                if request.method in trade_methods and not key.has_scope(Scope.TRADE):
                    raise errors.rejected_api_key()
                if not key.has_scope(Scope.READ):
                    raise errors.rejected_api_key()
                caller = auth.Caller(key=key, user=user, account=auth.key_account(key=key, user=user))
            who = caller.key.prefix if caller else f"ip:{client_address(request)}"
            cost = weight(params) if callable(weight) else weight
            usage = request_weigh(
                caller=who,
                weight=cost,
                order_key=caller.key.prefix if caller and request.method in order_methods else None,
                key_id=str(caller.key.pk) if caller else None,
            )
            headers.update(usage.headers)
            return _json(handler(Ctx(request, params, caller)), headers=headers)
        except errors.BinanceError as exc:
            return _error(exc, headers)
        except domain_errors.ExchangeError as exc:
            return _error(errors.from_domain(exc), headers)

    return view


# --- helpers ---------------------------------------------------------------------------------------------------
def _market(params: auth.Params, *, required: bool = True) -> Market | None:
    raw = params.get("symbol")
    if raw is None:
        if required:
            raise errors.mandatory("symbol")
        return None
    return _market_of(raw)


def _market_of(raw: str) -> Market:
    if not _SYMBOL_CHARS.match(raw):
        raise errors.illegal_chars("symbol", "^[A-Z0-9-_.]{1,20}$")
    if not _JOINED.match(raw):
        raise errors.invalid_symbol()
    try:
        return market_selectors.market_get(symbol=raw)
    except domain_errors.UnknownSymbol:
        raise errors.invalid_symbol() from None


def _markets(params: auth.Params) -> list[Market] | None:
    """``symbol`` or ``symbols`` (a JSON array) given: those markets; neither: None (all)."""
    market = _market(params, required=False)
    if market is not None:
        return [market]
    raw = params.get("symbols")
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        raise errors.illegal_chars("symbols", '^\\["[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}\\]$') from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise errors.illegal_chars("symbols", '^\\["[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}\\]$')
    return [_market_of(name) for name in names]


def _limit(params: auth.Params, *, default: int, maximum: int) -> int:
    value = params.integer("limit", default=default, minimum=1)
    return min(value or default, maximum)


def _q(market: Market, value: Decimal | None, *, base: bool) -> str:
    asset = market.base_asset_id if base else market.quote_asset_id
    return rendering.num(value, rendering.decimals(asset))


def _fee_bps(name: str) -> Decimal:
    return Decimal(get_config(f"trading.default_{name}_fee_bps"))


# --- public ----------------------------------------------------------------------------------------------------
def _ping(ctx: Ctx) -> Any:
    return {}


def _time(ctx: Ctx) -> Any:
    return {"serverTime": auth.now_ms()}


def _exchange_info(ctx: Ctx) -> Any:
    markets = _markets(ctx.params)
    listed = markets if markets is not None else list(market_selectors.market_list())
    from django.conf import settings

    from exchange.key_limits import limits_in_force

    keyed = limits_in_force()
    limits = [("REQUEST_WEIGHT", "MINUTE", 1, keyed.get("weight_1m", settings.BINANCE_WEIGHT_LIMIT_1M))]
    if "orders_10s" in keyed:
        limits.append(("ORDERS", "SECOND", 10, keyed["orders_10s"]))
    if "orders_1d" in keyed:
        limits.append(("ORDERS", "DAY", 1, keyed["orders_1d"]))
    return {
        "timezone": "UTC",
        "serverTime": auth.now_ms(),
        "rateLimits": [
            {"rateLimitType": kind, "interval": interval, "intervalNum": n, "limit": limit}
            for kind, interval, n, limit in limits
        ],
        "exchangeFilters": [],
        "symbols": [rendering.symbol_info(m) for m in listed],
    }


def _depth_weight(params: auth.Params) -> int:
    limit = params.integer("limit", default=100) or 100
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _depth(ctx: Ctx) -> Any:
    market = _market(ctx.params)
    assert market is not None
    book = market_data.book_get(market=market, depth=_limit(ctx.params, default=100, maximum=5000))
    return {
        "lastUpdateId": book.sequence,
        "bids": [[_q(market, p, base=False), _q(market, q, base=True)] for p, q in book.bids],
        "asks": [[_q(market, p, base=False), _q(market, q, base=True)] for p, q in book.asks],
    }


def _trades(ctx: Ctx) -> Any:
    market = _market(ctx.params)
    assert market is not None
    trades = market_data.tape(market=market, limit=_limit(ctx.params, default=500, maximum=1000))
    return [
        {
            "id": t.pk,
            "price": _q(market, t.price, base=False),
            "qty": _q(market, t.quantity, base=True),
            "quoteQty": _q(market, t.taker_quote, base=False),
            "time": rendering.ms(t.created_at),
            "isBuyerMaker": t.taker_side == "sell",
            "isBestMatch": True,
        }
        for t in reversed(trades)
    ]


def _agg_trades(ctx: Ctx) -> Any:
    market = _market(ctx.params)
    assert market is not None
    trades = market_data.tape(market=market, limit=_limit(ctx.params, default=500, maximum=1000))
    start, end = ctx.params.integer("startTime"), ctx.params.integer("endTime")
    out = []
    for t in reversed(trades):
        at = rendering.ms(t.created_at) or 0
        if (start is not None and at < start) or (end is not None and at > end):
            continue
        out.append(
            {
                "a": t.pk,
                "p": _q(market, t.price, base=False),
                "q": _q(market, t.quantity, base=True),
                "f": t.pk,
                "l": t.pk,
                "T": at,
                "m": t.taker_side == "sell",
                "M": True,
            }
        )
    return out


def _klines(ctx: Ctx) -> Any:
    market = _market(ctx.params)
    assert market is not None
    interval = ctx.params.required("interval")
    if interval not in KLINE_INTERVALS:
        raise errors.invalid_interval()
    limit = _limit(ctx.params, default=500, maximum=1000)
    start, end = ctx.params.integer("startTime"), ctx.params.integer("endTime")
    span = INTERVAL_MS[interval]
    rows = []
    for c in market_data.candles(market=market, interval=interval, limit=limit):
        opened = rendering.ms(c.open_time) or 0
        if (start is not None and opened + span <= start) or (end is not None and opened > end):
            continue
        rows.append(
            [
                opened,
                _q(market, c.open, base=False),
                _q(market, c.high, base=False),
                _q(market, c.low, base=False),
                _q(market, c.close, base=False),
                _q(market, c.volume, base=True),
                opened + span - 1,
                _q(market, c.quote_volume, base=False),
                c.trades,
                "0",
                "0",
                "0",
            ]
        )
    return rows[:limit]


def _avg_price(ctx: Ctx) -> Any:
    market = _market(ctx.params)
    assert market is not None
    recent = market_data.candles(market=market, interval="1m", limit=5)
    volume = sum((c.volume for c in recent), Decimal(0))
    quote = sum((c.quote_volume for c in recent), Decimal(0))
    price = quote / volume if volume else market.reference_price
    closed = rendering.ms(recent[-1].open_time) + 59_999 if recent else auth.now_ms()
    return {"mins": 5, "price": _q(market, price, base=False), "closeTime": closed}


def _ticker_weight(params: auth.Params, one: int, many: int) -> int:
    return one if params.get("symbol") else many


def _each(ctx: Ctx, render: Callable[[Market], dict[str, Any]]) -> Any:
    markets = _markets(ctx.params)
    if markets is not None and ctx.params.get("symbol"):
        return render(markets[0])
    return [render(m) for m in (markets if markets is not None else market_selectors.market_list())]


def _ticker_24hr(ctx: Ctx) -> Any:
    def render(market: Market) -> dict[str, Any]:
        ticker = market_data.ticker_get(market=market)
        book = market_data.book_get(market=market, depth=1)
        last_trade = next(iter(market_data.tape(market=market, limit=1)), None)
        last = ticker.last if ticker.last is not None else market.reference_price
        opened = ticker.open if ticker.open is not None else last
        weighted = ticker.quote_volume / ticker.volume if ticker.volume else last
        now = timezone.now()
        return {
            "symbol": rendering.binance_symbol(market),
            "priceChange": _q(market, last - opened, base=False),
            "priceChangePercent": f"{ticker.change_percent or Decimal(0):.3f}",
            "weightedAvgPrice": _q(market, weighted, base=False),
            "prevClosePrice": _q(market, opened, base=False),
            "lastPrice": _q(market, last, base=False),
            "lastQty": _q(market, last_trade.quantity if last_trade else None, base=True),
            "bidPrice": _q(market, book.bids[0][0] if book.bids else None, base=False),
            "bidQty": _q(market, book.bids[0][1] if book.bids else None, base=True),
            "askPrice": _q(market, book.asks[0][0] if book.asks else None, base=False),
            "askQty": _q(market, book.asks[0][1] if book.asks else None, base=True),
            "openPrice": _q(market, opened, base=False),
            "highPrice": _q(market, ticker.high if ticker.high is not None else last, base=False),
            "lowPrice": _q(market, ticker.low if ticker.low is not None else last, base=False),
            "volume": _q(market, ticker.volume, base=True),
            "quoteVolume": _q(market, ticker.quote_volume, base=False),
            "openTime": rendering.ms(now - timedelta(hours=24)),
            "closeTime": rendering.ms(now),
            "firstId": -1,
            "lastId": last_trade.pk if last_trade else -1,
            "count": ticker.trades,
        }

    return _each(ctx, render)


def _ticker_price(ctx: Ctx) -> Any:
    def render(market: Market) -> dict[str, Any]:
        last = next(iter(market_data.tape(market=market, limit=1)), None)
        price = last.price if last is not None else market.reference_price
        return {"symbol": rendering.binance_symbol(market), "price": _q(market, price, base=False)}

    return _each(ctx, render)


def _book_ticker(ctx: Ctx) -> Any:
    def render(market: Market) -> dict[str, Any]:
        book = market_data.book_get(market=market, depth=1)
        return {
            "symbol": rendering.binance_symbol(market),
            "bidPrice": _q(market, book.bids[0][0] if book.bids else None, base=False),
            "bidQty": _q(market, book.bids[0][1] if book.bids else None, base=True),
            "askPrice": _q(market, book.asks[0][0] if book.asks else None, base=False),
            "askQty": _q(market, book.asks[0][1] if book.asks else None, base=True),
        }

    return _each(ctx, render)


# --- signed: orders ----------------------------------------------------------------------------------------------
def _order_request(ctx: Ctx) -> tuple[services.OrderRequest, Market, str]:
    params, caller = ctx.params, ctx.caller
    assert caller is not None
    market = _market(params)
    assert market is not None
    side = params.required("side")
    if side not in ("BUY", "SELL"):
        raise errors.invalid_side()
    kind = params.required("type")
    if kind not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
        raise errors.invalid_order_type()
    tif_raw = params.get("timeInForce")
    quantity, quote, price = params.decimal("quantity"), params.decimal("quoteOrderQty"), params.decimal("price")
    tif: str | None = None
    if kind == "MARKET":
        for name, given in (("price", price), ("timeInForce", tif_raw)):
            if given is not None:
                raise errors.not_required(name)
        if quantity is not None and quote is not None:
            raise errors.not_required("quoteOrderQty")
        if quantity is None and quote is None:
            raise errors.BinanceError(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
            )
    else:
        if quote is not None:
            raise errors.not_required("quoteOrderQty")
        if kind == "LIMIT":
            if tif_raw is None:
                raise errors.mandatory("timeInForce")
            if tif_raw not in TIF:
                raise errors.invalid_tif()
            tif = TIF[tif_raw]
        elif tif_raw is not None and tif_raw != "GTC":
            raise errors.not_required("timeInForce")
        else:
            tif = "gtc"
        for name, value in (("quantity", quantity), ("price", price)):
            if value is None:
                raise errors.mandatory(name)
    client_id = params.get("newClientOrderId")
    if client_id is None:
        client_id = "sim" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))
    elif not _CLIENT_ID.match(client_id):
        raise errors.illegal_chars("newClientOrderId", "^[a-zA-Z0-9-_]{1,36}$")
    stp_raw = params.get("selfTradePreventionMode") or "EXPIRE_TAKER"
    if stp_raw not in STP:
        raise errors.illegal_chars("selfTradePreventionMode", "EXPIRE_TAKER|EXPIRE_MAKER|EXPIRE_BOTH|NONE")
    resp_type = params.get("newOrderRespType") or "FULL"
    if resp_type not in ("ACK", "RESULT", "FULL"):
        raise errors.illegal_chars("newOrderRespType", "ACK|RESULT|FULL")
    request = services.OrderRequest(
        account=caller.account,
        market=market_selectors.market_for_trading(symbol=market.symbol),
        side=side.lower(),
        order_type=OrderType.MARKET if kind == "MARKET" else OrderType.LIMIT,
        quantity=quantity,
        quote_quantity=quote,
        price=price,
        time_in_force=tif,
        post_only=kind == "LIMIT_MAKER",
        self_trade_prevention=STP[stp_raw],
        client_order_id=client_id,
        key_id=caller.key.pk,
    )
    return request, market, resp_type


def _domain(exc: domain_errors.ExchangeError, **kind: bool) -> errors.BinanceError:
    return errors.from_domain(exc, **kind)


def _order_new(ctx: Ctx) -> Any:
    request, market, resp_type = _order_request(ctx)
    assert ctx.caller is not None
    try:
        placed, _created = services.order_place(request=request, actor=ctx.caller.user)
    except domain_errors.ExchangeError as exc:
        raise _domain(exc, placing=True) from None
    order = placed.order
    if order.status == OrderStatus.REJECTED:
        raise errors.rejection(order.reject_reason, market_order=order.order_type == OrderType.MARKET)
    return rendering.order_placed(order, market, placed.fills, resp_type)


def _order_test(ctx: Ctx) -> Any:
    request, _, _ = _order_request(ctx)
    try:
        services.order_request_validate(request=request)
    except domain_errors.ExchangeError as exc:
        raise _domain(exc, placing=True) from None
    if ctx.params.get("computeCommissionRates") == "true":
        maker, taker = _fee_bps("maker") / 10000, _fee_bps("taker") / 10000
        return {
            "standardCommissionForOrder": {"maker": f"{maker:.8f}", "taker": f"{taker:.8f}"},
            "taxCommissionForOrder": {"maker": "0.00000000", "taker": "0.00000000"},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": "0.00000000",
            },
        }
    return {}


def _find(ctx: Ctx, *, cancelling: bool) -> tuple[Any, Market]:
    assert ctx.caller is not None
    market = _market(ctx.params)
    assert market is not None
    order_id = ctx.params.integer("orderId")
    client_id = ctx.params.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise errors.BinanceError(
            -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    order = selectors.account_order_find(
        user=ctx.caller.user, account=ctx.caller.account, market=market, order_id=order_id, client_order_id=client_id
    )
    if order is None:
        raise errors.cancel_rejected() if cancelling else errors.no_such_order()
    return order, market


def _order_get(ctx: Ctx) -> Any:
    order, market = _find(ctx, cancelling=False)
    return rendering.order_json(order, market)


def _order_cancel(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    order, market = _find(ctx, cancelling=True)
    try:
        cancelled = services.order_cancel(order=order, actor=ctx.caller.user)
    except domain_errors.ExchangeError as exc:
        raise _domain(exc, cancelling=True) from None
    return rendering.order_cancelled(cancelled, market)


def _open_orders(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    market = _market(ctx.params, required=False)
    qs = selectors.account_orders(user=ctx.caller.user, account=ctx.caller.account, market=market)
    qs = qs.filter(status__in=(OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)).order_by("id")
    return [rendering.order_json(o, o.market) for o in qs]


def _open_orders_cancel(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    market = _market(ctx.params)
    try:
        cancelled = services.order_cancel_all(account=ctx.caller.account, market=market, actor=ctx.caller.user)
    except domain_errors.ExchangeError as exc:
        raise _domain(exc, cancelling=True) from None
    assert market is not None
    return [rendering.order_cancelled(o, market) for o in cancelled]


def _window(qs: Any, params: auth.Params, field: str) -> Any:
    start, end = params.integer("startTime"), params.integer("endTime")
    if start is not None:
        qs = qs.filter(**{f"{field}__gte": _from_ms(start)})
    if end is not None:
        qs = qs.filter(**{f"{field}__lte": _from_ms(end)})
    return qs


def _from_ms(value: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _all_orders(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    market = _market(ctx.params)
    assert market is not None
    qs = selectors.account_orders(user=ctx.caller.user, account=ctx.caller.account, market=market)
    order_id = ctx.params.integer("orderId")
    if order_id is not None:
        qs = qs.filter(pk__gte=order_id)
    qs = _window(qs, ctx.params, "created_at").order_by("id")
    limit = _limit(ctx.params, default=500, maximum=1000)
    return [rendering.order_json(o, market) for o in qs[:limit]]


def _my_trades(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    market = _market(ctx.params)
    assert market is not None
    qs = selectors.account_fills(user=ctx.caller.user, account=ctx.caller.account, market=market)
    order_id, from_id = ctx.params.integer("orderId"), ctx.params.integer("fromId")
    if order_id is not None:
        qs = qs.filter(order_id=order_id)
    if from_id is not None:
        qs = qs.filter(trade_id__gte=from_id)
    qs = _window(qs, ctx.params, "created_at").order_by("id")
    limit = _limit(ctx.params, default=500, maximum=1000)
    return [rendering.my_trade_json(f, market) for f in qs[:limit]]


def _account(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    account = ctx.caller.account
    status = account_selectors.Account.objects.filter(pk=account.pk).values_list("status", flat=True).first()
    balances = account_selectors.balance_list(account=account)
    if ctx.params.get("omitZeroBalances") == "true":
        balances = [b for b in balances if b.total != 0]
    maker, taker = _fee_bps("maker"), _fee_bps("taker")
    return {
        "makerCommission": int(maker),
        "takerCommission": int(taker),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": f"{maker / 10000:.8f}",
            "taker": f"{taker / 10000:.8f}",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": status == "active" and ctx.caller.key.has_scope(Scope.TRADE),
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": auth.now_ms(),
        "accountType": "SPOT",
        "balances": [
            {
                "asset": b.asset_id,
                "free": rendering.num(b.available, rendering.decimals(b.asset_id)),
                "locked": rendering.num(b.locked, rendering.decimals(b.asset_id)),
            }
            for b in balances
        ],
        "permissions": ["SPOT"],
        "uid": account.pk,
    }


# --- user data stream: listen keys ------------------------------------------------------------------------------
def _listen_key_open(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    from binance_api.services import listen_key_open

    return {"listenKey": listen_key_open(api_key=ctx.caller.key, account=ctx.caller.account).listen_key}


def _listen_key_keepalive(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    from binance_api.services import listen_key_keepalive

    listen_key_keepalive(api_key=ctx.caller.key, listen_key=ctx.params.required("listenKey"))
    return {}


def _listen_key_close(ctx: Ctx) -> Any:
    assert ctx.caller is not None
    from binance_api.services import listen_key_close

    listen_key_close(api_key=ctx.caller.key, listen_key=ctx.params.required("listenKey"))
    return {}


# --- the routes ------------------------------------------------------------------------------------------------
ping = endpoint(methods={"GET": (_ping, 1)})
server_time = endpoint(methods={"GET": (_time, 1)})
exchange_info = endpoint(methods={"GET": (_exchange_info, 20)})
depth = endpoint(methods={"GET": (_depth, _depth_weight)})
trades = endpoint(methods={"GET": (_trades, 25)})
agg_trades = endpoint(methods={"GET": (_agg_trades, 4)})
klines = endpoint(methods={"GET": (_klines, 2)})
avg_price = endpoint(methods={"GET": (_avg_price, 2)})
ticker_24hr = endpoint(methods={"GET": (_ticker_24hr, lambda p: _ticker_weight(p, 2, 80))})
ticker_price = endpoint(methods={"GET": (_ticker_price, lambda p: _ticker_weight(p, 2, 4))})
book_ticker = endpoint(methods={"GET": (_book_ticker, lambda p: _ticker_weight(p, 2, 4))})
order = endpoint(
    methods={"POST": (_order_new, 1), "GET": (_order_get, 4), "DELETE": (_order_cancel, 1)},
    security="signed",
    trade_methods=("POST", "DELETE"),
    order_methods=("POST",),
)
order_test = endpoint(methods={"POST": (_order_test, 1)}, security="signed", trade_methods=("POST",))
open_orders = endpoint(
    methods={"GET": (_open_orders, lambda p: _ticker_weight(p, 6, 80)), "DELETE": (_open_orders_cancel, 1)},
    security="signed",
    trade_methods=("DELETE",),
)
all_orders = endpoint(methods={"GET": (_all_orders, 20)}, security="signed")
my_trades = endpoint(methods={"GET": (_my_trades, 20)}, security="signed")
account = endpoint(methods={"GET": (_account, 20)}, security="signed")
user_data_stream = endpoint(
    methods={"POST": (_listen_key_open, 2), "PUT": (_listen_key_keepalive, 2), "DELETE": (_listen_key_close, 2)},
    security="key",
)

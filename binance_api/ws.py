"""Binance's WebSocket streams over the outbox of the streams app (streams/hub.py), on the ASGI event loop.

    /ws/<listenKey>                 the user data stream of the listen key's account (POST /api/v3/userDataStream)
    /ws/<stream>[/<stream>...]      raw market streams; /ws alone (or /ws/<n>) takes SUBSCRIBE messages
    /stream?streams=<a>/<b>         combined market streams: {"stream": name, "data": event}
    /ws-api/v3                      the WebSocket API: ping, time, userDataStream.subscribe.signature (the user data
                                    stream, as ccxt's watch_orders uses it: {"subscriptionId", "event"})

Market streams: ``<symbol>@trade``, ``@aggTrade``, ``@depth`` (``@100ms``/``@1000ms`` accepted), ``@bookTicker``
and ``@kline_<interval>`` (1m 5m 15m 1h 4h 1d), symbols in lower case (``btcusd@trade``). User data:
``executionReport`` (NEW, then TRADE per fill with the cumulative figures, then CANCELED or EXPIRED),
``outboundAccountPosition`` (free and locked of the asset that changed) and ``balanceUpdate`` (the delta of a
deposit, withdrawal or adjustment, read from its journal posting, in posting order). Only what committed is
sent, in commit order (the hub's delivery sequence); every event is rendered from the rows as that change left them.
A diff-depth event's ``u`` is the market's book sequence (``lastUpdateId`` of ``GET /api/v3/depth``) and its ``U``
follows the previous event's ``u`` on the connection, so a client keeping a local book (ccxt's watch_order_book)
checks its chain as on Binance; levels are absolute quantities, "0" for a level gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import structlog
from django.db import close_old_connections, connection

from binance_api import errors
from binance_api.auth import DEFAULT_RECV_WINDOW, MAX_RECV_WINDOW, now_ms
from exchange.ratelimit import scope_client_address

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = structlog.get_logger("exchange.binance_api")

PATHS = ("/ws", "/stream", "/ws-api/")
_STREAM = re.compile(r"^([a-z0-9]{2,20})@(trade|aggTrade|depth|bookTicker|kline_(1m|5m|15m|1h|4h|1d))(@(100|1000)ms)?$")
_LISTEN_KEY = re.compile(r"^[A-Za-z0-9]{60}$")


def _db(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Run a database read in a worker thread, closing its connection afterwards (the event loop holds none)."""

    def run() -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return asyncio.to_thread(run)


def _num(value: Any) -> str:
    return "0" if value is None else str(value)


# --- reads (in worker threads) -------------------------------------------------------------------------------------
def _market_for(symbol: str) -> tuple[int, str, str, str, int]:
    """(pk, our symbol, base, quote, book sequence) of a Binance symbol; raises BinanceError -1121."""
    from binance_api.views import _market_of

    market = _market_of(symbol.upper())
    return market.pk, market.symbol, market.base_asset_id, market.quote_asset_id, market.book_sequence


def _listen_account(listen_key: str) -> int | None:
    from binance_api.selectors import listen_key_account

    account = listen_key_account(listen_key=listen_key)
    return account.pk if account is not None else None


def _order_rows(order_uuid: str, trade_uuids: list[str]) -> tuple[dict[str, Any] | None, dict[str, int]]:
    from orders.models import Order, Trade

    row = Order.objects.filter(order_id=order_uuid).values("id", "created_at", "quote_quantity").first()
    trades = dict(Trade.objects.filter(trade_id__in=trade_uuids).values_list("trade_id", "id"))
    return row, {str(k): v for k, v in trades.items()}


FUNDING_KINDS = ("deposit", "withdrawal", "adjustment")


def _funding_after(account_pk: int, after: int | None) -> list[tuple[int, str, Any, Any]]:
    """The account's deposits, withdrawals and adjustments (their postings to available) after posting ``after``;
    with ``after`` None, none, only the id to start from (as a one-row list with asset "")."""
    from ledger.models import LedgerAccountKind, Posting

    qs = Posting.objects.filter(
        account_id=account_pk,
        entry__kind__in=FUNDING_KINDS,
        ledger_account__kind=LedgerAccountKind.CUSTOMER_AVAILABLE,
    )
    if after is None:
        top = qs.order_by("-id").values_list("id", flat=True).first() or 0
        return [(top, "", None, None)]
    from binance_api.rendering import decimals, num

    rows = qs.filter(id__gt=after).order_by("id").values_list("id", "asset_id", "amount", "created_at")
    return [(pk, asset, num(amount, decimals(asset)), created) for pk, asset, amount, created in rows]


def _trade_pk(trade_uuid: str) -> int | None:
    from orders.models import Trade

    return Trade.objects.filter(trade_id=trade_uuid).values_list("id", flat=True).first()


def _kline(market_pk: int, interval: str) -> Any:
    from markets import market_data
    from markets.models import Market

    found = market_data.candles(market=Market.objects.get(pk=market_pk), interval=interval, limit=1)
    return found[-1] if found else None


def _key_for_ws_api(api_key: str, address: str) -> tuple[Any, int]:
    """The key and account pk of a WebSocket API request's ``apiKey``: the check /api/v3 makes, counting failures
    against the same budget of the caller's address (accounts.authentication.api_key_verify). Raises BinanceError."""
    from accounts.authentication import KeyRefused, api_key_verify
    from binance_api.auth import key_account, key_refused

    try:
        key, user = api_key_verify(raw=api_key, address=address)
    except KeyRefused as refused:
        raise key_refused(refused) from None
    return key, key_account(key=key, user=user).pk


# --- rendering ----------------------------------------------------------------------------------------------------
def _ms(text: str | None) -> int:
    from datetime import datetime

    if not text:
        return now_ms()
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _joined(symbol: str) -> str:
    return symbol.replace("-", "")


@dataclass
class UserState:
    """What this connection told its client about each order (so each fill and each end is told once)."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    account_pk: int = 0
    last_funding: int = 0  # the last deposit/withdrawal/adjustment posting told as a balanceUpdate


async def user_messages(event: Any, state: UserState) -> list[dict[str, Any]]:
    from streams import rendering

    if event.topic == rendering.BALANCE:
        p = event.payload
        at = _ms(p.get("updated_at"))
        out: list[dict[str, Any]] = []
        # Deposits, withdrawals and adjustments are also told as balanceUpdate (the delta), as Binance does.
        for pk, asset, amount, created in await _db(_funding_after, state.account_pk, state.last_funding):
            state.last_funding = pk
            out.append(
                {
                    "e": "balanceUpdate",
                    "E": now_ms(),
                    "a": asset,
                    "d": amount,
                    "T": int(created.timestamp() * 1000),
                }
            )
        out.append(
            {
                "e": "outboundAccountPosition",
                "E": now_ms(),
                "u": at,
                "B": [{"a": p["asset"], "f": p["available"], "l": p["locked"]}],
            }
        )
        return out
    if event.topic != rendering.ORDER:
        return []
    o = event.payload
    if o["status"] == "rejected":
        return []  # refused synchronously, as Binance does: never on the stream
    fills = o.get("fills") or []
    row, trade_ids = await _db(_order_rows, o["order_id"], [f["trade_id"] for f in fills])
    if row is None:
        return []
    seen = state.orders.setdefault(o["order_id"], {"new": False, "fills": set(), "ended": False})
    kind = {"market": "MARKET", "limit": "LIMIT_MAKER" if o["post_only"] else "LIMIT"}[o["order_type"]]
    base = {
        "e": "executionReport",
        "s": _joined(o["symbol"]),
        "c": o.get("client_order_id") or "",
        "S": o["side"].upper(),
        "o": kind,
        "f": (o.get("time_in_force") or "gtc").upper(),
        "q": _num(o.get("quantity") or o.get("filled_quantity")),
        "p": _num(o.get("price") or "0"),
        "P": "0",
        "F": "0",
        "g": -1,
        "C": "",
        "r": "NONE",
        "i": row["id"],
        "I": row["id"],
        "M": False,
        "O": int(row["created_at"].timestamp() * 1000),
        "Q": _num(o.get("quote_quantity") or "0"),
        "W": int(row["created_at"].timestamp() * 1000),
        "V": o["self_trade_prevention"].upper(),
    }

    def report(execution: str, status: str, **extra: Any) -> dict[str, Any]:
        message = {**base, "E": now_ms(), "x": execution, "X": status, "w": status in ("NEW", "PARTIALLY_FILLED")}
        message.update({"l": "0", "z": "0", "L": "0", "n": "0", "N": None, "T": now_ms(), "t": -1, "m": False})
        message.update({"Z": "0", "Y": "0"})
        message.update(extra)
        return message

    out = []
    if not seen["new"]:
        seen["new"] = True
        out.append(report("NEW", "NEW", T=base["O"]))
    cum_q, cum_quote = Decimal(0), Decimal(0)
    for index, fill in enumerate(fills):
        cum_q += Decimal(fill["quantity"])
        cum_quote += Decimal(fill["quote_amount"])
        if fill["trade_id"] in seen["fills"]:
            continue
        seen["fills"].add(fill["trade_id"])
        last = index == len(fills) - 1
        status = "FILLED" if last and o["status"] == "filled" else "PARTIALLY_FILLED"
        out.append(
            report(
                "TRADE",
                status,
                l=fill["quantity"],
                z=f"{cum_q.normalize():f}",
                L=fill["price"],
                n=fill["fee"],
                N=fill["fee_asset"],
                T=_ms(fill["created_at"]),
                t=trade_ids.get(fill["trade_id"], -1),
                m=fill["liquidity"] == "maker",
                Z=f"{cum_quote.normalize():f}",
                Y=fill["quote_amount"],
            )
        )
    if o["status"] in ("cancelled", "expired") and not seen["ended"]:
        seen["ended"] = True
        ended = "CANCELED" if o["status"] == "cancelled" else "EXPIRED"
        out.append(
            report(ended, ended, z=f"{cum_q.normalize():f}", Z=f"{cum_quote.normalize():f}", T=_ms(o.get("updated_at")))
        )
    return out


@dataclass
class MarketStream:
    name: str
    symbol: str  # Binance's, upper case
    kind: str
    interval: str | None
    market_pk: int
    last_u: int


async def market_messages(event: Any, stream: MarketStream) -> list[dict[str, Any]]:
    from streams import rendering
    from streams.hub import hub

    p = event.payload
    if stream.kind in ("trade", "aggTrade") and event.topic == rendering.TRADE:
        pk = await _db(_trade_pk, p["trade_id"])
        at = _ms(p.get("executed_at"))
        if stream.kind == "trade":
            return [
                {
                    "e": "trade",
                    "E": now_ms(),
                    "s": stream.symbol,
                    "t": pk,
                    "p": p["price"],
                    "q": p["quantity"],
                    "T": at,
                    "m": p["taker_side"] == "sell",
                    "M": True,
                }
            ]
        return [
            {
                "e": "aggTrade",
                "E": now_ms(),
                "s": stream.symbol,
                "a": pk,
                "p": p["price"],
                "q": p["quantity"],
                "f": pk,
                "l": pk,
                "T": at,
                "m": p["taker_side"] == "sell",
                "M": True,
            }
        ]
    if stream.kind == "kline" and event.topic == rendering.TRADE:
        candle = await _db(_kline, stream.market_pk, stream.interval)
        if candle is None:
            return []
        from binance_api.views import INTERVAL_MS

        opened = int(candle.open_time.timestamp() * 1000)
        span = INTERVAL_MS[stream.interval or "1m"]
        return [
            {
                "e": "kline",
                "E": now_ms(),
                "s": stream.symbol,
                "k": {
                    "t": opened,
                    "T": opened + span - 1,
                    "s": stream.symbol,
                    "i": stream.interval,
                    "f": -1,
                    "L": -1,
                    "o": _num(candle.open),
                    "c": _num(candle.close),
                    "h": _num(candle.high),
                    "l": _num(candle.low),
                    "v": _num(candle.volume),
                    "n": candle.trades,
                    "x": False,
                    "q": _num(candle.quote_volume),
                    "V": "0",
                    "Q": "0",
                    "B": "0",
                },
            }
        ]
    if stream.kind == "depth" and event.topic == rendering.BOOK:
        u = int(p["sequence"])
        if u <= stream.last_u:
            return []
        first, stream.last_u = stream.last_u + 1, u
        return [
            {"e": "depthUpdate", "E": now_ms(), "s": stream.symbol, "U": first, "u": u, "b": p["bids"], "a": p["asks"]}
        ]
    if stream.kind == "bookTicker" and event.topic == rendering.BOOK:
        book = await _db(hub().books.current, stream.market_pk)  # computed (a database read) if not held
        bid = book["bids"][0] if book["bids"] else ["0", "0"]
        ask = book["asks"][0] if book["asks"] else ["0", "0"]
        return [{"u": book["sequence"], "s": stream.symbol, "b": bid[0], "B": bid[1], "a": ask[0], "A": ask[1]}]
    return []


# --- the connection -------------------------------------------------------------------------------------------------
class Connection:
    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope, self._send = scope, send
        self.lock = asyncio.Lock()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.combined = False
        self.closed = False

    async def send(self, message: Any) -> None:
        async with self.lock:
            if not self.closed:
                await self._send({"type": "websocket.send", "text": json.dumps(message, separators=(",", ":"))})

    def _spawn(self, name: str, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(self._ended)
        self.tasks[name] = task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self.closed:
            logger.warning("websocket_stream_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    async def close(self, code: int = 1000) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(BaseException):
                await task
        self.tasks.clear()

    # user data --------------------------------------------------------------------------------------------------
    async def pump_user(self, account_pk: int, wrap: Callable[[dict[str, Any]], Any]) -> None:
        from streams import rendering
        from streams.hub import Filter, hub

        state = UserState(account_pk=account_pk)
        stream = hub().open(Filter(topics={rendering.ORDER, rendering.BALANCE}, accounts={account_pk}))
        await stream.start()
        ((state.last_funding, *_),) = await _db(_funding_after, account_pk, None)
        try:
            async for event in stream:
                for message in await user_messages(event, state):
                    await self.send(wrap(message))
        finally:
            stream.close()

    # market streams -------------------------------------------------------------------------------------------
    async def subscribe_market(self, name: str) -> None:
        match = _STREAM.match(name)
        if match is None:
            raise errors.BinanceError(-1100, f"Invalid stream name '{name[:60]}'.")
        symbol, kind = match.group(1).upper(), match.group(2)
        interval = None
        if kind.startswith("kline_"):
            kind, interval = "kline", kind[len("kline_") :]
        pk, _ours, _base, _quote, sequence = await _db(_market_for, symbol)
        stream = MarketStream(name, symbol, kind, interval, pk, sequence)
        if name not in self.tasks:
            self._spawn(name, self.pump_market(stream))

    async def pump_market(self, ms: MarketStream) -> None:
        from streams import rendering
        from streams.hub import Filter, hub

        topics = {rendering.TRADE} if ms.kind in ("trade", "aggTrade", "kline") else {rendering.BOOK}
        stream = hub().open(Filter(topics=topics, markets={ms.market_pk}))
        await stream.start()
        try:
            async for event in stream:
                for message in await market_messages(event, ms):
                    await self.send({"stream": ms.name, "data": message} if self.combined else message)
        finally:
            stream.close()

    async def on_market_request(self, request: dict[str, Any]) -> None:
        method, ident = request.get("method"), request.get("id")
        params = request.get("params") or []
        try:
            if method == "SUBSCRIBE":
                for name in params:
                    await self.subscribe_market(str(name))
                await self.send({"result": None, "id": ident})
            elif method == "UNSUBSCRIBE":
                for name in params:
                    task = self.tasks.pop(str(name), None)
                    if task is not None:
                        task.cancel()
                await self.send({"result": None, "id": ident})
            elif method == "LIST_SUBSCRIPTIONS":
                await self.send({"result": sorted(self.tasks), "id": ident})
            else:
                await self.send({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": ident})
        except errors.BinanceError as exc:
            await self.send({"error": {"code": exc.code, "msg": exc.msg}, "id": ident})

    # the WebSocket API ---------------------------------------------------------------------------------------------
    async def on_ws_api_request(self, request: dict[str, Any]) -> None:
        ident, method = request.get("id"), request.get("method")
        params = request.get("params") or {}

        async def answer(result: Any) -> None:
            await self.send({"id": ident, "status": 200, "result": result, "rateLimits": []})

        try:
            if method == "ping":
                await answer({})
            elif method == "time":
                await answer({"serverTime": now_ms()})
            elif method == "userDataStream.subscribe.signature":
                account_pk = await self._verify_ws_api(params)
                sid = len([n for n in self.tasks if n.startswith("user:")])
                self._spawn(
                    f"user:{sid}",
                    self.pump_user(account_pk, lambda event, sid=sid: {"subscriptionId": sid, "event": event}),
                )
                await answer({"subscriptionId": sid})
            elif method == "userDataStream.unsubscribe":
                for name in [n for n in self.tasks if n.startswith("user:")]:
                    self.tasks.pop(name).cancel()
                await answer({})
            else:
                raise errors.BinanceError(-1100, f"Unknown method '{str(method)[:60]}'.")
        except errors.BinanceError as exc:
            error: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
            if exc.retry_after is not None:
                # A WebSocket answer has no Retry-After header: Binance puts when to retry (ms) in its data.
                error["data"] = {"serverTime": now_ms(), "retryAfter": now_ms() + exc.retry_after * 1000}
            await self.send({"id": ident, "status": exc.status, "error": error})

    async def _verify_ws_api(self, params: dict[str, Any]) -> int:
        """A signed WebSocket API request: HMAC-SHA256 over its parameters but the signature, sorted by name."""
        signature = str(params.get("signature") or "")
        api_key = str(params.get("apiKey") or "")
        if not signature:
            raise errors.mandatory("signature")
        if not api_key:
            raise errors.mandatory("apiKey")
        try:
            timestamp = int(params.get("timestamp"))  # type: ignore[arg-type]
            recv_window = int(params.get("recvWindow") or DEFAULT_RECV_WINDOW)
        except (TypeError, ValueError):
            raise errors.mandatory("timestamp") from None
        if recv_window <= 0 or recv_window > MAX_RECV_WINDOW:
            raise errors.bad_recv_window()
        server = now_ms()
        if timestamp >= server + 1000:
            raise errors.timestamp_ahead()
        if server - timestamp > recv_window:
            raise errors.timestamp_outside_window()
        key, account_pk = await _db(_key_for_ws_api, api_key, scope_client_address(self.scope))
        from accounts.signing import signing_secret_decrypt

        secret = signing_secret_decrypt(key.signing_secret_encrypted)
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        if secret is None or not hmac.compare_digest(
            hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest(), signature.lower()
        ):
            raise errors.bad_signature()
        return int(account_pk)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        await _not_found(scope, receive, send)
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    from streams.hub import hub

    path = scope.get("path", "")
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    conn = Connection(scope, send)
    mode, names, account_pk = "market", [], None
    started = time.perf_counter()
    try:
        if path.rstrip("/") == "/ws-api/v3":
            mode = "ws-api"
        elif path == "/stream":
            conn.combined = True
            names = [n for n in "/".join(query.get("streams") or []).split("/") if n]
        elif path == "/ws" or path.startswith("/ws/"):
            parts = [p for p in path[len("/ws") :].split("/") if p]
            if len(parts) == 1 and _LISTEN_KEY.match(parts[0]):
                account_pk = await _db(_listen_account, parts[0])
                if account_pk is None:
                    await send({"type": "websocket.close", "code": 1008})
                    return
                mode = "user"
            else:
                names = [p for p in parts if "@" in p]
        else:
            await send({"type": "websocket.close", "code": 1000})
            return
        if not hub().running:
            hub().start()
        await send({"type": "websocket.accept"})
        if mode == "user":
            assert account_pk is not None
            conn._spawn("user", conn.pump_user(account_pk, lambda event: event))
        for name in names:
            try:
                await conn.subscribe_market(name)
            except errors.BinanceError:
                await send({"type": "websocket.close", "code": 1008})
                return
        while True:
            incoming = await receive()
            if incoming["type"] == "websocket.disconnect":
                break
            if incoming["type"] != "websocket.receive":
                continue
            try:
                request = json.loads(incoming.get("text") or incoming.get("bytes") or "null")
            except ValueError:
                request = None
            if not isinstance(request, dict):
                await conn.send({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
                continue
            if mode == "ws-api":
                await conn.on_ws_api_request(request)
            else:
                await conn.on_market_request(request)
    finally:
        conn.closed = True
        await conn.close()
        # The path of a user data stream carries its listen key: never logged.
        logger.info("websocket_closed", mode=mode, seconds=round(time.perf_counter() - started, 1))


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"code": -1000, "msg": "Connect with a WebSocket."}).encode()
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})

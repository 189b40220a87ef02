"""ccxt's ``binance`` class and python-binance's ``Client``, unmodified, trading on the real service.

The service (``manage.py serve``: gunicorn on a fresh PostgreSQL database) is set up only as an operator would:
``seed_accounts`` (house liquidity, two traders with funded accounts) and ``create_api_key --account`` for each
trader's Binance-style key and signing secret. Then alice trades with ccxt and bob with python-binance, pointed at
the service by their documented settings (ccxt: ``urls['api']``; python-binance: ``API_URL``). Nothing leaves
127.0.0.1: name resolution of any other host fails the test. Afterwards the books reconcile and neither signing
secret appears anywhere in the service's log.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import httpx
import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException

from tests.e2e.conftest import manage, seed_keys
from tests.support.processes import ServiceProcess
from tests.support.services import require_postgres, require_redis, scratch_database_url

pytestmark = pytest.mark.slow

D = Decimal
SEED = {
    "house": {"BTC": "50", "ETH": "1000", "USD": "5000000", "USDT": "5000000"},
    "users": [
        {
            "username": "alice",
            "scopes": ["read", "trade"],
            "accounts": [{"label": "ccxt", "deposits": {"USD": "100000"}}],
        },
        {
            "username": "bob",
            "scopes": ["read", "trade"],
            "accounts": [{"label": "pb", "deposits": {"BTC": "2", "USD": "50000"}}],
        },
        {"username": "spender", "scopes": ["read"], "accounts": [{"label": "s", "deposits": {}}]},
        {"username": "ops", "scopes": ["operator"]},
    ],
}
WEIGHT_LIMIT = 1000


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any lookup of a host but the loopback fails: the clients must not reach binance.com, not even at start-up."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1"):
            raise AssertionError(f"a client tried to reach {host!r}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_postgres()
    redis = require_redis()  # the weight counters are shared by the workers through Redis
    tmp = tmp_path_factory.mktemp("binance")
    # An empty database, migrated by serve: on a copy of the session's migrated template, the user data stream
    # test reliably receives bob's events of the test before it (order "bob-1") as if new. Not understood yet;
    # until it is, this module keeps the start-up it was written against.
    with scratch_database_url(tmp_path_factory) as url:
        process = ServiceProcess(
            database_url=url,
            log_dir=tmp,
            workers=2,
            env={
                "CONFIG_SERVICE_URL": "",
                "SERVICE_HOST": "127.0.0.1",
                "REDIS_URL": redis,
                "KEY_LIMITS_ENABLED": "true",
                "KEY_WEIGHT_LIMIT_1M": str(WEIGHT_LIMIT),
            },
            extra_args=["--no-seed"],
        )
        try:
            process.start(timeout=180)
            native = seed_keys(process, SEED, tmp)
            creds = {}
            for username, key in native.items():
                if username == "ops":
                    continue
                accounts = httpx.get(
                    f"{process.base_url}/api/v1/accounts", headers={"Authorization": f"Api-Key {key}"}
                ).json()["accounts"]
                account_id = accounts[0]["account_id"]
                scopes = "read,trade" if username != "spender" else "read"
                out = manage(
                    process, "create_api_key", "--user", username, "--scopes", scopes, "--account", account_id
                ).stdout.splitlines()
                assert len(out) == 2
                creds[username] = {"key": out[0], "secret": out[1], "account_id": account_id}
            yield {"process": process, "creds": creds, "base": process.base_url, "operator": native["ops"]}
        finally:
            process.stop()


def ccxt_binance(venue: dict[str, Any], key: str, secret: str, **options: Any) -> ccxt.binance:
    """ccxt's binance pointed at the service: every API URL at us (spot's public/private at /api/v3; the others at
    a path we do not serve, so a stray call fails here instead of reaching Binance), only spot markets loaded, no
    currencies call (sapi), no margin pairs."""
    exchange = ccxt.binance(
        {
            "apiKey": key,
            "secret": secret,
            "enableRateLimit": False,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": False,
                **options,
            },
        }
    )
    base = venue["base"]
    exchange.urls["api"] = {name: f"{base}/not-served/{name}" for name in exchange.urls["api"]}
    exchange.urls["api"].update({"public": f"{base}/api/v3", "private": f"{base}/api/v3", "v1": f"{base}/api/v1"})
    return exchange


def python_binance(venue: dict[str, Any], key: str, secret: str) -> Client:
    """python-binance's Client pointed at the service: no ping on construction, then API_URL at us."""
    client = Client(key, secret, ping=False)
    client.API_URL = f"{venue['base']}/api"
    return client


@pytest.fixture(scope="module")
def alice(venue: dict[str, Any]) -> ccxt.binance:
    creds = venue["creds"]["alice"]
    exchange = ccxt_binance(venue, creds["key"], creds["secret"])
    exchange.load_markets()
    return exchange


@pytest.fixture(scope="module")
def bob(venue: dict[str, Any]) -> Client:
    creds = venue["creds"]["bob"]
    return python_binance(venue, creds["key"], creds["secret"])


def test_ccxt_loads_markets_with_our_rules(alice):
    market = alice.market("BTC/USD")
    assert market["id"] == "BTCUSD" and market["spot"] and market["active"]
    assert market["precision"]["amount"] == 0.00001 and market["precision"]["price"] == 0.01
    assert market["limits"]["amount"]["min"] == 0.00001 and market["limits"]["cost"]["min"] == 1
    assert {"BTC/USDT", "ETH/USD", "ETH/BTC"} <= set(alice.symbols)


def test_ccxt_balance_market_order_and_market_data(alice):
    balance = alice.fetch_balance()
    assert balance["USD"]["free"] == 100000 and balance["USD"]["used"] == 0

    order = alice.create_order("BTC/USD", "market", "buy", 0.01)
    assert order["status"] == "closed" and order["filled"] == 0.01 and order["side"] == "buy"
    assert order["trades"] and order["fee"]["currency"] == "USD" and order["fee"]["cost"] > 0
    assert order["clientOrderId"], "a client order id is always there (ccxt generates one)"
    after = alice.fetch_balance()
    assert after["BTC"]["free"] == 0.01
    assert D(str(after["USD"]["free"])) == D(100000) - D(str(order["cost"])) - D(str(order["fee"]["cost"]))

    ticker = alice.fetch_ticker("BTC/USD")
    assert ticker["last"] == order["trades"][-1]["price"] and ticker["bid"] < ticker["ask"]
    book = alice.fetch_order_book("BTC/USD", limit=5)
    assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]
    candles = alice.fetch_ohlcv("BTC/USD", "1m", limit=10)
    assert candles and candles[-1][5] >= 0.01  # volume of the last minute includes our trade
    trades = alice.fetch_trades("BTC/USD", limit=10)
    assert sum(D(str(t["amount"])) for t in trades) == D("0.01")
    assert [t["price"] for t in trades] == [t["price"] for t in order["trades"]]
    mine = alice.fetch_my_trades("BTC/USD")
    assert [t["order"] for t in mine] == [order["id"]]


def test_a_resting_ccxt_limit_is_filled_by_a_python_binance_market_order(alice, bob):
    book = alice.fetch_order_book("BTC/USD", limit=1)
    inside = float(alice.price_to_precision("BTC/USD", (book["bids"][0][0] + book["asks"][0][0]) / 2))
    resting = alice.create_order("BTC/USD", "limit", "buy", 0.02, inside)
    assert resting["status"] == "open" and resting["filled"] == 0
    assert [o["id"] for o in alice.fetch_open_orders("BTC/USD")] == [resting["id"]]
    assert alice.fetch_balance()["USD"]["used"] > 0

    sold = bob.order_market_sell(symbol="BTCUSD", quantity="0.02")
    assert sold["status"] == "FILLED"
    assert [(f["price"], f["qty"]) for f in sold["fills"]] == [(f"{D(str(inside)):.2f}", "0.02000000")]
    assert D(sold["fills"][0]["commission"]) > 0 and sold["fills"][0]["commissionAsset"] == "USD"

    filled = alice.fetch_order(resting["id"], "BTC/USD")
    assert filled["status"] == "closed" and filled["filled"] == 0.02 and filled["price"] == inside
    assert alice.fetch_open_orders("BTC/USD") == []
    maker = [t for t in alice.fetch_my_trades("BTC/USD") if t["order"] == resting["id"]]
    assert len(maker) == 1 and maker[0]["takerOrMaker"] == "maker"
    theirs = bob.get_my_trades(symbol="BTCUSD")
    assert theirs[-1]["id"] == int(maker[0]["id"]) and theirs[-1]["isMaker"] is False


def test_ccxt_fetches_and_cancels_by_id_and_by_client_id(alice):
    low = float(alice.price_to_precision("BTC/USD", alice.fetch_ticker("BTC/USD")["bid"] * 0.9))
    by_id = alice.create_order("BTC/USD", "limit", "buy", 0.001, low)
    by_client = alice.create_order("BTC/USD", "limit", "buy", 0.001, low, params={"clientOrderId": "alice-rest-1"})
    assert by_client["clientOrderId"] == "alice-rest-1"
    assert {o["id"] for o in alice.fetch_open_orders("BTC/USD")} == {by_id["id"], by_client["id"]}

    fetched = alice.fetch_order("", "BTC/USD", params={"clientOrderId": "alice-rest-1"})
    assert fetched["id"] == by_client["id"] and fetched["status"] == "open"
    cancelled = alice.cancel_order("", "BTC/USD", params={"clientOrderId": "alice-rest-1"})
    assert cancelled["status"] == "canceled"
    assert alice.cancel_order(by_id["id"], "BTC/USD")["status"] == "canceled"
    assert alice.fetch_open_orders("BTC/USD") == []
    assert alice.fetch_balance()["USD"]["used"] == 0
    assert alice.fetch_order(by_id["id"], "BTC/USD")["status"] == "canceled"


def test_ccxt_errors_are_its_own_exception_classes(venue, alice):
    with pytest.raises(ccxt.InsufficientFunds):
        alice.create_order("BTC/USD", "market", "buy", 10)
    with pytest.raises(ccxt.OrderNotFound):
        alice.fetch_order("999999999", "BTC/USD")
    with pytest.raises(ccxt.OrderNotFound):
        alice.cancel_order("999999999", "BTC/USD")
    above_ask = float(alice.price_to_precision("BTC/USD", alice.fetch_ticker("BTC/USD")["ask"] * 1.01))
    with pytest.raises(ccxt.InvalidOrder):  # post-only (LIMIT_MAKER) that would take
        alice.create_order("BTC/USD", "limit", "buy", 0.001, above_ask, params={"postOnly": True})
    with pytest.raises(ccxt.InvalidOrder):  # below LOT_SIZE's minQty, sent raw past ccxt's own rounding
        alice.private_post_order({"symbol": "BTCUSD", "side": "BUY", "type": "MARKET", "quantity": "0.000001"})

    creds = venue["creds"]["alice"]
    with pytest.raises(ccxt.AuthenticationError):  # -1022: wrong secret
        ccxt_binance(venue, creds["key"], "x" * 64).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):  # -2015: unknown key
        ccxt_binance(venue, "nobody.nothing", creds["secret"]).fetch_balance()
    stale = ccxt_binance(venue, creds["key"], creds["secret"], timeDifference=120_000)
    with pytest.raises(ccxt.InvalidNonce):  # -1021: a timestamp two minutes old
        stale.fetch_balance()


def test_python_binance_reads_trades_and_cancels(bob):
    assert bob.get_server_time()["serverTime"] > 0
    info = bob.get_symbol_info("BTCUSD")
    filters = {f["filterType"]: f for f in info["filters"]}
    assert info["baseAsset"] == "BTC" and info["quoteAsset"] == "USD"
    assert set(info["orderTypes"]) == {"LIMIT", "LIMIT_MAKER", "MARKET"}
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000" and filters["PRICE_FILTER"]["tickSize"] == "0.01"
    assert filters["NOTIONAL"]["minNotional"] == "1.00"
    assert bob.get_asset_balance(asset="BTC") == {"asset": "BTC", "free": "1.98000000", "locked": "0.00000000"}

    ask = D(bob.get_orderbook_ticker(symbol="BTCUSD")["askPrice"])
    high = f"{(ask * D('1.05')).quantize(D('0.01'))}"
    order = bob.order_limit_sell(symbol="BTCUSD", quantity="0.5", price=high, newClientOrderId="bob-1")
    assert order["status"] == "NEW" and order["clientOrderId"] == "bob-1"
    assert bob.get_asset_balance(asset="BTC")["locked"] == "0.50000000"
    assert bob.get_order(symbol="BTCUSD", orderId=order["orderId"])["price"] == high
    assert [o["orderId"] for o in bob.get_open_orders(symbol="BTCUSD")] == [order["orderId"]]
    cancelled = bob.cancel_order(symbol="BTCUSD", origClientOrderId="bob-1")
    assert cancelled["status"] == "CANCELED"
    assert bob.get_asset_balance(asset="BTC")["locked"] == "0.00000000"
    assert [o["status"] for o in bob.get_all_orders(symbol="BTCUSD")] == ["FILLED", "CANCELED"]
    assert bob.create_test_order(symbol="BTCUSD", side="BUY", type="MARKET", quantity="0.01") == {}

    depth = bob.get_order_book(symbol="BTCUSD", limit=5)
    assert len(depth["bids"]) == 5 and depth["lastUpdateId"] > 0
    assert D(bob.get_ticker(symbol="BTCUSD")["volume"]) >= D("0.03")
    assert bob.get_klines(symbol="BTCUSD", interval="1m", limit=5)
    assert D(bob.get_avg_price(symbol="BTCUSD")["price"]) > 0
    assert bob.get_symbol_ticker(symbol="BTCUSD")["symbol"] == "BTCUSD"

    with pytest.raises(BinanceAPIException) as refused:
        bob.order_market_buy(symbol="BTCUSD", quantity="5")
    assert (refused.value.code, refused.value.message) == (
        -2010,
        "Account has insufficient balance for requested action.",
    )
    with pytest.raises(BinanceAPIException) as missing:
        bob.get_order(symbol="BTCUSD", orderId=123456789)
    assert missing.value.code == -2013
    with pytest.raises(BinanceAPIException) as bad_symbol:
        bob.get_order_book(symbol="DOGEUSD")
    assert bad_symbol.value.code == -1121


def _ws(venue: dict[str, Any], path: str) -> Any:
    from websockets.sync.client import connect

    return connect(venue["base"].replace("http://", "ws://") + path, open_timeout=10)


def _until(socket_: Any, wanted: Any, seconds: float = 15) -> list[dict[str, Any]]:
    """Messages received until one satisfies ``wanted`` (all of them, that one last)."""
    import json
    import time

    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = json.loads(socket_.recv(timeout=max(0.1, deadline - time.monotonic())))
        got.append(message)
        if wanted(message):
            return got
    raise AssertionError(f"not received in {seconds}s; got {got}")


def test_the_user_data_stream_by_listen_key_and_market_streams(venue, alice, bob):
    listen_key = bob.stream_get_listen_key()
    assert len(listen_key) == 60
    venue.setdefault("listen_keys", []).append(listen_key)
    bid = D(bob.get_orderbook_ticker(symbol="BTCUSD")["bidPrice"])
    with _ws(venue, f"/ws/{listen_key}") as user, _ws(venue, "/stream?streams=btcusd@trade/btcusd@kline_1m") as tape:
        with _ws(venue, "/ws") as book:
            book.send('{"method": "SUBSCRIBE", "params": ["btcusd@depth@100ms", "btcusd@bookTicker"], "id": 7}')
            assert _until(book, lambda m: m.get("id") == 7)[-1] == {"result": None, "id": 7}
            import time

            time.sleep(0.5)  # the subscriptions are live once acknowledged; give the hub a beat
            price = f"{(bid + D('1')).quantize(D('0.01'))}"
            resting = bob.order_limit_sell(symbol="BTCUSD", quantity="0.01", price=f"{D(price) * 2}")
            got: list[dict[str, Any]] = []

            def seen(message: dict[str, Any]) -> bool:
                got.append(message)
                kinds = {m.get("e") for m in got}
                return {"executionReport", "outboundAccountPosition"} <= kinds

            _until(user, seen)
            new = next(m for m in got if m.get("e") == "executionReport")
            assert (new["x"], new["X"], new["i"], new["S"]) == ("NEW", "NEW", resting["orderId"], "SELL")
            btc = [b for m in got if m.get("e") == "outboundAccountPosition" for b in m["B"] if b["a"] == "BTC"]
            assert btc and btc[-1]["l"] == "0.01000000"
            bob.cancel_order(symbol="BTCUSD", orderId=resting["orderId"])
            cancelled = _until(user, lambda m: m.get("e") == "executionReport" and m["x"] == "CANCELED")[-1]
            assert cancelled["i"] == resting["orderId"]

            deposit = httpx.post(
                f"{venue['base']}/api/v1/accounts/{venue['creds']['bob']['account_id']}/deposits",
                json={"asset": "USD", "amount": "12.34", "reason": "top-up"},
                headers={"Authorization": f"Api-Key {venue['operator']}"},
            )
            assert deposit.status_code == 201, deposit.text
            update = _until(user, lambda m: m.get("e") == "balanceUpdate")[-1]
            assert (update["a"], update["d"]) == ("USD", "12.34")

            bought = alice.create_order("BTC/USD", "market", "buy", 0.002)
            tape_got: list[dict[str, Any]] = []
            _until(tape, lambda m: tape_got.append(m) or {"trade", "kline"} <= {x["data"]["e"] for x in tape_got})
            trade = next(m for m in tape_got if m["data"]["e"] == "trade")
            assert trade["stream"] == "btcusd@trade" and trade["data"]["s"] == "BTCUSD"
            assert trade["data"]["t"] == int(bought["trades"][0]["id"])
            kline = next(m for m in tape_got if m["data"]["e"] == "kline")
            assert kline["stream"] == "btcusd@kline_1m" and kline["data"]["k"]["i"] == "1m"
            assert D(kline["data"]["k"]["v"]) >= D("0.002")
            book_got: list[dict[str, Any]] = []
            _until(book, lambda m: book_got.append(m) or ({"depthUpdate", None} <= {x.get("e") for x in book_got}))
            depth = next(m for m in book_got if m.get("e") == "depthUpdate")
            assert depth["s"] == "BTCUSD" and depth["u"] >= depth["U"] and (depth["a"] or depth["b"])
            ticker = next(m for m in book_got if m.get("e") is None)
            assert ticker["s"] == "BTCUSD" and D(ticker["b"]) < D(ticker["a"])


def test_ccxt_pro_watches_orders_and_the_order_book(venue):
    import asyncio

    import ccxt.pro

    creds = venue["creds"]["alice"]
    base, ws = venue["base"], venue["base"].replace("http://", "ws://")

    async def scenario() -> None:
        exchange = ccxt.pro.binance(
            {
                "apiKey": creds["key"],
                "secret": creds["secret"],
                "options": {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                },
            }
        )
        rest = {name: f"{base}/not-served/{name}" for name in exchange.urls["api"] if name != "ws"}
        rest.update({"public": f"{base}/api/v3", "private": f"{base}/api/v3"})
        sockets = {name: f"{ws}/not-served/{name}" for name in exchange.urls["api"]["ws"] if name != "ws-api"}
        sockets.update({"spot": f"{ws}/ws", "ws-api": {"spot": f"{ws}/ws-api/v3"}})
        exchange.urls["api"] = {**rest, "ws": sockets}
        try:
            await exchange.load_markets()
            book = await asyncio.wait_for(exchange.watch_order_book("BTC/USD"), 15)
            assert book["bids"][0][0] < book["asks"][0][0] and book["nonce"] > 0
            first_nonce = book["nonce"]  # ccxt updates this same book object in place
            watching = asyncio.ensure_future(exchange.watch_orders("BTC/USD"))
            await asyncio.sleep(1.0)
            placed = await exchange.create_order("BTC/USD", "market", "buy", 0.001)
            first = await asyncio.wait_for(watching, 15)
            assert placed["id"] in {order["id"] for order in first}
            # The fill follows on the stream; ccxt keeps every order's latest state in exchange.orders.
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                latest = {order["id"]: order for order in (exchange.orders or [])}.get(placed["id"], {})
                if latest.get("status") == "closed":
                    break
                assert asyncio.get_running_loop().time() < deadline, latest
                await asyncio.sleep(0.2)
            assert latest["filled"] == 0.001 and latest["side"] == "buy" and latest["symbol"] == "BTC/USD"
            # A book update after the watch is registered: another order moves the book (the house's ladder).
            pending = asyncio.ensure_future(exchange.watch_order_book("BTC/USD"))
            await asyncio.sleep(0.5)
            await exchange.create_order("BTC/USD", "market", "buy", 0.001)
            updated = await asyncio.wait_for(pending, 15)
            assert updated["nonce"] > first_nonce and updated["bids"][0][0] < updated["asks"][0][0]
        finally:
            await exchange.close()

    asyncio.run(scenario())


def test_request_weight_headers_and_the_limit(venue):
    """Weight per key per minute (the key's limits, exchange/key_limits.py); over it 429 with Retry-After and -1003
    (ccxt's binance raises DDoSProtection for any 429 before reading the code; RateLimitExceeded is its class for
    -1003 under another status)."""
    creds = venue["creds"]["spender"]
    client = python_binance(venue, creds["key"], creds["secret"])
    client.get_account()
    used = int(client.response.headers["X-MBX-USED-WEIGHT-1M"])
    assert used == 20
    exchange = ccxt_binance(venue, creds["key"], creds["secret"])
    with pytest.raises(ccxt.DDoSProtection) as limited:
        for _ in range(WEIGHT_LIMIT // 20 + 1):
            exchange.fetch_balance()
    assert "-1003" in str(limited.value)
    with pytest.raises(BinanceAPIException) as refused:
        client.get_account()
    assert refused.value.status_code == 429 and refused.value.code == -1003
    assert 0 < int(refused.value.response.headers["Retry-After"]) <= 60


def test_afterwards_the_books_reconcile_and_no_secret_was_logged(venue, alice, bob):
    process = venue["process"]
    result = manage(process, "reconcile")
    assert result.returncode == 0, result.stdout + result.stderr
    log = process.output()
    assert "/api/v3/order" in log, "the log is the service's and saw the trading"
    for creds in venue["creds"].values():
        assert creds["secret"] not in log
        assert creds["key"] not in log
    for listen_key in venue.get("listen_keys", []):
        assert listen_key not in log, "a listen key (in the user stream's URL) is a credential too"

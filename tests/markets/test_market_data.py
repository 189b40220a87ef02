"""Market data agrees with the orders and trades that produced it: the book by price level, the public tape, the
24-hour ticker and candles, under every spelling of a symbol and on both route names.

BTC-USD starts at 65,000.00 with the configured defaults: a 10 bps spread, a ladder of 10 levels per side 5 bps
apart, 0.5 BTC per level (the market's ``ladder`` in ``GET /api/v1/markets/BTC-USD``). The expectations below are
computed here, from those settings and from the fills the order endpoint returned, never read back from the
code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from accounts import services as account_services
from tests.factories import UserFactory, make_account, make_key

pytestmark = pytest.mark.django_db

BPS = D(10000)
SPELLINGS = ["BTC-USD", "BTC/USD", "btc_usd", "BTCUSD"]


@pytest.fixture
def alice_books(alice, house):
    return make_account(owner=alice, label="alice", funds={"BTC": "2", "USD": "50000"})


@pytest.fixture
def bob_books(bob, house):
    return make_account(owner=bob, label="bob", funds={"BTC": "2", "USD": "100000"})


@pytest.fixture
def carol(house):
    from rest_framework.test import APIClient

    user = UserFactory(username="carol")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_key(user=user, scopes=['trade'])}")
    return client, make_account(owner=user, label="carol", funds={"USD": "100000"})


def place(client, account, **fields) -> dict[str, Any]:
    body = {"account_id": str(account.account_id), "symbol": "BTC-USD", **fields}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code in (201, 422), response.content
    return response.json() if response.status_code == 201 else response.json()["error"]


def get(client, path: str, **params) -> dict[str, Any]:
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return response.json()


def levels(*pairs: tuple[str, str]) -> list[list[str]]:
    """Book levels as the API shows them: [price at 2 decimals, quantity at 8]."""
    return [[f"{D(p):.2f}", f"{D(q):.8f}"] for p, q in pairs]


def house_quotes(market: dict[str, Any]) -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:
    """The house's ladder from the market's published settings: level i sits (spread / 2 + step x i) bps from the
    reference price, rounded away from it to the tick."""
    ref, spread, tick = D(market["price"]), D(market["spread_bps"]), D(market["price_tick"])
    step, size = D(market["ladder"]["step_bps"]), D(market["ladder"]["size"])
    bids, asks = [], []
    for i in range(market["ladder"]["levels"]):
        offset = (spread / 2 + step * i) / BPS
        bids.append(((ref * (1 - offset) / tick).to_integral_value(rounding=ROUND_FLOOR) * tick, size))
        asks.append(((ref * (1 + offset) / tick).to_integral_value(rounding=ROUND_CEILING) * tick, size))
    return bids, asks


# --- The book ------------------------------------------------------------------------------------------------------
def test_the_book_aggregates_house_and_customer_liquidity_per_price_level_best_first(
    alice_client, bob_client, alice_reader, alice_books, bob_books, carol
):
    market = get(alice_reader, "/api/v1/markets/BTC-USD")
    house_bids, house_asks = house_quotes(market)
    assert (house_bids[:2], house_asks[:2]) == (
        [(D("64967.50"), D("0.5")), (D("64935.00"), D("0.5"))],
        [(D("65032.50"), D("0.5")), (D("65065.00"), D("0.5"))],
    )
    place(alice_client, alice_books, side="buy", order_type="limit", price="64990.00", quantity="0.1")
    place(bob_client, bob_books, side="buy", order_type="limit", price="64990.00", quantity="0.2")
    place(alice_client, alice_books, side="buy", order_type="limit", price="64967.50", quantity="0.05")
    place(alice_client, alice_books, side="sell", order_type="limit", price="65020.00", quantity="0.3")
    place(bob_client, bob_books, side="sell", order_type="limit", price="65032.50", quantity="0.1")

    book = get(alice_reader, "/api/v1/markets/BTC-USD/book", depth=4)

    # alice's and bob's 0.1 + 0.2 at 64,990.00; alice's 0.05 on the house's 0.5 at 64,967.50; bob's 0.1 on the
    # house's 0.5 at 65,032.50; then the house alone.
    assert book["bids"] == levels(("64990", "0.3"), ("64967.50", "0.55"), ("64935", "0.5"), ("64902.50", "0.5"))
    assert book["asks"] == levels(("65020", "0.3"), ("65032.50", "0.6"), ("65065", "0.5"), ("65097.50", "0.5"))
    assert book["symbol"] == "BTC-USD" and book["timestamp"].endswith("Z")
    # The whole book: every house level, plus the customers' own price levels.
    full = get(alice_reader, "/api/v1/markets/BTC-USD/book", depth=500)
    expected_bids = {p: q for p, q in house_bids}
    expected_bids[D("64990.00")] = D("0.3")
    expected_bids[D("64967.50")] += D("0.05")
    assert full["bids"] == levels(*[(str(p), str(q)) for p, q in sorted(expected_bids.items(), reverse=True)])
    assert len(full["asks"]) == 11

    # carol buys 0.35: alice's 0.3 at 65,020.00, then at 65,032.50 bob's order before the house's quote.
    carol_client, carol_account = carol
    taken = place(carol_client, carol_account, side="buy", order_type="market", quantity="0.35")
    assert [(f["price"], f["quantity"], f["liquidity"]) for f in taken["fills"]] == [
        ("65020.00", "0.30000000", "taker"),
        ("65032.50", "0.05000000", "taker"),
    ]
    after = get(alice_reader, "/api/v1/markets/BTC-USD/book", depth=2)
    assert after["asks"] == levels(("65032.50", "0.55"), ("65065", "0.5"))
    assert after["bids"] == book["bids"][:2]
    assert after["sequence"] > book["sequence"]


def test_the_book_sequence_moves_with_every_change_of_the_book_and_not_otherwise(
    alice_client, bob_client, alice_reader, operator_client, alice_books, bob_books
):
    def snapshot() -> tuple[int, Any]:
        book = get(alice_reader, "/api/v1/markets/BTC-USD/book", depth=500)
        return book["sequence"], (book["bids"], book["asks"])

    seen = [snapshot()]

    def step(name: str, *, changes: bool, levels_change: bool | None = None) -> None:
        """After an action: the sequence increased if the book changed (a resting order came, went or traded, the
        house's ladder moved) and stayed put if it did not; levels_change says whether the levels shown differ."""
        before_seq, before_levels = seen[-1]
        now_seq, now_levels = snapshot()
        if changes:
            assert now_seq > before_seq, name
        else:
            assert (now_seq, now_levels) == (before_seq, before_levels), name
        if levels_change is not None:
            assert (now_levels != before_levels) is levels_change, name
        seen.append((now_seq, now_levels))

    step("reading the book", changes=False)
    rest = place(alice_client, alice_books, side="sell", order_type="limit", price="65010.00", quantity="0.2")
    step("an order rests", changes=True, levels_change=True)
    too_big = place(bob_client, bob_books, side="buy", order_type="limit", price="65000.00", quantity="1.6")
    assert too_big["code"] == "insufficient_balance"
    step("a rejected order", changes=False)
    post_only = place(
        bob_client, bob_books, side="buy", order_type="limit", price="65010.00", quantity="0.1", post_only=True
    )
    assert post_only["code"] == "post_only_would_take"
    step("a post-only order refused", changes=False)
    fok = place(
        bob_client, bob_books, side="buy", order_type="limit", price="65010.00", quantity="0.3", time_in_force="fok"
    )
    assert fok["status"] == "expired"
    step("a fill-or-kill that could not fill", changes=False)
    ioc = place(
        bob_client, bob_books, side="buy", order_type="limit", price="64000.00", quantity="0.1", time_in_force="ioc"
    )
    assert (ioc["status"], ioc["fills"]) == ("expired", [])
    step("an IOC that matched nothing", changes=False)
    place(bob_client, bob_books, side="buy", order_type="market", symbol="ETH-USD", quantity="0.1")
    step("a trade on another market", changes=False)
    account_services.deposit_create(account=alice_books, asset="USD", amount="5", actor=None, reason="test")
    step("a deposit", changes=False)
    taken = place(bob_client, bob_books, side="buy", order_type="limit", price="65010.00", quantity="0.05")
    assert taken["status"] == "filled"
    step("a resting order is partly filled", changes=True, levels_change=True)
    assert bob_client.delete(f"/api/v1/orders/{taken['order_id']}").status_code == 409
    step("a cancel refused", changes=False)
    assert alice_client.delete(f"/api/v1/orders/{rest['order_id']}").status_code == 200
    step("a cancel", changes=True, levels_change=True)
    assert (
        operator_client.post("/api/v1/markets/BTC-USD/price", {"price": "65100.00"}, format="json").status_code == 200
    )
    step("a new reference price moves the house's ladder", changes=True, levels_change=True)
    assert operator_client.post("/api/v1/markets/BTC-USD/halt", {}, format="json").status_code == 200
    step("halting (the book stays as it is)", changes=False)
    assert (
        operator_client.post("/api/v1/markets/BTC-USD/price", {"price": "65200.00"}, format="json").status_code == 200
    )
    step("a new price while halted still moves the house's ladder", changes=True, levels_change=True)
    assert operator_client.post("/api/v1/markets/BTC-USD/resume", {}, format="json").status_code == 200
    step("resuming with nothing crossed", changes=False)


# --- The tape, the ticker and candles ----------------------------------------------------------------------------
@contextmanager
def trading_at(monkeypatch, moment: datetime) -> Iterator[None]:
    """Place orders as if at ``moment``: the order path stamps trades and candles with its clock."""
    from orders import services

    with monkeypatch.context() as patch:
        patch.setattr(services, "timezone", SimpleNamespace(now=lambda: moment))
        yield


def taker_trades(order: dict[str, Any]) -> list[dict[str, Any]]:
    """The trades an order took, from its fills as the order endpoint returned them."""
    return [
        {
            "trade_id": f["trade_id"],
            "price": D(f["price"]),
            "quantity": D(f["quantity"]),
            "quote": D(f["quote_amount"]),
            "side": order["side"],
            "at": datetime.fromisoformat(f["created_at"].replace("Z", "+00:00")),
        }
        for f in order["fills"]
        if f["liquidity"] == "taker"
    ]


def bucket(moment: datetime, minutes: int) -> datetime:
    epoch = int(moment.timestamp()) // 60
    return datetime.fromtimestamp((epoch - epoch % minutes) * 60, tz=UTC)


def expected_candles(trades: list[dict[str, Any]], minutes: int, limit: int, now: datetime) -> list[dict[str, str]]:
    """The candles the trades make: per interval (aligned on the epoch) the first, highest, lowest and last price and
    the volumes; only intervals with trades, the last ``limit`` intervals, oldest first."""
    since = bucket(now - timedelta(minutes=minutes * limit), minutes)
    groups: dict[datetime, list[dict[str, Any]]] = {}
    for trade in trades:  # in the order they happened
        start = bucket(trade["at"], minutes)
        if start >= since:
            groups.setdefault(start, []).append(trade)
    out = []
    for start, group in sorted(groups.items())[-limit:]:
        prices = [t["price"] for t in group]
        out.append(
            {
                "open_time": start.isoformat().replace("+00:00", "Z"),
                "open": f"{prices[0]:.2f}",
                "high": f"{max(prices):.2f}",
                "low": f"{min(prices):.2f}",
                "close": f"{prices[-1]:.2f}",
                "volume": f"{sum(t['quantity'] for t in group):.8f}",
                "quote_volume": f"{sum(t['quote'] for t in group):.2f}",
                "trades": len(group),
            }
        )
    return out


@pytest.fixture
def a_days_trading(monkeypatch, alice_client, bob_client, operator_client, alice_books, bob_books):
    """bob trades BTC-USD over three hours (and once 25 hours ago) while the operator moves the price; alice's
    resting sell is taken once. Returns every trade in the order it happened."""
    now = timezone.now()
    hour = bucket(now - timedelta(hours=2), 60)
    trades: list[dict[str, Any]] = []

    def price(value: str) -> None:
        response = operator_client.post("/api/v1/markets/BTC-USD/price", {"price": value}, format="json")
        assert response.status_code == 200, response.content

    def bob(at: datetime | None, **fields: str) -> None:
        if at is None:
            order = place(bob_client, bob_books, order_type="market", **fields)
        else:
            with trading_at(monkeypatch, at):
                order = place(bob_client, bob_books, order_type="market", **fields)
        assert order["status"] == "filled", order
        trades.extend(taker_trades(order))

    bob(now - timedelta(hours=25), side="buy", quantity="0.01")  # 65,032.50: older than the ticker's 24 hours
    price("64000.00")
    bob(hour + timedelta(minutes=0, seconds=10), side="buy", quantity="0.02")  # at the ask 64,032.00
    bob(hour + timedelta(minutes=0, seconds=40), side="sell", quantity="0.01")  # at the bid 63,968.00
    price("66000.00")
    bob(hour + timedelta(minutes=3, seconds=20), side="buy", quantity="0.03")  # 66,033.00
    bob(hour + timedelta(minutes=7), side="sell", quantity="0.05")  # 65,967.00
    price("65500.00")
    bob(hour + timedelta(minutes=16, seconds=30), side="buy", quantity="0.6")  # 0.5 at 65,532.75, 0.1 at 65,565.50
    with trading_at(monkeypatch, hour + timedelta(minutes=61)):
        place(alice_client, alice_books, side="sell", order_type="limit", price="65520.00", quantity="0.2")
    bob(hour + timedelta(minutes=61, seconds=5), side="buy", quantity="0.1")  # alice's 65,520.00
    bob(None, side="sell", quantity="0.02")  # now, at the bid 65,467.25
    assert [str(t["price"]) for t in trades] == [
        "65032.50",
        "64032.00",
        "63968.00",
        "66033.00",
        "65967.00",
        "65532.75",
        "65565.50",
        "65520.00",
        "65467.25",
    ]
    return trades


def test_the_tape_lists_the_markets_trades_newest_first(alice_reader, a_days_trading):
    tape = get(alice_reader, "/api/v1/markets/BTC-USD/trades", limit=1000)

    assert tape["symbol"] == "BTC-USD"
    assert [
        (t["trade_id"], D(t["price"]), D(t["quantity"]), t["taker_side"], t["executed_at"]) for t in tape["trades"]
    ] == [
        (t["trade_id"], t["price"], t["quantity"], t["side"], t["at"].isoformat().replace("+00:00", "Z"))
        for t in reversed(a_days_trading)
    ]
    assert [t["trade_id"] for t in get(alice_reader, "/api/v1/markets/BTC-USD/trades", limit=3)["trades"]] == [
        t["trade_id"] for t in a_days_trading[::-1][:3]
    ]
    # The default is the 50 latest; another market has its own tape.
    assert len(get(alice_reader, "/api/v1/markets/BTC-USD/trades")["trades"]) == len(a_days_trading)
    assert get(alice_reader, "/api/v1/markets/ETH-USD/trades")["trades"] == []


def test_the_ticker_is_the_last_price_the_best_quotes_and_the_last_24_hours_of_trades(alice_reader, a_days_trading):
    ticker = get(alice_reader, "/api/v1/markets/BTC-USD/ticker")

    day = a_days_trading[1:]  # the first trade is 25 hours old
    first, last = day[0]["price"], day[-1]["price"]
    change = ((last - first) / first * 100).quantize(D("0.01"))
    assert change == D("2.24")  # 65,467.25 against 64,032.00
    assert {k: v for k, v in ticker.items() if k != "timestamp"} == {
        "symbol": "BTC-USD",
        "last": f"{last:.2f}",
        # alice's 0.1 left at 65,520.00 is the best ask; the house's 65,467.25 the best bid.
        "bid": "65467.25",
        "ask": "65520.00",
        "open": "64032.00",
        "high": f"{max(t['price'] for t in day):.2f}",
        "low": f"{min(t['price'] for t in day):.2f}",
        "volume": f"{sum(t['quantity'] for t in day):.8f}",
        "quote_volume": f"{sum(t['quote'] for t in day):.2f}",
        "trades": len(day),
        "change_percent": "2.24",
    }
    assert (ticker["high"], ticker["low"], ticker["volume"]) == ("66033.00", "63968.00", "0.83000000")


@pytest.mark.parametrize(
    ("interval", "minutes", "limit"),
    [("1m", 1, 1000), ("5m", 5, 1000), ("15m", 15, 1000), ("1h", 60, 1000), ("1d", 1440, 1000), ("1h", 60, 2)],
)
def test_candles_of_every_interval_are_the_trades_grouped_by_interval(
    alice_reader, a_days_trading, interval, minutes, limit
):
    body = get(alice_reader, "/api/v1/markets/BTC-USD/candles", interval=interval, limit=limit)

    expected = expected_candles(a_days_trading, minutes, limit, timezone.now())
    assert (body["symbol"], body["interval"]) == ("BTC-USD", interval)
    assert body["candles"] == expected
    assert (
        sum(c["trades"] for c in expected)
        == {
            ("1m", 1000): 8,  # the 25-hour-old trade is more than 1,000 minutes ago
            ("5m", 1000): 9,
            ("15m", 1000): 9,
            ("1h", 1000): 9,
            ("1d", 1000): 9,
            ("1h", 2): 2,  # the last two hours: alice's fill and the last sale
        }[(interval, limit)]
    )


def test_a_minute_that_walked_two_levels_is_one_candle_opening_at_the_first_match(alice_reader, a_days_trading):
    walked = a_days_trading[5:7]
    minute = bucket(walked[0]["at"], 1).isoformat().replace("+00:00", "Z")

    [candle] = [
        c
        for c in get(alice_reader, "/api/v1/markets/BTC-USD/candles", limit=1000)["candles"]
        if c["open_time"] == minute
    ]

    # 0.5 at 65,532.75 (32,766.38 rounded up) and 0.1 at 65,565.50 (6,556.55): bob's quote amounts.
    assert {k: candle[k] for k in ("open", "high", "low", "close", "volume", "quote_volume", "trades")} == {
        "open": "65532.75",
        "high": "65565.50",
        "low": "65532.75",
        "close": "65565.50",
        "volume": "0.60000000",
        "quote_volume": "39322.93",
        "trades": 2,
    }


# --- Symbols, route names, bad parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/markets/{symbol}/book",
        "/api/v1/orderbook/{symbol}",
        "/api/v1/markets/{symbol}/trades",
        "/api/v1/trades/{symbol}/recent",
        "/api/v1/markets/{symbol}/ticker",
        "/api/v1/markets/{symbol}/candles",
    ],
)
def test_every_spelling_of_a_symbol_and_both_route_names_give_the_same_data(alice_reader, a_days_trading, path):
    def body(symbol: str) -> dict[str, Any]:
        data = get(alice_reader, path.format(symbol=symbol))
        data.pop("timestamp", None)
        return data

    canonical = body("BTC-USD")
    assert canonical["symbol"] == "BTC-USD"
    for spelling in SPELLINGS[1:]:
        assert body(spelling) == canonical, spelling


def test_the_aliases_answer_exactly_what_the_market_routes_answer(alice_reader, a_days_trading):
    book = get(alice_reader, "/api/v1/markets/BTC-USD/book", depth=3)
    alias = get(alice_reader, "/api/v1/orderbook/BTC-USD", depth=3)
    assert {**alias, "timestamp": None} == {**book, "timestamp": None}
    assert len(alias["bids"]) == len(alias["asks"]) == 3
    assert get(alice_reader, "/api/v1/trades/BTC-USD/recent", limit=4) == get(
        alice_reader, "/api/v1/markets/BTC-USD/trades", limit=4
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/markets/BTC-USD/book", {"depth": "0"}),
        ("/api/v1/markets/BTC-USD/book", {"depth": "501"}),
        ("/api/v1/markets/BTC-USD/book", {"depth": "ten"}),
        ("/api/v1/orderbook/BTC-USD", {"depth": "-1"}),
        ("/api/v1/markets/BTC-USD/trades", {"limit": "0"}),
        ("/api/v1/markets/BTC-USD/trades", {"limit": "1001"}),
        ("/api/v1/trades/BTC-USD/recent", {"limit": "1.5"}),
        ("/api/v1/markets/BTC-USD/candles", {"interval": "2m"}),
        ("/api/v1/markets/BTC-USD/candles", {"interval": "1M"}),
        ("/api/v1/markets/BTC-USD/candles", {"interval": "1m", "limit": "0"}),
        ("/api/v1/markets/BTC-USD/candles", {"limit": "100000"}),
    ],
)
def test_bad_market_data_parameters_are_400_validation_error(alice_reader, path, params):
    response = alice_reader.get(path, params)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]["fields"]) <= set(params)


@pytest.mark.parametrize("symbol", ["DOGE-USD", "DOGEUSD", "BTC_EUR", "btc/usdx"])
@pytest.mark.parametrize("path", ["/api/v1/markets/{}/book", "/api/v1/orderbook/{}", "/api/v1/markets/{}/ticker"])
def test_an_unknown_market_is_400_unknown_symbol(alice_reader, path, symbol):
    response = alice_reader.get(path.format(symbol))

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "unknown_symbol"


def test_market_data_needs_a_key(anonymous_client):
    for path in ("/api/v1/markets/BTC-USD/book", "/api/v1/orderbook/BTC-USD", "/api/v1/markets/BTC-USD/ticker"):
        response = anonymous_client.get(path)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"

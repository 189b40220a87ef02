"""A trading day, end to end, as the outside world sees the service.

The real service (gunicorn, two workers) runs on a fresh PostgreSQL database. The only set-up is what an operator
does on the command line (``seed_accounts`` with a YAML file: house liquidity, an operator and a trader with their
API keys). Everything else goes over HTTP with those keys: the operator opens and funds the trader's accounts, the
trader buys and sells on every market by quantity and by quote amount, retries an order, has one refused, reads
orders, trades, balances and journal lines back; the operator moves a price. The test keeps its own book from the
fills the service returned and checks every fill by independent Decimal arithmetic, every balance and every
journal line against it, and ends with a passing reconciliation and a clean SIGTERM.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import client, every, manage, seed_keys
from tests.support.processes import ServiceProcess

D = Decimal
BPS = D(10000)
# Each asset's smallest unit (README, "Money").
QUANTUM = {"BTC": D("0.00000001"), "ETH": D("0.00000001"), "USD": D("0.01"), "USDT": D("0.000001")}
ASSETS = sorted(QUANTUM)

SEED = {
    "house": {"BTC": "50", "ETH": "1000", "USD": "5000000", "USDT": "5000000"},
    "users": [
        {"username": "desk-operator", "scopes": ["operator"]},
        {"username": "quant-trader", "scopes": ["read", "trade"]},  # accounts are opened over HTTP
    ],
}


def ceil_to(value: Decimal, asset: str) -> Decimal:
    return value.quantize(QUANTUM[asset], rounding=ROUND_CEILING)


def floor_to(value: Decimal, asset: str) -> Decimal:
    return value.quantize(QUANTUM[asset], rounding=ROUND_FLOOR)


class Desk:
    """The trading system's side: places orders, checks each fill against the market it saw, and keeps the book
    (expected available balance per account and asset) from deposits and the fills the service returned."""

    def __init__(self, trader: httpx.Client) -> None:
        self.trader = trader
        self.book: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        self.placed: dict[str, dict[str, Any]] = {}  # order_id -> the 201 body
        self.order_posts: Counter[int] = Counter()  # status code -> how many POST /orders answered it

    def deposited(self, account_id: str, asset: str, amount: str) -> None:
        self.book[account_id][asset] += D(amount)

    def post_order(self, payload: dict[str, Any]) -> httpx.Response:
        response = self.trader.post("/orders", json=payload)
        self.order_posts[response.status_code] += 1
        return response

    def order(self, account_id: str, symbol: str, side: str, **amount: str) -> dict[str, Any]:
        """A market order that must fill: checked fill by fill against the quotes the trader saw just before."""
        market = self.trader.get(f"/markets/{symbol}").json()
        payload = {"account_id": account_id, "symbol": symbol, "side": side, "order_type": "market", **amount}
        response = self.post_order(payload)
        assert response.status_code == 201, response.text
        order = response.json()
        check_fill(order, market, payload)
        self.placed[order["order_id"]] = order
        base, quote = symbol.split("-")
        for fill in order["fills"]:
            quantity, quote_amount, fee = D(fill["quantity"]), D(fill["quote_amount"]), D(fill["fee"])
            if side == "buy":
                self.book[account_id][base] += quantity
                self.book[account_id][quote] -= quote_amount + fee
            else:
                self.book[account_id][base] -= quantity
                self.book[account_id][quote] += quote_amount - fee
        return order

    def fills_of(self, account_id: str) -> dict[str, dict[str, Any]]:
        return {
            fill["trade_id"]: {**fill, "order_id": order["order_id"], "symbol": order["symbol"]}
            for order in self.placed.values()
            if order["account_id"] == account_id
            for fill in order["fills"]
        }


def check_fill(order: dict[str, Any], market: dict[str, Any], payload: dict[str, Any]) -> None:
    """The README's pricing rules, recomputed here rather than trusted: price = the ask (buy) or bid (sell), quote
    amount rounded for the house, fee in the quote asset rounded up, quote_quantity respected and used fully."""
    quote = market["quote_asset"]
    reference, spread, fee_bps = D(market["price"]), D(market["spread_bps"]), D(market["taker_fee_bps"])
    half = reference * spread / BPS / 2
    # The house's best quotes: half the spread away, rounded away from the reference price to the price tick.
    tick = D(market["price_tick"])
    bid = ((reference - half) / tick).to_integral_value(rounding="ROUND_FLOOR") * tick
    ask = ((reference + half) / tick).to_integral_value(rounding="ROUND_CEILING") * tick
    assert (D(market["bid"]), D(market["ask"])) == (bid, ask)
    buy = payload["side"] == "buy"

    assert order["status"] == "filled", order
    assert (order["symbol"], order["side"], order["order_type"]) == (market["symbol"], payload["side"], "market")
    assert len(order["fills"]) == 1
    fill = order["fills"][0]
    quantity, price = D(fill["quantity"]), D(fill["price"])
    quote_amount, fee = D(fill["quote_amount"]), D(fill["fee"])
    assert price == (ask if buy else bid)
    assert D(fill["reference_price"]) == reference
    assert quote_amount == (ceil_to if buy else floor_to)(quantity * price, quote)
    assert fee == ceil_to(quote_amount * fee_bps / BPS, quote)
    assert fill["fee_asset"] == order["fee_asset"] == quote
    assert (D(order["filled_quantity"]), D(order["average_price"]), D(order["fee"])) == (quantity, price, fee)
    step = D(market["quantity_step"])
    assert quantity > 0 and quantity % step == 0
    if "quantity" in payload:
        assert quantity == D(payload["quantity"])
    elif buy:
        # The most that fits: this quantity costs (with the fee) at most quote_quantity, one step more does not.
        budget = D(payload["quote_quantity"])
        assert quote_amount + fee <= budget
        more = ceil_to((quantity + step) * price, quote)
        assert more + ceil_to(more * fee_bps / BPS, quote) > budget
    else:
        assert quantity == (D(payload["quote_quantity"]) / price // step) * step


@pytest.mark.slow
def test_a_trading_day_over_http_moves_every_balance_exactly_as_the_fills_say_and_reconciles(
    service: ServiceProcess, tmp_path: Path
) -> None:
    keys = seed_keys(service, SEED, tmp_path)
    assert set(keys) == {"desk-operator", "quant-trader"}
    with client(service, keys["desk-operator"]) as ops, client(service, keys["quant-trader"]) as trader:
        desk = Desk(trader)

        # --- The operator opens two accounts for the trader and funds them -----------------------------------
        accounts, entries = {}, {}
        for label in ("spot", "hedge"):
            response = ops.post("/accounts", json={"label": label, "owner": "quant-trader"})
            assert response.status_code == 201, response.text
            assert (response.json()["owner"], response.json()["status"]) == ("quant-trader", "active")
            accounts[label] = response.json()["account_id"]
        spot, hedge = accounts["spot"], accounts["hedge"]
        for account_id, asset, amount in [
            (spot, "USD", "60000.00"),
            (spot, "USDT", "40000"),
            (hedge, "BTC", "0.75"),
            (hedge, "USD", "1000.50"),
        ]:
            response = ops.post(
                f"/accounts/{account_id}/deposits",
                json={"asset": asset, "amount": amount, "reason": "wire", "idempotency_key": f"{account_id}:{asset}"},
            )
            assert response.status_code == 201, response.text
            assert D(response.json()["transaction"]["amount"]) == D(amount)
            entries[account_id, asset] = response.json()["transaction"]["entry_id"]
            desk.deposited(account_id, asset, amount)
        # A repeated deposit (same idempotency key) funds nothing twice.
        again = ops.post(
            f"/accounts/{spot}/deposits",
            json={"asset": "USD", "amount": "60000.00", "reason": "wire", "idempotency_key": f"{spot}:USD"},
        )
        assert again.status_code in (200, 201), again.text
        assert again.json()["transaction"]["entry_id"] == entries[spot, "USD"]
        assert {b["asset"]: D(b["available"]) for b in again.json()["balances"]}["USD"] == D("60000.00")

        # Roles hold over HTTP: a trader cannot fund itself, an operator cannot trade.
        assert trader.post(f"/accounts/{spot}/deposits", json={"asset": "USD", "amount": "1"}).status_code == 403
        order_by_operator = {
            "account_id": spot,
            "symbol": "BTC-USD",
            "side": "buy",
            "order_type": "market",
            "quantity": "0.001",
        }
        refused_to_operator = ops.post("/orders", json=order_by_operator)
        desk.order_posts[refused_to_operator.status_code] += 1
        assert refused_to_operator.status_code == 403
        assert refused_to_operator.json()["error"]["code"] == "permission_denied"

        # --- The trader lists its accounts --------------------------------------------------------------------
        listed = every(trader, "/accounts", "accounts")
        assert {a["account_id"]: a["label"] for a in listed} == {spot: "spot", hedge: "hedge"}
        assert {a["owner"] for a in listed} == {"quant-trader"}

        # --- Trading across every market, by quantity and by quote amount ---------------------------------------
        first_payload = {
            "account_id": spot,
            "symbol": "BTC-USD",
            "side": "buy",
            "order_type": "market",
            "quantity": "0.25",
            "client_order_id": "qt-0001",
        }
        first = desk.order(spot, "BTC-USD", "buy", quantity="0.25", client_order_id="qt-0001")
        # A retry (the trading system timed out and sent it again) returns the original order and moves nothing.
        retry = desk.post_order(first_payload)
        assert retry.status_code == 200, retry.text
        assert retry.json() == first
        # "BTC/USD" is the same market.
        retried_slash = desk.post_order({**first_payload, "symbol": "BTC/USD"})
        assert (retried_slash.status_code, retried_slash.json()) == (200, first)

        desk.order(spot, "ETH-USD", "buy", quote_quantity="7000.00")
        desk.order(spot, "BTC-USDT", "buy", quantity="0.1")
        desk.order(spot, "ETH-USDT", "buy", quote_quantity="10000")
        desk.order(spot, "ETH-BTC", "sell", quantity="1.5")
        desk.order(spot, "ETH-BTC", "buy", quote_quantity="0.02")
        before_move = desk.order(spot, "BTC-USD", "sell", quote_quantity="3000.00")
        desk.order(hedge, "BTC-USDT", "sell", quantity="0.3")

        # --- The operator moves BTC-USD; later fills use the new price ---------------------------------------
        moved = ops.post("/markets/BTC-USD/price", json={"price": "71000.00", "reason": "e2e: market moved"})
        assert moved.status_code == 200, moved.text
        assert D(moved.json()["price"]) == D("71000.00")
        seen = trader.get("/markets/BTC/USD").json()
        assert (D(seen["price"]), D(seen["bid"]), D(seen["ask"])) == (D("71000.00"), D("70964.50"), D("71035.50"))
        after_move = desk.order(spot, "BTC-USD", "sell", quantity="0.1")
        assert D(after_move["fills"][0]["reference_price"]) == D("71000.00")
        assert D(after_move["fills"][0]["price"]) == D("70964.50")
        assert D(before_move["fills"][0]["reference_price"]) == D("65000.00")
        desk.order(hedge, "BTC-USD", "sell", quote_quantity="5000.00")
        desk.order(hedge, "ETH-USD", "buy", quantity="0.5")

        # --- One refusal: stored as a rejected order, money untouched -----------------------------------------
        short = {
            "account_id": spot,
            "symbol": "BTC-USD",
            "side": "buy",
            "order_type": "market",
            "quantity": "2",
            "client_order_id": "qt-too-big",
        }
        refused = desk.post_order(short)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "insufficient_balance"
        rejected_id = error["details"]["order_id"]
        assert error["details"]["order"]["status"] == "rejected"
        assert error["details"]["order"]["reject_reason"] == "insufficient_balance"
        assert error["details"]["order"]["fills"] == []
        # Retrying a refused order gives the same refusal, not a second order.
        refused_again = desk.post_order(short)
        assert refused_again.status_code == 422
        assert refused_again.json()["error"]["details"]["order_id"] == rejected_id

        # --- Reading everything back --------------------------------------------------------------------------
        rejected = every(trader, "/orders", "orders", status="rejected")
        assert [o["order_id"] for o in rejected] == [rejected_id]
        assert rejected[0]["reject_reason"] == "insufficient_balance"
        assert trader.get(f"/orders/{rejected_id}").json()["status"] == "rejected"

        orders = every(trader, "/orders", "orders")
        assert {o["order_id"] for o in orders} == {*desk.placed, rejected_id}
        assert len(orders) == len(desk.placed) + 1  # the retries made no orders
        created = [o["created_at"] for o in orders]
        assert created == sorted(created, reverse=True)  # newest first
        assert {o["order_id"] for o in every(trader, "/orders", "orders", status="filled")} == set(desk.placed)
        btc_usd_spot = every(trader, "/orders", "orders", account_id=spot, symbol="BTC-USD")
        assert {o["order_id"] for o in btc_usd_spot} == {
            oid for oid, o in desk.placed.items() if (o["account_id"], o["symbol"]) == (spot, "BTC-USD")
        } | {rejected_id}
        for order_id, placed in desk.placed.items():
            detail = trader.get(f"/orders/{order_id}")
            assert detail.status_code == 200
            assert detail.json() == placed

        trades = every(trader, "/trades", "trades")
        assert len(trades) == len(desk.placed)
        for account_id in (spot, hedge):
            fills = desk.fills_of(account_id)
            listed_trades = {t["trade_id"]: t for t in every(trader, "/trades", "trades", account_id=account_id)}
            assert set(listed_trades) == set(fills)
            for trade_id, fill in fills.items():
                trade = listed_trades[trade_id]
                for field in (
                    "order_id",
                    "symbol",
                    "side",
                    "quantity",
                    "price",
                    "quote_amount",
                    "fee",
                    "fee_asset",
                    "reference_price",
                    "journal_entry_id",
                ):
                    assert trade[field] == fill[field], (field, trade, fill)
        by_order = every(trader, "/trades", "trades", order_id=first["order_id"])
        assert [t["trade_id"] for t in by_order] == [first["fills"][0]["trade_id"]]

        # --- Balances move exactly as the fills say ---------------------------------------------------------
        for account_id in (spot, hedge):
            response = trader.get(f"/accounts/{account_id}/balances")
            assert response.status_code == 200
            balances = {b["asset"]: b for b in response.json()["balances"]}
            assert sorted(balances) == ASSETS
            expected = desk.book[account_id]
            for asset in ASSETS:
                assert D(balances[asset]["available"]) == expected[asset], (account_id, asset, balances[asset])
                assert D(balances[asset]["locked"]) == 0
                assert D(balances[asset]["total"]) == expected[asset]
            assert all(v >= 0 for v in expected.values())
            # The account view agrees with the balances endpoint.
            detail = trader.get(f"/accounts/{account_id}").json()
            assert {b["asset"]: D(b["available"]) for b in detail["balances"]} == {a: expected[a] for a in ASSETS}

            # ...and so do the journal lines: each asset's lines sum to its balance, one trade line per fill
            # and asset, and they name the trades the trader was told about.
            lines = every(trader, f"/accounts/{account_id}/transactions", "transactions")
            per_asset: dict[str, Decimal] = defaultdict(Decimal)
            for line in lines:
                assert line["bucket"] == "available"
                per_asset[line["asset"]] += D(line["amount"])
            assert {a: per_asset[a] for a in ASSETS} == {a: expected[a] for a in ASSETS}
            trade_lines = [line for line in lines if line["kind"] == "trade"]
            fills = desk.fills_of(account_id)
            assert {line["trade_id"] for line in trade_lines} == set(fills)
            assert len(trade_lines) == 2 * len(fills)
            only_trades = every(trader, f"/accounts/{account_id}/transactions", "transactions", kind="trade")
            assert {line["transaction_id"] for line in only_trades} == {line["transaction_id"] for line in trade_lines}
            for trade_id, fill in fills.items():
                base, quote = fill["symbol"].split("-")
                amounts = {line["asset"]: D(line["amount"]) for line in trade_lines if line["trade_id"] == trade_id}
                sign = 1 if fill["side"] == "buy" else -1
                assert amounts[base] == sign * D(fill["quantity"])
                assert amounts[quote] == -sign * D(fill["quote_amount"]) - D(fill["fee"])

        # --- Reconciliation: the operator's command, and the API when it exists -----------------------------
        result = manage(service, "reconcile")
        assert "reconciliation OK" in result.stdout
        report = ops.get("/reconciliation")
        if report.status_code != 404:  # GET /api/v1/reconciliation is being added; checked once it exists
            assert report.status_code == 200, report.text
            assert report.json()["ok"] is True
            assert trader.get("/reconciliation").status_code == 403

        # --- Metrics count the order requests by status --------------------------------------------------------
        metrics = httpx.get(f"{service.base_url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert order_responses(metrics.text) == dict(desk.order_posts)

    assert service.terminate() == 0
    assert '"service_stopped"' in service.output()


def order_responses(text: str) -> dict[int, int]:
    """POST /api/v1/orders responses by status, from django-prometheus's per-view counter (all workers)."""
    counts: dict[int, int] = {}
    for line in text.splitlines():
        if not line.startswith("django_http_responses_total_by_status_view_method_total{"):
            continue
        labels_text, value = line.rsplit(" ", 1)
        labels = dict(part.split("=", 1) for part in labels_text[labels_text.index("{") + 1 : -1].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("view") == "order-list" and labels.get("method") == "POST":
            counts[int(labels["status"])] = counts.get(int(labels["status"]), 0) + int(float(value))
    return counts

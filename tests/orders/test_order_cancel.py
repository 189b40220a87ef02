"""Cancelling resting orders: one, or all of an account's (on one market or every market); what each releases, by
value; who may cancel; the open-orders list; and a cancel racing a fill on PostgreSQL.

BTC-USD at 65,000.00 (the house quotes 64,967.50 / 65,032.50), ETH-USD at 3,500.00; maker fee 5 bps.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D
from typing import Any

import pytest

from accounts import services as account_services
from ledger.models import JournalEntry
from markets.models import Market
from orders.models import Order, Trade
from tests.factories import UserFactory, make_account
from tests.helpers import balances_of, lines_of, money_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices(alice, house):
    return make_account(owner=alice, label="alice", funds={"BTC": "1", "USD": "30000"})


@pytest.fixture
def bobs(bob, house):
    return make_account(owner=bob, label="bob", funds={"BTC": "1", "USD": "30000"})


def place(client, account, **fields) -> dict[str, Any]:
    body = {"account_id": str(account.account_id), "symbol": "BTC-USD", "order_type": "limit", **fields}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_cancelling_a_partly_filled_buy_releases_exactly_what_it_still_holds(alice_client, bob_client, alices, bobs):
    # 0.3 x 64,990.00 = 19,497.00, plus 5 bps (9.7485 -> 9.75): 19,506.75 locked.
    rest = place(alice_client, alices, side="buy", price="64990.00", quantity="0.3")
    assert rest["reserved"] == "19506.75"
    # bob sells 0.1 into it: alice pays 6,499.00 and 3.25 of fee (5 bps of 6,499.00 = 3.2495) from the lock.
    sold = place(bob_client, bobs, side="sell", order_type="market", quantity="0.1")
    assert sold["fills"][0]["price"] == "64990.00"
    assert balances_of(alices)["USD"] == (D("10493.25"), D("13004.50"))

    response = alice_client.delete(f"/api/v1/orders/{rest['order_id']}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["end_reason"], body["reserved"]) == ("cancelled", "cancelled", "0.00")
    assert (body["filled_quantity"], body["remaining_quantity"], body["fee"]) == ("0.10000000", "0.20000000", "3.25")
    # What is left: 0.2 x 64,990.00 = 12,998.00 and the fee not yet paid, 9.75 - 3.25 = 6.50.
    release = JournalEntry.objects.get(kind="release", reference_id=rest["order_id"])
    assert lines_of(release) == [
        ("customer_available", "USD", "alice", D("13004.50")),
        ("customer_locked", "USD", "alice", D("-13004.50")),
    ]
    assert balances_of(alices)["USD"] == (D("23497.75"), D("0"))
    assert balances_of(alices)["BTC"] == (D("1.1"), D("0"))


def test_cancelling_a_resting_sell_gives_back_its_base(alice_client, alices):
    rest = place(alice_client, alices, side="sell", price="65500.00", quantity="0.25")
    assert balances_of(alices)["BTC"] == (D("0.75"), D("0.25"))

    body = alice_client.delete(f"/api/v1/orders/{rest['order_id']}").json()

    assert (body["status"], body["reserved"], body["reserved_asset"]) == ("cancelled", "0.00000000", "BTC")
    assert balances_of(alices)["BTC"] == (D("1"), D("0"))
    assert lines_of(JournalEntry.objects.get(kind="release", reference_id=rest["order_id"])) == [
        ("customer_available", "BTC", "alice", D("0.25")),
        ("customer_locked", "BTC", "alice", D("-0.25")),
    ]


def test_cancel_all_cancels_the_accounts_resting_orders_on_one_market_then_on_every_market(alice, alice_client, alices):
    other = make_account(owner=alice, label="other", funds={"USD": "10000"})
    btc_buy = place(alice_client, alices, side="buy", price="60000.00", quantity="0.1")  # 6,003.00 locked
    btc_sell = place(alice_client, alices, side="sell", price="70000.00", quantity="0.2")
    eth_buy = place(alice_client, alices, symbol="ETH-USD", side="buy", price="3000.00", quantity="1")  # 3,001.50
    filled = place(alice_client, alices, side="buy", order_type="market", quantity="0.01")
    kept = place(alice_client, other, side="buy", price="60000.00", quantity="0.1")
    usd_before = balances_of(alices)["USD"]
    assert usd_before[1] == D("9004.50")

    one_market = alice_client.delete(f"/api/v1/orders?account_id={alices.account_id}&symbol=btc_usd")

    assert one_market.status_code == 200, one_market.content
    cancelled = {o["order_id"]: o for o in one_market.json()["orders"]}
    assert set(cancelled) == {btc_buy["order_id"], btc_sell["order_id"]}
    assert {(o["status"], o["reserved"]) for o in cancelled.values()} == {
        ("cancelled", "0.00"),
        ("cancelled", "0.00000000"),
    }
    assert balances_of(alices)["USD"] == (usd_before[0] + D("6003.00"), D("3001.50"))
    assert balances_of(alices)["BTC"][1] == D("0")
    assert {Order.objects.get(order_id=o["order_id"]).status for o in (eth_buy, kept)} == {"open"}

    every_market = alice_client.delete(f"/api/v1/orders?account_id={alices.account_id}").json()["orders"]

    assert [o["order_id"] for o in every_market] == [eth_buy["order_id"]]
    assert balances_of(alices)["USD"] == (usd_before[0] + D("9004.50"), D("0"))
    assert alice_client.delete(f"/api/v1/orders?account_id={alices.account_id}").json() == {"orders": []}
    assert Order.objects.get(order_id=filled["order_id"]).status == "filled"
    assert Order.objects.get(order_id=kept["order_id"]).status == "open"
    assert balances_of(other)["USD"] == (D("3997.00"), D("6003.00"))


def test_another_users_order_answers_404_and_stays_resting(alice_client, bob_client, alices):
    rest = place(alice_client, alices, side="buy", price="60000.00", quantity="0.1")
    before = money_snapshot()

    one = bob_client.delete(f"/api/v1/orders/{rest['order_id']}")
    every = bob_client.delete(f"/api/v1/orders?account_id={alices.account_id}")

    assert (one.status_code, one.json()["error"]["code"]) == (404, "not_found")
    assert (every.status_code, every.json()["error"]["code"]) == (404, "not_found")
    assert money_snapshot() == before
    assert Order.objects.get(order_id=rest["order_id"]).status == "open"


@pytest.mark.parametrize("who", ["operator_client", "alice_reader"])
def test_a_key_without_the_trade_scope_cannot_cancel(request, alice_client, alices, who):
    rest = place(alice_client, alices, side="buy", price="60000.00", quantity="0.1")
    client = request.getfixturevalue(who)
    before = money_snapshot()

    one = client.delete(f"/api/v1/orders/{rest['order_id']}")
    every = client.delete(f"/api/v1/orders?account_id={alices.account_id}")

    assert (one.status_code, one.json()["error"]["code"]) == (403, "permission_denied")
    assert (every.status_code, every.json()["error"]["code"]) == (403, "permission_denied")
    assert money_snapshot() == before
    # The operator still sees it (read), and it is still open.
    assert client.get(f"/api/v1/orders/{rest['order_id']}").json()["status"] == "open"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/orders/not-an-order", 404, "not_found"),
        ("/api/v1/orders/00000000-0000-0000-0000-000000000000", 404, "not_found"),
        ("/api/v1/orders", 400, "validation_error"),  # cancel-all needs an account
        ("/api/v1/orders?account_id=nope", 400, "validation_error"),
        ("/api/v1/orders?account_id={account}&symbol=DOGE-USD", 400, "unknown_symbol"),
    ],
)
def test_bad_cancel_requests_are_refused_with_a_stable_code(alice_client, alices, path, status, code):
    place(alice_client, alices, side="buy", price="60000.00", quantity="0.1")
    before = money_snapshot()

    response = alice_client.delete(path.format(account=alices.account_id))

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert money_snapshot() == before


def test_final_orders_cannot_be_cancelled(alice_client, alices):
    filled = place(alice_client, alices, side="buy", order_type="market", quantity="0.01")
    ioc = place(alice_client, alices, side="buy", price="60000.00", quantity="0.01", time_in_force="ioc")
    rejected = alice_client.post(
        "/api/v1/orders",
        {"account_id": str(alices.account_id), "symbol": "BTC-USD", "side": "buy", "order_type": "limit"}
        | {"price": "60000.00", "quantity": "5"},
        format="json",
    ).json()["error"]["details"]["order"]

    for order, status in ((filled, "filled"), (ioc, "expired"), (rejected, "rejected")):
        response = alice_client.delete(f"/api/v1/orders/{order['order_id']}")
        assert response.status_code == 409, (status, response.content)
        error = response.json()["error"]
        assert (error["code"], error["details"]["status"]) == ("order_not_cancelable", status)


def test_open_orders_are_the_resting_ones_open_and_partially_filled(alice_client, bob_client, alices, bobs):
    open_buy = place(alice_client, alices, side="buy", price="60000.00", quantity="0.1")
    partly = place(alice_client, alices, side="sell", price="65010.00", quantity="0.3")
    place(bob_client, bobs, side="buy", order_type="market", quantity="0.1")  # takes 0.1 of alice's sell
    cancelled = place(alice_client, alices, side="buy", price="61000.00", quantity="0.1")
    alice_client.delete(f"/api/v1/orders/{cancelled['order_id']}")
    place(alice_client, alices, side="sell", order_type="market", quantity="0.01")  # filled by the house
    eth = place(alice_client, alices, symbol="ETH-USD", side="buy", price="3000.00", quantity="0.5")
    bobs_open = place(bob_client, bobs, side="buy", price="60000.00", quantity="0.1")

    listed = alice_client.get("/api/v1/orders", {"status": "open"}).json()["orders"]

    # Newest first; alice sees only hers.
    assert [(o["order_id"], o["status"]) for o in listed] == [
        (eth["order_id"], "open"),
        (partly["order_id"], "partially_filled"),
        (open_buy["order_id"], "open"),
    ]
    assert [o["reserved"] for o in listed] == ["1500.75", "0.20000000", "6003.00"]
    btc = alice_client.get("/api/v1/orders", {"status": "open", "symbol": "BTC/USD"}).json()["orders"]
    assert [o["order_id"] for o in btc] == [partly["order_id"], open_buy["order_id"]]
    only_partly = alice_client.get("/api/v1/orders", {"status": "partially_filled"}).json()["orders"]
    assert [o["order_id"] for o in only_partly] == [partly["order_id"]]
    assert [o["order_id"] for o in bob_client.get("/api/v1/orders", {"status": "open"}).json()["orders"]] == [
        bobs_open["order_id"]
    ]


# --- A cancel racing a fill ----------------------------------------------------------------------------------------
ROUNDS = 30


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_cancel_racing_a_fill_lets_exactly_one_win_and_releases_the_funds_once(postgres):
    """alice rests a sell of 0.01 BTC at 65,010.00; at once bob sends an IOC buy of exactly that at that price (the
    house asks more) and alice cancels. Each round exactly one wins: the fill (alice's order filled, the cancel
    refused) or the cancel (released, bob's IOC expires with nothing)."""
    from django.db import connections

    from exchange import errors
    from orders.services import OrderRequest, order_cancel, order_place

    operator = UserFactory(username="ops")
    for asset, amount in {"BTC": "10", "USD": "1000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=operator)
    seller = make_account(owner=UserFactory(username="alice"), label="alice", funds={"BTC": "1"})
    buyer = make_account(owner=UserFactory(username="bob"), label="bob", funds={"USD": "100000"})
    market = Market.objects.get(symbol="BTC-USD")

    def limit(account, side: str, tif: str) -> OrderRequest:
        return OrderRequest(
            account=account,
            market=market,
            side=side,
            order_type="limit",
            price=D("65010.00"),
            quantity=D("0.01"),
            time_in_force=tif,
        )

    outcomes: list[str] = []
    for _ in range(ROUNDS):
        resting = order_place(request=limit(seller, "sell", "gtc"), actor=None)[0].order
        barrier = threading.Barrier(2)
        result: dict[str, Any] = {}

        def cancel(order=resting, barrier=barrier, result=result) -> None:
            try:
                barrier.wait(timeout=10)
                result["cancel"] = order_cancel(order=order, actor=None).status
            except errors.OrderNotCancelable as exc:
                result["cancel"] = exc.code
            except Exception as exc:
                result["cancel"] = exc
            finally:
                connections.close_all()

        def take(barrier=barrier, result=result) -> None:
            try:
                barrier.wait(timeout=10)
                result["take"] = order_place(request=limit(buyer, "buy", "ioc"), actor=None)[0].order
            except Exception as exc:
                result["take"] = exc
            finally:
                connections.close_all()

        threads = [threading.Thread(target=cancel), threading.Thread(target=take)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        resting.refresh_from_db()
        taker = result["take"]
        assert isinstance(taker, Order), result
        if result["cancel"] == "cancelled":
            assert (resting.status, taker.status, taker.filled_quantity) == ("cancelled", "expired", D("0"))
            outcomes.append("cancel")
        else:
            assert result["cancel"] == "order_not_cancelable", result
            assert (resting.status, taker.status, taker.filled_quantity) == ("filled", "filled", D("0.01"))
            outcomes.append("fill")
        # Released once (by the cancel) or spent once (by the fill), never both.
        releases = JournalEntry.objects.filter(kind="release", reference_id=str(resting.order_id)).count()
        trades = Trade.objects.filter(maker_order=resting).count()
        assert (releases, trades) in ((1, 0), (0, 1)), (releases, trades)
        assert resting.locked == 0
        assert balances_of(seller)["BTC"][1] == D("0")

    fills = outcomes.count("fill")
    # 0.01 at 65,010.00 = 650.10: alice receives it less 5 bps (0.33), bob pays it plus 10 bps (0.66).
    assert balances_of(seller)["BTC"] == (D("1") - D("0.01") * fills, D("0"))
    assert balances_of(seller)["USD"] == (D("649.77") * fills, D("0"))
    assert balances_of(buyer)["USD"] == (D("100000") - D("650.76") * fills, D("0"))
    assert balances_of(buyer)["BTC"] == (D("0.01") * fills, D("0"))
    from ledger.reconciliation import reconcile

    report = reconcile()
    assert report.ok, report.discrepancies


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cancel_all_across_markets_and_a_cancel_on_one_of_them_do_not_deadlock(postgres, monkeypatch):
    """alice cancels all her orders (BTC-USD, then ETH-USD) while another of her clients cancels her ETH-USD buy.
    The two are made to interleave at the worst moment: cancel-all has settled BTC-USD (her USD balance row is
    locked) and is about to lock ETH-USD, which the single cancel holds and then needs her USD row for. Both must
    succeed, each order cancelled once."""
    from django.db import connections

    from orders import services

    operator = UserFactory(username="ops")
    account_services.house_fund(asset="USD", amount="1000000", actor=operator)
    alices = make_account(owner=UserFactory(username="alice"), label="alice", funds={"USD": "20000"})
    btc, eth = Market.objects.get(symbol="BTC-USD"), Market.objects.get(symbol="ETH-USD")

    def rest(market, price: str, quantity: str) -> Order:
        request = services.OrderRequest(
            account=alices,
            market=market,
            side="buy",
            order_type="limit",
            price=D(price),
            quantity=D(quantity),
        )
        return services.order_place(request=request, actor=None)[0].order

    btc_buy, eth_buy = rest(btc, "60000.00", "0.1"), rest(eth, "3000.00", "1")
    cancel_all_waits, single_locked = threading.Event(), threading.Event()
    real_lock = services._lock_market
    cancel_all_thread: list[threading.Thread] = []

    def lock_market(market_pk: int, **kwargs: Any):
        if threading.current_thread() in cancel_all_thread and market_pk == eth.pk:
            cancel_all_waits.set()
            single_locked.wait(timeout=10)
            time.sleep(0.3)  # the single cancel is now waiting for alice's balance rows, if they are held
        book = real_lock(market_pk, **kwargs)
        if threading.current_thread() not in cancel_all_thread:
            single_locked.set()
        return book

    monkeypatch.setattr(services, "_lock_market", lock_market)
    results: dict[str, Any] = {}

    def cancel_all() -> None:
        try:
            results["all"] = [o.order_id for o in services.order_cancel_all(account=alices, actor=None)]
        except Exception as exc:
            results["all"] = exc
        finally:
            connections.close_all()

    def cancel_one() -> None:
        try:
            cancel_all_waits.wait(timeout=10)
            results["one"] = services.order_cancel(order=eth_buy, actor=None).status
        except Exception as exc:
            results["one"] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=cancel_all), threading.Thread(target=cancel_one)]
    cancel_all_thread.append(threads[0])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results["one"] == "cancelled", results
    assert results["all"] == [btc_buy.order_id], results
    assert {o.status for o in Order.objects.filter(pk__in=[btc_buy.pk, eth_buy.pk])} == {"cancelled"}
    assert JournalEntry.objects.filter(kind="release").count() == 2
    assert balances_of(alices)["USD"] == (D("20000"), D("0"))


def test_suspending_an_account_cancels_its_resting_orders_and_releases_what_they_hold(
    operator_client, alice_client, alice_account
):
    # alice rests a buy of 0.1 BTC at 60,000.00: 6,000.00 + 3.00 maker fee locked.
    rest = alice_client.post(
        "/api/v1/orders",
        {
            "account_id": str(alice_account.account_id),
            "symbol": "BTC-USD",
            "side": "buy",
            "order_type": "limit",
            "price": "60000.00",
            "quantity": "0.1",
        },
        format="json",
    ).json()
    assert rest["status"] == "open" and rest["reserved"] == "6003.00"

    response = operator_client.post(
        f"/api/v1/accounts/{alice_account.account_id}/suspend", {"reason": "kyc"}, format="json"
    )

    assert response.status_code == 200, response.content
    order = alice_client.get(f"/api/v1/orders/{rest['order_id']}").json()
    assert (order["status"], order["end_reason"], order["reserved"]) == ("cancelled", "account_suspended", "0.00")
    usd = alice_account.balances.get(asset_id="USD")
    assert (usd.available, usd.locked) == (D("10000.00"), D("0"))

"""The operator's trading screens: orders and trades can be searched and read but never added, edited or
deleted; list pages cost a fixed number of queries however many rows; a market's price changed in the admin goes
through the same service as the API (validated, locked, kept in history with the operator)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from django.urls import reverse

from accounts import services as account_services
from markets.models import Market, MarketStatus
from orders import services
from orders.models import Fill, Order, OrderStatus, Trade
from tests.factories import make_account

pytestmark = pytest.mark.django_db

# Session, user, the page's rows, the paginator's count, the filters' choices and the date hierarchy: well below
# this whatever the number of rows.
QUERY_BOUND = 20


@pytest.fixture
def house(admin_user):
    for asset, amount in {"BTC": "80", "ETH": "800", "USD": "8000000", "USDT": "8000000"}.items():
        account_services.house_fund(asset=asset, amount=amount, actor=admin_user)


def place(
    account: Any,
    *,
    side: str = "buy",
    quantity: str = "0.001",
    symbol: str = "BTC-USD",
    client_order_id: str | None = None,
) -> Order:
    placed, _created = services.order_place(
        request=services.OrderRequest(
            account=account,
            market=Market.objects.get(symbol=symbol),
            side=side,
            order_type="market",
            quantity=D(quantity),
            quote_quantity=None,
            client_order_id=client_order_id,
        ),
        actor=account.owner,
    )
    return placed.order


def populate(count: int, *, owner: Any) -> None:
    """``count`` orders on a new account holding 10,000 USD: small buys that fill, and every third one (1 BTC)
    too large, so rejected."""
    account = make_account(owner=owner, label=f"acct{Order.objects.count()}", funds={"USD": "10000"})
    for n in range(count):
        place(account, quantity="1" if n % 3 == 2 else "0.001")


def ids(response: Any) -> list[Any]:
    return [obj.pk for obj in response.context["cl"].result_list]


# --- Orders and trades are read-only -------------------------------------------------------------------------
@pytest.fixture
def filled(alice, alice_account, house) -> Order:
    return place(alice_account, client_order_id="admin-find-me")


@pytest.mark.parametrize("model", ["order", "trade"])
def test_orders_and_trades_cannot_be_added_or_deleted(admin_client, filled, model):
    obj = filled if model == "order" else filled.fills.get().trade

    assert admin_client.get(reverse(f"admin:orders_{model}_add")).status_code == 403
    assert admin_client.get(reverse(f"admin:orders_{model}_delete", args=[obj.pk])).status_code == 403
    assert admin_client.post(reverse(f"admin:orders_{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    changelist = admin_client.get(reverse(f"admin:orders_{model}_changelist"))
    assert changelist.context["action_form"] is None  # no bulk actions at all, so no "delete selected"
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_order_change_page_shows_the_order_and_its_fill_read_only(admin_client, filled):
    response = admin_client.get(reverse("admin:orders_order_change", args=[filled.pk]))

    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    [inline] = response.context["inline_admin_formsets"]
    assert inline.opts.model is Fill
    assert str(filled.fills.get().trade) in response.content.decode()


def test_posting_an_order_change_changes_nothing(admin_client, filled):
    before = Order.objects.filter(pk=filled.pk).values().get()

    response = admin_client.post(
        reverse("admin:orders_order_change", args=[filled.pk]),
        {"status": "cancelled", "fee": "0", "reject_reason": "x"},
    )

    assert response.status_code == 403
    assert Order.objects.filter(pk=filled.pk).values().get() == before
    assert filled.history.count() == 1


def test_posting_a_trade_change_changes_nothing(admin_client, filled):
    trade = filled.fills.get().trade
    before = Trade.objects.filter(pk=trade.pk).values().get()

    response = admin_client.post(reverse("admin:orders_trade_change", args=[trade.pk]), {"price": "1", "fee": "0"})

    assert response.status_code == 403
    assert Trade.objects.filter(pk=trade.pk).values().get() == before


# --- Filters and search ------------------------------------------------------------------------------------
def test_order_changelist_filters_by_status_and_finds_a_client_order_id(admin_client, alice, filled):
    populate(3, owner=alice)  # two more filled, one rejected
    url = reverse("admin:orders_order_changelist")

    filled_only = admin_client.get(url, {"status": "filled"})
    rejected_only = admin_client.get(url, {"status": "rejected"})
    found = admin_client.get(url, {"q": "admin-find-me"})

    assert set(ids(filled_only)) == set(Order.objects.filter(status=OrderStatus.FILLED).values_list("pk", flat=True))
    assert len(ids(filled_only)) == 3
    assert [Order.objects.get(pk=pk).reject_reason for pk in ids(rejected_only)] == ["insufficient_balance"]
    assert ids(found) == [filled.pk]
    assert ids(admin_client.get(url, {"q": str(filled.order_id)})) == [filled.pk]
    assert ids(admin_client.get(url, {"q": "alice"})) == list(
        Order.objects.order_by("-pk").values_list("pk", flat=True)
    )


def test_trade_changelist_filters_by_side_and_finds_an_order_id(admin_client, alice, filled):
    seller = make_account(owner=alice, label="seller", funds={"BTC": "1"})
    sold = place(seller, side="sell", quantity="0.01")
    url = reverse("admin:orders_trade_changelist")

    assert ids(admin_client.get(url, {"taker_side": "sell"})) == [sold.fills.get().trade_id]
    assert ids(admin_client.get(url, {"taker_side": "buy"})) == [filled.fills.get().trade_id]
    assert ids(admin_client.get(url, {"q": str(sold.order_id)})) == [sold.fills.get().trade_id]


# --- Query counts --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url_name", ["admin:orders_order_changelist", "admin:orders_trade_changelist"])
def test_changelist_costs_the_same_queries_for_3_orders_as_for_30(
    admin_client, admin_user, house, url_name, django_assert_max_num_queries
):
    url = reverse(url_name)
    populate(3, owner=admin_user)
    admin_client.get(url)  # warm the per-process caches (content types) so both measurements are alike

    with django_assert_max_num_queries(QUERY_BOUND) as with_3:
        assert admin_client.get(url).status_code == 200
    populate(27, owner=admin_user)
    with django_assert_max_num_queries(QUERY_BOUND) as with_30:
        assert admin_client.get(url).status_code == 200

    assert Order.objects.count() == 30
    assert len(with_30) == len(with_3)


# --- Markets -----------------------------------------------------------------------------------------------
def market_form_data(admin_client: Any, market: Market, **changes: str) -> dict[str, Any]:
    """The market's change form as the admin renders it, with ``changes`` typed in."""
    form = admin_client.get(reverse("admin:markets_market_change", args=[market.pk])).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form.initial.get(name)
        data[name] = "" if value is None else str(value)
    return {**data, **changes}


def test_market_price_edited_in_the_admin_goes_through_the_service(admin_client, admin_user):
    market = Market.objects.get(symbol="BTC-USD")

    response = admin_client.post(
        reverse("admin:markets_market_change", args=[market.pk]),
        market_form_data(admin_client, market, reference_price="70000.00"),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    market.refresh_from_db()
    assert market.reference_price == D("70000.00")
    latest = market.history.latest()
    assert (latest.reference_price, latest.history_user, latest.history_change_reason) == (
        D("70000.00"),
        admin_user,
        "admin",
    )
    # Every version the edit wrote names the admin user, and none shows a price that was never set.
    edits = market.history.exclude(history_change_reason="initial reference data")
    assert {v.history_user for v in edits} == {admin_user}
    assert {v.reference_price for v in market.history.all()} == {D("65000.00"), D("70000.00")}


def test_market_rules_edited_in_the_admin_are_kept_in_history(admin_client, admin_user):
    market = Market.objects.get(symbol="ETH-USD")

    response = admin_client.post(
        reverse("admin:markets_market_change", args=[market.pk]),
        market_form_data(admin_client, market, spread_bps="20", min_notional="5"),
    )

    assert response.status_code == 302
    market.refresh_from_db()
    assert (market.spread_bps, market.min_notional, market.reference_price) == (D("20"), D("5"), D("3500.00"))
    latest = market.history.latest()
    assert (latest.spread_bps, latest.history_user) == (D("20"), admin_user)


def test_a_spread_edited_in_the_admin_moves_the_book_and_fills_what_the_house_now_crosses(admin_client, house):
    from tests.helpers import balances_of

    market = Market.objects.get(symbol="BTC-USD")
    alices = make_account(label="alice", funds={"USD": "10000"})
    # Inside the 10 bps spread: the house asks 65,032.50. 6,502.00 + 5 bps (3.251 -> 3.26) locked.
    rest, _ = services.order_place(
        request=services.OrderRequest(
            account=alices,
            market=market,
            side="buy",
            order_type="limit",
            price=D("65020.00"),
            quantity=D("0.1"),
        ),
        actor=None,
    )
    data = market_form_data(admin_client, market, spread_bps="2")
    # While the operator edits, the book changes: the sequence the form was rendered with is out of date.
    place(make_account(label="bob", funds={"USD": "1000"}), quantity="0.01")
    market.refresh_from_db()
    before = market.book_sequence

    response = admin_client.post(reverse("admin:markets_market_change", args=[market.pk]), data)

    assert response.status_code == 302
    market.refresh_from_db()
    assert market.spread_bps == D("2")
    assert market.book_sequence > before
    # At 2 bps the house asks 65,006.50, below alice's bid: it fills her at her price.
    order = Order.objects.get(pk=rest.order.pk)
    assert (order.status, order.filled_quote, order.fee) == ("filled", D("6502.00"), D("3.26"))
    assert Trade.objects.get(maker_order=order).taker_order is None
    assert balances_of(alices)["USD"] == (D("3494.74"), D("0"))


@pytest.mark.parametrize("price", ["0", "-5", "65000.001"])
def test_bad_price_in_the_admin_is_shown_as_a_form_error_and_changes_nothing(admin_client, price):
    market = Market.objects.get(symbol="BTC-USD")
    versions = market.history.count()

    response = admin_client.post(
        reverse("admin:markets_market_change", args=[market.pk]),
        market_form_data(admin_client, market, reference_price=price, spread_bps="30"),
    )

    assert response.status_code == 200
    assert "reference_price" in response.context["adminform"].form.errors
    market.refresh_from_db()
    assert (market.reference_price, market.spread_bps) == (D("65000.00"), None)
    assert market.history.count() == versions


def test_markets_cannot_be_added_or_deleted_in_the_admin(admin_client):
    market = Market.objects.get(symbol="BTC-USD")

    assert admin_client.get(reverse("admin:markets_market_add")).status_code == 403
    assert admin_client.get(reverse("admin:markets_market_delete", args=[market.pk])).status_code == 403


def test_halt_and_resume_actions(admin_client, admin_user):
    url = reverse("admin:markets_market_changelist")
    chosen = list(Market.objects.filter(symbol__in=["BTC-USD", "ETH-BTC"]).values_list("pk", flat=True))

    admin_client.post(url, {"action": "halt", "_selected_action": chosen})

    assert dict(Market.objects.values_list("symbol", "status")) == {
        "BTC-USD": MarketStatus.HALTED,
        "ETH-BTC": MarketStatus.HALTED,
        "ETH-USD": MarketStatus.TRADING,
        "BTC-USDT": MarketStatus.TRADING,
        "ETH-USDT": MarketStatus.TRADING,
    }
    latest = Market.objects.get(symbol="ETH-BTC").history.latest()
    assert (latest.status, latest.history_user, latest.history_change_reason) == ("halted", admin_user, "admin: halt")

    admin_client.post(url, {"action": "resume", "_selected_action": chosen})

    assert set(Market.objects.values_list("status", flat=True)) == {MarketStatus.TRADING}
    assert Market.objects.get(symbol="BTC-USD").history.latest().history_change_reason == "admin: resume"

"""The read-only ``monitor`` scope: it reads everything an operator reads (every account, risk, reconciliation,
positions, orders and trades) and can move nothing. Three roles side by side: alice (trader), a risk monitor, and
the operator."""

from __future__ import annotations

import pytest

from accounts.seeding import DEFAULT_SEED
from tests.conftest import _client
from tests.factories import UserFactory, make_key
from tests.helpers import money_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitor_client(db):
    return _client(make_key(user=UserFactory(username="risk-desk"), scopes=["monitor"]))


@pytest.fixture
def alice_order(alice_client, alice_account, house):
    response = alice_client.post(
        "/api/v1/orders",
        {
            "account_id": str(alice_account.account_id),
            "symbol": "BTC-USD",
            "side": "buy",
            "order_type": "market",
            "quantity": "0.01",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


EXCHANGE_WIDE_READS = ["/api/v1/risk/summary", "/api/v1/reconciliation"]


@pytest.mark.parametrize("path", EXCHANGE_WIDE_READS)
def test_monitor_and_operator_read_the_exchange_wide_figures_a_trader_may_not(
    path, alice_client, monitor_client, operator_client, alice_account
):
    assert monitor_client.get(path).status_code == 200
    assert operator_client.get(path).status_code == 200
    assert alice_client.get(path).status_code == 403


def test_monitor_sees_every_account_order_trade_and_position(monitor_client, bob_client, alice_account, alice_order):
    account_id = str(alice_account.account_id)

    assert [a["account_id"] for a in monitor_client.get("/api/v1/accounts").json()["accounts"]] == [account_id]
    assert monitor_client.get(f"/api/v1/accounts/{account_id}").status_code == 200
    assert monitor_client.get(f"/api/v1/accounts/{account_id}/transactions").json()["transactions"]
    assert monitor_client.get(f"/api/v1/accounts/{account_id}/risk").status_code == 200
    assert monitor_client.get(f"/api/v1/orders/{alice_order['order_id']}").status_code == 200
    assert [t["order_id"] for t in monitor_client.get("/api/v1/trades").json()["trades"]] == [alice_order["order_id"]]
    positions = monitor_client.get("/api/v1/positions").json()["positions"]
    assert {p["position_id"] for p in positions} == {f"{account_id}:BTC"}
    # bob, a trader, sees none of it.
    assert bob_client.get(f"/api/v1/accounts/{account_id}").status_code == 404
    assert bob_client.get(f"/api/v1/orders/{alice_order['order_id']}").status_code == 404
    assert bob_client.get("/api/v1/positions").json()["positions"] == []


def _moves(account_id: str, order_id: str) -> list[tuple[str, str, dict]]:
    funding = {"asset": "USD", "amount": "1.00", "reason": "try"}
    return [
        ("post", f"/api/v1/accounts/{account_id}/deposits", funding),
        ("post", f"/api/v1/accounts/{account_id}/withdrawals", funding),
        ("post", f"/api/v1/accounts/{account_id}/adjustments", funding),
        ("post", f"/api/v1/accounts/{account_id}/suspend", {}),
        ("post", f"/api/v1/accounts/{account_id}/reactivate", {}),
        ("post", f"/api/v1/accounts/{account_id}/close", {}),
        ("post", "/api/v1/accounts", {"label": "mine"}),
        ("post", "/api/v1/markets/BTC-USD/price", {"price": "1.00"}),
        ("post", "/api/v1/markets/BTC-USD/halt", {}),
        ("post", "/api/v1/markets/BTC-USD/resume", {}),
        (
            "post",
            "/api/v1/orders",
            {"account_id": account_id, "symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "0.01"},
        ),
        ("delete", f"/api/v1/orders/{order_id}", None),
    ]


def test_monitor_can_move_nothing(monitor_client, alice_account, alice_order):
    before = money_snapshot()

    for method, path, body in _moves(str(alice_account.account_id), alice_order["order_id"]):
        response = getattr(monitor_client, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["error"]["code"] == "permission_denied"

    assert money_snapshot() == before


def test_the_operator_moves_what_the_monitor_may_not(operator_client, alice_account):
    account_id = str(alice_account.account_id)
    response = operator_client.post(
        f"/api/v1/accounts/{account_id}/deposits", {"asset": "USD", "amount": "1.00", "reason": "wire"}, format="json"
    )

    assert response.status_code == 201


def test_the_seeded_demo_monitor_has_the_monitor_scope():
    monitor = next(u for u in DEFAULT_SEED["users"] if u["username"] == "demo-monitor")

    assert monitor["scopes"] == ["monitor"]

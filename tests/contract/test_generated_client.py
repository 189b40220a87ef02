"""A client generated from /api/schema/ (openapi-python-client) works against the service: the operator funds an
account, the trader places a market order and reads it back, every answer parsed into the generated, typed models.
A wrong annotation in a serializer makes the generated client fail on the real answer.

The client talks to the WSGI app in process (httpx's WSGI transport), on this test's database."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.wsgi import get_wsgi_application
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tests.factories import UserFactory, make_account, make_key

pytestmark = pytest.mark.django_db

BASE_URL = "http://testserver"
# No formatting of the generated code (its post hooks run ruff): only importing and calling it matters here.
GENERATOR_CONFIG = "post_hooks: []\n"


def _transport() -> httpx.WSGITransport:
    return httpx.WSGITransport(app=get_wsgi_application())


def generate_client(tmp_path: Path) -> Any:
    """Fetch the schema as a client would, generate a package from it, and import it."""
    schema = httpx.Client(transport=_transport(), base_url=BASE_URL).get("/api/schema/", params={"format": "json"})
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_bytes(schema.content)
    (tmp_path / "config.yaml").write_text(GENERATOR_CONFIG)
    package = f"exchange_client_{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            "schema.json",
            "--config",
            "config.yaml",
            "--meta",
            "none",
            "--output-path",
            package,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(tmp_path))


def _api(client_package: Any, module: str) -> Any:
    return importlib.import_module(f"{client_package.__name__}.{module}")


def trading_flow(client_package: Any, *, operator_key: str, trader_key: str, account_id: str) -> dict[str, Any]:
    def authenticated(key: str) -> Any:
        return client_package.AuthenticatedClient(
            base_url=BASE_URL,
            token=key,
            prefix="Api-Key",
            raise_on_unexpected_status=True,
            httpx_args={"transport": _transport()},
        )

    models = _api(client_package, "models")
    ops, trader = authenticated(operator_key), authenticated(trader_key)
    account = uuid.UUID(account_id)

    funded = _api(client_package, "api.operator.v1_accounts_deposits_create").sync(
        client=ops, account_id=account, body=models.FundingIn(asset="USD", amount="10000.00", reason="wire 42")
    )
    order = _api(client_package, "api.orders.v1_orders_create").sync(
        client=trader,
        body=models.MarketOrderByQuantityIn(
            account_id=account,
            symbol="BTC-USD",
            side=models.SideEnum.BUY,
            order_type=models.MarketOrderTypeEnum.MARKET,
            quantity="0.1",
            client_order_id="bot-1",
        ),
    )
    read_back = _api(client_package, "api.orders.v1_orders_retrieve").sync(client=trader, order_id=order.order_id)
    listed = _api(client_package, "api.orders.v1_orders_list").sync(client=trader, account_id=account)
    balances = _api(client_package, "api.accounts.v1_accounts_balances_retrieve").sync(
        client=trader, account_id=account
    )
    return {"funded": funded, "order": order, "read_back": read_back, "listed": listed, "balances": balances}


@pytest.fixture
def keys_and_account(house: None) -> dict[str, str]:
    trader = UserFactory(username="client-trader")
    account = make_account(owner=trader, label="main")
    return {
        "operator_key": make_key(user=UserFactory(username="client-ops"), scopes=["operator"]),
        "trader_key": make_key(user=trader, scopes=["trade"]),
        "account_id": str(account.account_id),
    }


def test_a_generated_client_funds_trades_and_reads_back(tmp_path, keys_and_account):
    client_package = generate_client(tmp_path)
    models = _api(client_package, "models")

    flow = trading_flow(client_package, **keys_and_account)

    funded, order, read_back = flow["funded"], flow["order"], flow["read_back"]
    assert isinstance(funded, models.FundingResultOut)
    assert funded.transaction.kind == models.KindEnum.DEPOSIT and funded.transaction.amount == "10000.00"
    assert isinstance(order, models.OrderOut)
    assert order.status == models.OrderStatusEnum.FILLED and order.filled_quantity == "0.10000000"
    assert isinstance(order.order_id, uuid.UUID) and isinstance(order.created_at, datetime)
    [fill] = order.fills
    assert isinstance(fill, models.OrderFillOut) and fill.fee_asset == models.AssetEnum.USD
    assert read_back.to_dict() == order.to_dict()
    assert isinstance(flow["listed"], models.OrderOutPage) and [o.order_id for o in flow["listed"].orders] == [
        order.order_id
    ]
    usd = next(b for b in flow["balances"].balances if b.asset == models.AssetEnum.USD)
    assert usd.available == "3490.24"  # 10,000 - 0.1 x 65,032.50 (6,503.25) - the 6.51 fee


@extend_schema_field(OpenApiTypes.UUID)
class _WronglyAnnotatedCharField(serializers.CharField):
    """Sends the symbol ("BTC-USD") as before, but tells the schema it is a UUID."""


def test_a_wrong_serializer_annotation_breaks_the_generated_client(tmp_path, monkeypatch, keys_and_account):
    from orders.serializers import OrderOut

    monkeypatch.setitem(OrderOut._declared_fields, "symbol", _WronglyAnnotatedCharField(source="market.symbol"))
    client_package = generate_client(tmp_path)

    with pytest.raises(ValueError, match="hexadecimal UUID"):
        trading_flow(client_package, **keys_and_account)

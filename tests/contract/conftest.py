"""The API contract under test: the OpenAPI schema the service publishes, a small world of real data to aim the
generated requests at (a funded trader with a filled order, another customer, an operator and a monitor), and the
checks beyond schemathesis' own that this project's contract adds."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

ROLES = {"trader": ["trade"], "operator": ["operator"], "monitor": ["monitor"]}


def published_schema() -> dict[str, Any]:
    """Exactly what GET /api/schema/ serves (the same generator and renderer), without a request."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


@dataclass
class World:
    keys: dict[str, str]
    account_id: str
    order_id: str
    other_account_id: str
    turns: itertools.count = field(default_factory=itertools.count)
    roles: itertools.cycle = field(default_factory=lambda: itertools.cycle(ROLES))

    def next_role(self) -> str:
        return next(self.roles)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Api-Key {self.keys[role]}"}

    def aim(self, case: Any) -> None:
        """Point three of every four schema-valid requests at real ids, so they reach the code behind the lookup
        (a random UUID only ever finds 404). Schema-invalid requests are sent as generated."""
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive or next(self.turns) % 4 == 3:
            return
        real = {"account_id": self.account_id, "order_id": self.order_id, "position_id": f"{self.account_id}:BTC"}
        for name in set(case.path_parameters or {}) & set(real):
            case.path_parameters[name] = real[name]
        if isinstance(case.body, dict) and "account_id" in case.body:
            case.body["account_id"] = self.account_id
        if case.query and "account_id" in case.query:
            case.query["account_id"] = self.account_id


@pytest.fixture
def world(db: None, house: None) -> World:
    from accounts.services import account_create, deposit_create
    from markets.models import Market
    from orders.services import OrderRequest, order_place
    from tests.factories import UserFactory, make_account, make_key

    trader = UserFactory(username="contract-trader")
    keys = {
        role: make_key(user=UserFactory(username=f"contract-{role}"), scopes=scopes) for role, scopes in ROLES.items()
    }
    keys["trader"] = make_key(user=trader, scopes=["trade"])
    account = account_create(owner=trader, label="main")
    for asset, amount in {"USD": "1000000", "BTC": "10", "ETH": "100", "USDT": "100000"}.items():
        deposit_create(account=account, asset=asset, amount=amount, actor=None, reason="contract test")
    placed, _ = order_place(
        request=OrderRequest(
            account=account,
            market=Market.objects.get(symbol="BTC-USD"),
            side="buy",
            order_type="market",
            quantity=Decimal("0.01"),
            quote_quantity=None,
        ),
        actor=trader,
    )
    other = make_account(owner=UserFactory(username="contract-other"), funds={"USD": "100"})
    return World(
        keys=keys,
        account_id=str(account.account_id),
        order_id=str(placed.order.order_id),
        other_account_id=str(other.account_id),
    )


# --- checks ------------------------------------------------------------------------------------------------------
def _response_definition(case: Any, status: int) -> dict[str, Any] | None:
    responses = case.operation.definition.raw.get("responses", {})
    return responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")


def _error(response: Any) -> dict[str, Any]:
    try:
        return response.json().get("error") or {}
    except (ValueError, AttributeError):
        return {}


def documented_error_code(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx or 5xx answer carries one of the codes its operation documents for that status (x-error-codes)."""
    if response.status_code < 400 or response.status_code == 405:  # 405: schemathesis' unsupported_method check
        return None
    definition = _response_definition(case, response.status_code)
    if definition is None:
        return None  # status_code_conformance reports an undocumented status
    code = _error(response).get("code")
    documented = definition.get("x-error-codes", [])
    if code not in documented:
        raise AssertionError(
            f"{case.method} {case.path}: {response.status_code} with error code {code!r}, which the schema does not "
            f"document for it ({documented}); body: {response.text[:300]}"
        )
    return True


# The one input rule the schema states only in words: an amount's decimals are its asset's (BTC and ETH 8, USD 2,
# USDT 6), and the asset is another field (or, for orders, the market's base or quote). The service refuses more
# decimals with 400 invalid_amount and names the asset's decimals in details.
def _is_precision_refusal(response: Any) -> bool:
    error = _error(response)
    return (
        response.status_code == 400 and error.get("code") == "invalid_amount" and "decimals" in error.get("details", {})
    )


# Well-formed requests may still be refused by the state of the books: not yours or not there (404), a conflict
# (409: an idempotency key or client_order_id reused, an account not empty), a business rule (422).
# 429: the per-key rate limits a chaos action tightened (POST /chaos/tighten-rate-limits) refuse the next requests.
ACCEPTED_REFUSALS = {401, 403, 404, 409, 422, 429}


def _violates_body_rules(case: Any) -> bool:
    """Whether the body breaks its schema's rules between fields (the variants of a ``oneOf`` request such as
    exchange.api.exactly_one_of), which schemathesis' coverage phase does not always apply: such a request was not
    schema-valid after all."""
    content = (case.operation.definition.raw.get("requestBody") or {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    components = case.operation.schema.raw_schema["components"]
    component = components["schemas"].get(ref.rsplit("/", 1)[-1], {})
    if "oneOf" not in component or not isinstance(case.body, dict):
        return False
    return not jsonschema.Draft4Validator({"oneOf": component["oneOf"], "components": components}).is_valid(case.body)


def positive_data_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """What the schema accepts, the service accepts (schemathesis' positive_data_acceptance, with the refusals
    above and the precision rule)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or _violates_body_rules(case):
        return None
    if response.status_code < 400 or response.status_code in ACCEPTED_REFUSALS or response.status_code >= 500:
        return None  # 5xx: not_a_server_error reports it
    if _is_precision_refusal(response):
        return None
    raise AssertionError(
        f"{case.method} {case.path}: a schema-valid request was refused with {response.status_code}: "
        f"{response.text[:400]}"
    )


def contract_config(max_examples: int) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": max_examples, "deterministic": True, "mode": "all"},
            # Stateful sequences are beyond this test's time budget; each operation is checked on its own.
            "phases": {"stateful": {"enabled": False}},
            # Replaced by positive_data_accepted (above), which knows the precision rule.
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Any:
    """The WSGI app closes the database connection after each request (Django's request_finished signal), which
    would close the test's own transaction; Django's test client disconnects the same handler."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)

"""REST endpoints of the simulation: load a scenario, say what runs, reset an account (operators)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.permissions import OperatorScope, ReadScope
from exchange import errors
from exchange.api import exactly_one_of, raise_validation
from exchange.schema import error_codes
from simulation import selectors, services
from simulation.replay import EXAMPLES_DIR
from simulation.scenarios import ScenarioInvalid
from simulation.serializers import (
    AccountResetIn,
    AccountResetOut,
    ScenarioCurrentOut,
    ScenarioIn,
    ScenarioLoadedOut,
)

ACCOUNT_ID = OpenApiParameter(
    "account_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The account's public id."
)


def yaml_load(text: str) -> Any:
    """A YAML document as plain data; anchors and aliases are refused (an alias bomb would expand without bound)."""
    try:
        for token in yaml.scan(text):
            if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
                raise ScenarioInvalid(details={"errors": {"yaml": "anchors and aliases are not supported"}})
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioInvalid(details={"errors": {"yaml": str(exc)[:300]}}) from None


class ScenarioListApi(APIView):
    permission_classes = [OperatorScope]

    @extend_schema(
        request=exactly_one_of(ScenarioIn, "scenario", "yaml", "example"),
        responses={201: ScenarioLoadedOut},
        extensions=error_codes(ScenarioInvalid, errors.UnknownAsset, errors.InvalidAmount),
        tags=["operator"],
        summary="Load a scenario (operator): markets' models, accounts and keys, agents, schedule; idempotent",
    )
    def post(self, request: Request) -> Response:
        data = raise_validation(ScenarioIn(data=request.data))
        if data.get("example"):
            spec = yaml_load((EXAMPLES_DIR / f"{data['example']}.yaml").read_text())
        elif data.get("yaml") is not None:
            spec = yaml_load(data["yaml"])
        else:
            spec = data["scenario"]
        loaded = services.scenario_load(spec=spec, actor=request.user)
        return Response(ScenarioLoadedOut(selectors.scenario_loaded_view(loaded)).data, status=201)


class ScenarioCurrentApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(
        responses={200: ScenarioCurrentOut},
        extensions=error_codes(errors.NotFound),
        tags=["markets"],
        summary="The scenario that runs now, its schedule, and which instance moves prices (404: none loaded)",
    )
    def get(self, request: Request) -> Response:
        scenario = selectors.scenario_current()
        if scenario is None:
            raise errors.NotFound("No scenario is loaded.")
        return Response(ScenarioCurrentOut(selectors.scenario_view(scenario, engine=True)).data)


class AccountResetApi(APIView):
    permission_classes = [OperatorScope]

    @extend_schema(
        parameters=[ACCOUNT_ID],
        request=AccountResetIn,
        responses={200: AccountResetOut},
        extensions=error_codes(errors.InvalidAmount, errors.UnknownAsset, errors.AccountClosed, errors.Conflict),
        tags=["operator"],
        summary="Reset an account (operator): cancel its open orders, bring balances to targets by adjustments",
    )
    def post(self, request: Request, account_id: str) -> Response:
        account = account_selectors.account_get(account_id=account_id, user=request.user, key=request.auth)
        data = raise_validation(AccountResetIn(data=request.data))
        targets = {asset: Decimal(value) for asset, value in data["balances"].items()}
        result = services.account_reset(account=account, balances=targets, actor=request.user, reason=data["reason"])
        body = {
            "account_id": account.account_id,
            "cancelled_orders": result.cancelled,
            "adjustments": result.adjustments,
            "balances": account_selectors.balance_list(account=account),
        }
        return Response(AccountResetOut(body).data)

"""Inputs and outputs of the simulation API: scenarios and the account reset."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.serializers import BalanceOut, FundingOut
from exchange.api import PatternField, TextField
from ledger.reference_data import ASSETS
from simulation.replay import EXAMPLES_DIR

MAX_YAML = 65536
# A balance target: zero or a positive decimal without exponent (each asset's precision is checked by the service).
TARGET_PATTERN = r"^(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,18})?$|^0\.[0-9]{1,18}$"


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES_DIR.glob("*.yaml"))


class ScenarioIn(serializers.Serializer):
    scenario = serializers.DictField(
        required=False, allow_null=True, default=None, help_text="The scenario as a JSON object (docs/simulation.md)."
    )
    yaml = TextField(
        required=False, allow_null=True, default=None, max_length=MAX_YAML, help_text="The scenario file's text."
    )
    example = serializers.ChoiceField(
        choices=example_names(), required=False, allow_null=True, default=None, help_text="A shipped example."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("scenario", "yaml", "example") if attrs.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError({"scenario": ["Exactly one of scenario, yaml or example."]})
        return attrs


class ScheduledEventOut(serializers.Serializer):
    at = serializers.FloatField(help_text="Seconds after the scenario was loaded.")
    market = serializers.CharField()
    action = serializers.ChoiceField(choices=["shock", "halt", "resume"])
    percent = serializers.CharField(required=False, help_text="For a shock: the price change in percent.")
    done = serializers.BooleanField(help_text="Applied already (shocks: when their time has passed).")


class ScenarioOut(serializers.Serializer):
    name = serializers.CharField()
    seed = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    digest = serializers.CharField(help_text="SHA-256 of the canonical scenario: the same file, the same digest.")
    loaded_at = serializers.DateTimeField()
    markets = serializers.JSONField(help_text="Per symbol: tick interval, model or replay, bounds, ladder, status.")
    accounts = serializers.ListField(child=serializers.CharField(), help_text="The accounts it names.")
    agents = serializers.JSONField(help_text="The simulated participants it runs.")
    schedule = ScheduledEventOut(many=True)


class ScenarioCurrentOut(ScenarioOut):
    price_engine = serializers.JSONField(help_text="Whether the engine is on, and which instance moves prices.")


class ScenarioAccountOut(serializers.Serializer):
    name = serializers.CharField()
    owner = serializers.CharField()
    account_id = serializers.UUIDField()
    created = serializers.BooleanField(help_text="Opened (and funded) by this load; false: it existed already.")


class ScenarioKeyOut(serializers.Serializer):
    username = serializers.CharField()
    account = serializers.CharField()
    account_id = serializers.UUIDField()
    scopes = serializers.CharField()
    key = serializers.CharField(help_text="Shown only once.")


class ScenarioLoadedOut(serializers.Serializer):
    scenario = ScenarioOut()
    accounts = ScenarioAccountOut(many=True)
    api_keys = ScenarioKeyOut(many=True, help_text="Keys issued by this load; a second load issues none.")


ResetBalancesIn = type(
    "ResetBalancesIn",
    (serializers.Serializer,),
    {
        "__module__": __name__,
        "__doc__": "Target balances by asset code; assets left out keep theirs.",
        **{a["code"]: PatternField(TARGET_PATTERN, required=False, max_length=40) for a in ASSETS},
    },
)


class AccountResetIn(serializers.Serializer):
    balances = ResetBalancesIn(help_text='Targets such as {"USD": "500.00", "BTC": "0"}.')
    reason = TextField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sent = self.initial_data.get("balances") if isinstance(self.initial_data, dict) else None
        unknown = sorted(set(sent) - {a["code"] for a in ASSETS}) if isinstance(sent, dict) else []
        if unknown:
            raise serializers.ValidationError(
                {"balances": {str(n)[:20]: ["Not a listed asset."] for n in unknown[:10]}}
            )
        return attrs


class AccountResetOut(serializers.Serializer):
    account_id = serializers.UUIDField()
    cancelled_orders = serializers.IntegerField()
    adjustments = FundingOut(many=True, help_text="One journaled adjustment per asset whose balance changed.")
    balances = BalanceOut(many=True)

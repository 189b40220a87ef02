"""Reads of the simulation: the current scenario and what it runs."""

from __future__ import annotations

from typing import Any

from simulation.models import Scenario


def scenario_current() -> Scenario | None:
    return Scenario.objects.filter(current=True).order_by("-loaded_at", "-id").first()


def scenario_view(scenario: Scenario, *, engine: bool = False) -> dict[str, Any]:
    spec = scenario.spec or {}
    done = set(scenario.events_done or [])
    from django.utils import timezone

    elapsed = (timezone.now() - scenario.loaded_at).total_seconds()
    schedule = []
    for index, event in enumerate(spec.get("schedule") or []):
        applied = index in done if event["action"] != "shock" else event["at"] <= elapsed
        schedule.append({**event, "done": applied})
    view = {
        "name": scenario.name,
        "seed": scenario.seed,
        "description": spec.get("description", ""),
        "digest": scenario.digest,
        "loaded_at": scenario.loaded_at,
        "markets": spec.get("markets", {}),
        "accounts": [a["name"] for a in spec.get("accounts") or []],
        "agents": spec.get("agents") or [],
        "schedule": schedule,
    }
    if engine:
        from simulation.leadership import engine_status

        view["price_engine"] = engine_status()
    return view


def scenario_loaded_view(loaded: Any) -> dict[str, Any]:
    created = set(loaded.created_accounts)
    return {
        "scenario": scenario_view(loaded.scenario),
        "accounts": [
            {"name": a.label, "owner": a.owner.username, "account_id": a.account_id, "created": a.label in created}
            for a in loaded.accounts
        ],
        "api_keys": loaded.new_keys,
    }


def market_path_driven(market: Any) -> bool:
    """Whether the price engine moves this market's price (markets/market_data.py candles carry its path)."""
    from simulation.models import MarketSimulation, ModelKind

    return MarketSimulation.objects.filter(market=market, enabled=True).exclude(kind=ModelKind.FIXED).exists()

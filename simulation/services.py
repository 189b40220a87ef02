"""Writes of the simulation: loading a scenario, resetting an account for test isolation.

Money moves only through the accounts and orders services (journaled deposits and adjustments, cancels), under the
global lock order; a scenario's markets change through the orders services (price, status, the house's quotes), so
every change is in the market's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, ApiKey
from accounts.services import account_create, adjustment_create, api_key_create, deposit_create
from exchange import errors, locking
from ledger.models import LedgerAccount
from markets.models import Market
from simulation.models import MarketSimulation, ModelKind, Scenario
from simulation.replay import EXAMPLES_DIR
from simulation.scenarios import scenario_digest, scenario_parse

logger = structlog.get_logger("exchange.simulation")

KEY_NAME = "scenario"


@dataclass
class LoadedScenario:
    scenario: Scenario
    # API keys issued by this load (username, account, scopes, key), each shown only once.
    new_keys: list[dict[str, str]] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    created_accounts: list[str] = field(default_factory=list)


def listed_markets() -> dict[str, dict[str, Any]]:
    return {
        m.symbol: {"base": m.base_asset_id, "quote": m.quote_asset_id, "tick": m.price_tick}
        for m in Market.objects.all()
    }


def scenario_load(*, spec: Any, actor: Any, base_dir: Path = EXAMPLES_DIR, confined: bool = True) -> LoadedScenario:
    """Validate and apply a scenario; it becomes the current one. Loading the same accounts twice is idempotent:
    an account (owner, name) is opened and funded with its starting balances only the first time, a user gets one
    scenario API key (the plain key is returned only when it is made)."""
    parsed = scenario_parse(spec, markets=listed_markets(), base_dir=base_dir, confined=confined)
    loaded = _accounts_apply(parsed)
    now = timezone.now()
    with transaction.atomic():
        Scenario.objects.filter(current=True).update(current=False)
        scenario = Scenario.objects.create(
            name=parsed["name"],
            seed=parsed["seed"],
            spec=parsed,
            digest=scenario_digest(parsed),
            loaded_by=actor if getattr(actor, "pk", None) else None,
            current=True,
        )
    _markets_apply(parsed, scenario=scenario, actor=actor, now=scenario.loaded_at or now)
    loaded.scenario = scenario
    logger.info(
        "scenario_loaded",
        scenario=scenario.name,
        markets=sorted(parsed["markets"]),
        accounts=len(parsed["accounts"]),
        agents=len(parsed["agents"]),
        new_keys=len(loaded.new_keys),
    )
    return loaded


@transaction.atomic
def _accounts_apply(parsed: dict[str, Any]) -> LoadedScenario:
    User = get_user_model()
    loaded = LoadedScenario(scenario=None)  # type: ignore[arg-type]
    fund: list[tuple[Account, str, str]] = []
    for spec in parsed["accounts"]:
        user, _ = User.objects.get_or_create(username=spec["owner"])
        account = Account.objects.filter(owner=user, label=spec["name"]).first()
        if account is None:
            account = account_create(owner=user, label=spec["name"])
            loaded.created_accounts.append(spec["name"])
            fund += [(account, asset, amount) for asset, amount in spec["balances"].items() if Decimal(amount) > 0]
        loaded.accounts.append(account)
        if "api_key" in spec and not ApiKey.objects.filter(user=user, name=KEY_NAME, revoked=False).exists():
            _key, plain = api_key_create(user=user, name=KEY_NAME, scopes=spec["api_key"]["scopes"])
            loaded.new_keys.append(
                {
                    "username": user.username,
                    "account": spec["name"],
                    "account_id": str(account.account_id),
                    "scopes": ",".join(spec["api_key"]["scopes"]),
                    "key": plain,
                }
            )
    # every lock in the global order (accounts, then their balance rows), then the deposits
    locking.lock_accounts({account.pk for account, *_ in fund}, mode=locking.Mode.SHARE)
    locking.lock_balances({(account.pk, asset) for account, asset, _ in fund})
    assets = {asset for _, asset, _ in fund}
    locking.lock_books(
        LedgerAccount.objects.filter(account__isnull=True, asset_id__in=assets).values_list("pk", flat=True)
    )
    for account, asset, amount in fund:
        deposit_create(
            account=account,
            asset=asset,
            amount=amount,
            actor=None,
            reason="scenario: starting balance",
            idempotency_key=f"scenario:{account.account_id}:{asset}",
        )
    return loaded


def _markets_apply(parsed: dict[str, Any], *, scenario: Scenario, actor: Any, now: Any) -> None:
    from orders.services import market_price_set, market_quotes_refresh, market_status_set

    named = parsed["markets"]
    shocks: dict[str, list[dict[str, str]]] = {}
    for event in parsed["schedule"]:
        if event["action"] == "shock":
            shocks.setdefault(event["market"], []).append({"at": str(event["at"]), "percent": event["percent"]})
    for market in Market.objects.all().order_by("symbol"):
        spec = named.get(market.symbol)
        if spec is None:  # markets a scenario does not name keep a fixed price while it runs
            MarketSimulation.objects.update_or_create(
                market=market,
                defaults={
                    "scenario": scenario,
                    "kind": ModelKind.FIXED,
                    "seed": "",
                    "anchor_price": market.reference_price,
                    "anchored_at": now,
                },
            )
            continue
        ladder = spec["ladder"]
        if ladder:
            fields = {
                "spread_bps": ladder.get("spread_bps"),
                "ladder_levels": ladder.get("levels"),
                "ladder_step_bps": ladder.get("step_bps"),
                "ladder_size": ladder.get("size"),
                "house_quoting": ladder.get("house_quoting"),
            }
            changed = {k: v for k, v in fields.items() if v is not None}
            current = Market.objects.get(pk=market.pk)
            for name, value in changed.items():
                setattr(current, name, value)
            current._history_user = actor if getattr(actor, "pk", None) else None  # type: ignore[attr-defined]
            current._change_reason = f"scenario {scenario.name}: ladder"  # type: ignore[attr-defined]
            current.save(update_fields=[*changed, "updated_at"])
            market_quotes_refresh(market=current, actor=actor, reason=f"scenario {scenario.name}: ladder")
        if "initial_price" in spec:
            market = market_price_set(
                market=market, price=spec["initial_price"], actor=actor, reason=f"scenario {scenario.name}: start"
            )
        else:
            market = Market.objects.get(pk=market.pk)
        if market.status != spec["status"]:
            market_status_set(market=market, status=spec["status"], actor=actor, reason=f"scenario {scenario.name}")
        model = spec.get("model", {})
        replay = spec.get("replay")
        MarketSimulation.objects.update_or_create(
            market=market,
            defaults={
                "scenario": scenario,
                "kind": ModelKind.REPLAY if replay else model.get("kind", "gbm"),
                "params": {k: v for k, v in model.items() if k != "kind"},
                "interval_ms": max(100, round(spec["interval_s"] * 1000)),
                "seed": f"{parsed['seed']}:{spec.get('seed', market.symbol)}",
                "lower_bound": spec["bounds"].get("lower"),
                "upper_bound": spec["bounds"].get("upper"),
                "replay_file": replay["file"] if replay else "",
                "replay_speed": replay["speed"] if replay else "1x",
                "replay_loop": replay["loop"] if replay else True,
                "shocks": shocks.get(market.symbol, []),
                "anchor_price": market.reference_price,
                "anchored_at": now,
                "enabled": True,
            },
        )


def keys_file_write(*, path: str | Path, keys: list[dict[str, str]]) -> None:
    """Write the new keys to ``path`` as demo seeding does (mode 0600, tightened if the file existed), one line
    per key: username, account name, account id, scopes, key (tab-separated)."""
    import os

    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        for k in keys:
            handle.write(f"{k['username']}\t{k['account']}\t{k['account_id']}\t{k['scopes']}\t{k['key']}\n")


# --- reset ---------------------------------------------------------------------------------------------------------
RESET_ATTEMPTS = 3


@dataclass
class ResetResult:
    cancelled: int
    adjustments: list[Any]


def account_reset(*, account: Account, balances: dict[str, Decimal], actor: Any, reason: str = "") -> ResetResult:
    """Cancel the account's open orders, then bring the named assets' balances to their targets by journaled
    adjustments (one per asset that differs; nothing is deleted, assets not named keep their balance). Returns the
    number of orders cancelled and the adjustment entries. An order placed between the cancels and the
    adjustments is cancelled too (a bounded number of rounds): the targets are what is available, nothing stays
    locked in the named assets."""
    from ledger.selectors import asset_map
    from ledger.services import amount_check_precision
    from orders.services import order_cancel_all

    assets = asset_map()
    for asset, target in balances.items():
        if asset not in assets:
            raise errors.UnknownAsset(f"Unknown asset {asset[:20]!r}.", details={"asset": asset[:20]})
        if not target.is_finite() or target < 0 or target > Decimal("1e15"):
            raise errors.InvalidAmount("A target balance is a number from 0 to 1e15.", details={"asset": asset})
        amount_check_precision(amount=target, asset=assets[asset])
    cancelled = 0
    for _attempt in range(RESET_ATTEMPTS):
        cancelled += len(order_cancel_all(account=account, actor=actor))
        entries = _balances_set(account=account, targets=balances, actor=actor, reason=reason)
        if entries is not None:
            return ResetResult(cancelled=cancelled, adjustments=entries)
    raise errors.Conflict("Orders kept arriving while the account was reset; retry.")


@transaction.atomic
def _balances_set(*, account: Account, targets: dict[str, Decimal], actor: Any, reason: str) -> list[Any] | None:
    locking.lock_accounts({account.pk}, mode=locking.Mode.SHARE)
    locked = locking.lock_balances({(account.pk, asset) for asset in targets})
    rows = {asset: row for (_, asset), row in locked.items()}
    if any(row.locked != 0 for row in rows.values()):
        return None  # an order rests again: cancel once more
    entries = []
    for asset in sorted(targets):
        current = rows[asset].available if asset in rows else Decimal(0)
        delta = targets[asset] - current
        if delta == 0:
            continue
        entries.append(
            adjustment_create(
                account=account,
                asset=asset,
                amount=delta,
                actor=actor,
                reason=(reason or "reset")[:200] + f" (to {targets[asset]})",
            )
        )
    return entries

"""Scenario files: one YAML document that sets the venue up (docs/simulation.md, "Scenario files").

``scenario_parse`` validates a spec into its canonical form (plain JSON: strings for numbers, seconds for
durations, symbols spelled BTC-USD) or raises ``ScenarioInvalid`` naming the fields; it reads nothing but the replay
files it names. ``simulation.services.scenario_load`` applies a parsed spec.

    name: calm-market
    seed: 42
    markets:
      BTC-USD:
        initial_price: "65000.00"
        tick: 500ms                      # tick interval, at least 100 ms
        model: {kind: gbm, drift: 0, volatility: 0.3, jump_rate: 2, jump_size: 0.004}
        bounds: {lower: "1000", upper: "1000000"}
        ladder: {spread_bps: 10, levels: 10, step_bps: 5, size: "0.5"}
      ETH-USD: {model: {kind: ou, volatility: 0.5, mean: "3500", half_life_s: 120}}
      BTC-USDT: {model: {kind: derived, basis_bps: 1.5, basis_volatility_bps: 2}}
      ETH-BTC: {replay: {file: eth-btc.csv, speed: 10x, loop: true}}
    accounts:
      - name: strategy-arbitrage
        balances: {USD: "100000", BTC: "1"}
        api_key: {scopes: [read, trade]}
    agents:
      - {name: noise, kind: noise_taker, market: BTC-USD, account: agent-noise, rate: 0.5,
         size: {distribution: uniform, min: "0.001", max: "0.02"}}
    schedule:
      - {at: 30s, market: BTC-USD, action: shock, percent: -20}
      - {at: 45s, market: BTC-USD, action: halt}
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from exchange import errors
from simulation.paths import ModelParams
from simulation.replay import EXAMPLES_DIR, ReplayError, load_replay, parse_speed

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_KINDS = ("gbm", "ou", "derived", "fixed")
MODEL_FIELDS = {
    "gbm": {"drift", "volatility", "jump_rate", "jump_size", "jump_mean"},
    "ou": {"drift", "volatility", "mean", "half_life_s", "jump_rate", "jump_size", "jump_mean"},
    "derived": {"basis_bps", "basis_volatility_bps"},
    "fixed": set(),
}
LADDER_FIELDS = {"spread_bps", "levels", "step_bps", "size", "house_quoting"}
AGENT_KINDS = ("noise_taker", "passive_maker")
ACTIONS = ("shock", "halt", "resume")
SCOPES = ("read", "trade", "operator", "monitor")
MAX_ITEMS = 200
MAX_AT_S = 30 * 24 * 3600


class ScenarioInvalid(errors.BusinessRuleViolation):
    """A well-formed request whose scenario cannot be loaded (an unknown market, a bad model, a missing replay
    file ...); ``details.errors`` maps each field path to what is wrong."""

    code = "scenario_invalid"
    default_message = "The scenario is invalid."


class _Errors:
    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def add(self, where: str, message: str) -> None:
        self.found.setdefault(where, message)


def _mapping(value: Any, where: str, err: _Errors, allowed: set[str] | None = None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        err.add(where, "must be a mapping")
        return {}
    out = {}
    for key, item in value.items():
        if not isinstance(key, str):
            err.add(where, "keys must be strings")
            continue
        if allowed is not None and key not in allowed:
            err.add(f"{where}.{key}", f"unknown field; known: {', '.join(sorted(allowed))}")
            continue
        out[key] = item
    return out


def _list(value: Any, where: str, err: _Errors) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        err.add(where, "must be a list")
        return []
    if len(value) > MAX_ITEMS:
        err.add(where, f"at most {MAX_ITEMS} items")
        return []
    return value


def _decimal(value: Any, where: str, err: _Errors, *, positive: bool = False, minimum: Decimal | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        err.add(where, "must be a number")
        return "0"
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        err.add(where, "must be a number")
        return "0"
    if not number.is_finite() or abs(number) > Decimal("1e15"):
        err.add(where, "must be a finite number")
        return "0"
    if positive and number <= 0:
        err.add(where, "must be > 0")
    if minimum is not None and number < minimum:
        err.add(where, f"must be >= {minimum}")
    return format(number, "f")


def _duration(value: Any, where: str, err: _Errors) -> float:
    """``30s``, ``500ms``, ``2m``, ``1h`` or a number of seconds."""
    if isinstance(value, bool):
        err.add(where, "must be a duration such as 30s or 500ms")
        return 0.0
    if isinstance(value, (int, float, Decimal)):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", value)
        if not match:
            err.add(where, "must be a duration such as 30s or 500ms")
            return 0.0
        seconds = float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    else:
        err.add(where, "must be a duration such as 30s or 500ms")
        return 0.0
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_AT_S:
        err.add(where, "out of range")
        return 0.0
    return seconds


def _name(value: Any, where: str, err: _Errors) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        err.add(where, "a name of letters, digits, '.', '_' or '-' (at most 64)")
        return ""
    return value


def _symbol(value: Any, where: str, err: _Errors, known: set[str]) -> str:
    from markets.selectors import symbol_normalize

    try:
        symbol = symbol_normalize(value)
    except errors.ExchangeError:
        symbol = ""
    if symbol not in known:
        err.add(where, f"unknown market; the markets: {', '.join(sorted(known))}")
        return ""
    return symbol


def _replay_path(value: Any, where: str, err: _Errors, base_dir: Path, confined: bool) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 400:
        err.add(where, "a CSV file name")
        return ""
    path = Path(value)
    if confined and (path.is_absolute() or ".." in path.parts):
        err.add(where, f"a file under {base_dir.name}/ (no absolute paths, no '..')")
        return ""
    resolved = (base_dir / path).resolve() if not path.is_absolute() else path
    try:
        load_replay(resolved)
    except (OSError, UnicodeDecodeError):
        err.add(where, "no such readable file")
        return ""
    except ReplayError as exc:
        err.add(where, f"not a replay file: {exc}")
        return ""
    return str(resolved)


def scenario_parse(
    spec: Any, *, markets: dict[str, dict[str, Any]], base_dir: Path = EXAMPLES_DIR, confined: bool = True
) -> dict[str, Any]:
    """The canonical form of a scenario. ``markets``: symbol -> {"base", "quote", "tick"} of the listed markets;
    ``base_dir``: where replay file names are looked up; ``confined``: names must stay under it (the API)."""
    err = _Errors()
    top = _mapping(spec, "scenario", err, {"name", "seed", "description", "markets", "accounts", "agents", "schedule"})
    if not isinstance(spec, dict):
        raise ScenarioInvalid(details={"errors": err.found})
    out: dict[str, Any] = {
        "name": _name(top.get("name"), "name", err),
        "seed": str(top.get("seed", "0"))[:100] if isinstance(top.get("seed", 0), (int, str, Decimal)) else "",
        "description": str(top.get("description") or "")[:500],
        "markets": {},
        "accounts": [],
        "agents": [],
        "schedule": [],
    }
    if isinstance(top.get("seed"), bool) or not out["seed"]:
        err.add("seed", "an integer or a string")
    known = set(markets)
    for key, entry in _mapping(top.get("markets"), "markets", err).items():
        symbol = _symbol(key, f"markets.{key}", err, known)
        where = f"markets.{key}"
        fields = _mapping(
            entry, where, err, {"initial_price", "tick", "model", "replay", "bounds", "ladder", "status", "seed"}
        )
        if not symbol:
            continue
        market: dict[str, Any] = {"interval_s": _duration(fields.get("tick", "1s"), f"{where}.tick", err)}
        if market["interval_s"] < 0.1:
            err.add(f"{where}.tick", "at least 100ms")
        if "initial_price" in fields:
            market["initial_price"] = _decimal(fields["initial_price"], f"{where}.initial_price", err, positive=True)
        if "seed" in fields:
            market["seed"] = str(fields["seed"])[:100]
        if "model" in fields and "replay" in fields:
            err.add(where, "either a model or a replay, not both")
        if "replay" in fields:
            replay = _mapping(fields["replay"], f"{where}.replay", err, {"file", "speed", "loop"})
            try:
                speed = replay.get("speed", "1x")
                parse_speed(speed)
            except ReplayError as exc:
                err.add(f"{where}.replay.speed", str(exc))
            if not isinstance(replay.get("loop", True), bool):
                err.add(f"{where}.replay.loop", "true or false")
            market["replay"] = {
                "file": _replay_path(replay.get("file"), f"{where}.replay.file", err, base_dir, confined),
                "speed": str(replay.get("speed", "1x")),
                "loop": bool(replay.get("loop", True)),
            }
        else:
            model = _mapping(fields.get("model", {"kind": "gbm"}), f"{where}.model", err)
            kind = model.get("kind", "gbm")
            if kind not in MODEL_KINDS:
                err.add(f"{where}.model.kind", f"one of {', '.join(MODEL_KINDS)}")
                kind = "fixed"
            params = {}
            for name, value in model.items():
                if name == "kind":
                    continue
                if name not in MODEL_FIELDS[kind]:
                    known_fields = ", ".join(sorted(MODEL_FIELDS[kind]))
                    err.add(f"{where}.model.{name}", f"unknown for {kind}; known: {known_fields}")
                    continue
                params[name] = _decimal(value, f"{where}.model.{name}", err)
            if kind in ("gbm", "ou"):
                try:
                    ModelParams(
                        kind=kind,
                        **{k: float(v) for k, v in params.items() if k != "mean"},
                        mean=Decimal(params["mean"]) if "mean" in params else None,
                    )
                except (ValueError, TypeError) as exc:
                    err.add(f"{where}.model", str(exc))
            if kind == "derived":
                from simulation.engine import usd_legs

                info = markets[symbol]
                if usd_legs(info["base"], info["quote"], known) is None:
                    err.add(f"{where}.model.kind", "this market follows no USD market")
            market["model"] = {"kind": kind, **params}
        bounds = _mapping(fields.get("bounds"), f"{where}.bounds", err, {"lower", "upper"})
        market["bounds"] = {k: _decimal(v, f"{where}.bounds.{k}", err, positive=True) for k, v in bounds.items()}
        if len(market["bounds"]) == 2 and Decimal(market["bounds"]["lower"]) > Decimal(market["bounds"]["upper"]):
            err.add(f"{where}.bounds", "lower above upper")
        ladder = _mapping(fields.get("ladder"), f"{where}.ladder", err, LADDER_FIELDS)
        market["ladder"] = {}
        for name, value in ladder.items():
            if name == "house_quoting":
                if not isinstance(value, bool):
                    err.add(f"{where}.ladder.{name}", "true or false")
                market["ladder"][name] = bool(value)
            elif name == "levels":
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                    err.add(f"{where}.ladder.levels", "an integer from 0 to 100")
                market["ladder"][name] = value if isinstance(value, int) else 0
            else:
                number = _decimal(value, f"{where}.ladder.{name}", err, minimum=Decimal(0))
                if name != "size" and Decimal(number) >= 10000:
                    err.add(f"{where}.ladder.{name}", "below 10000 bps")
                market["ladder"][name] = number
        status = fields.get("status", "trading")
        if status not in ("trading", "halted"):
            err.add(f"{where}.status", "trading or halted")
        market["status"] = status if status in ("trading", "halted") else "trading"
        out["markets"][symbol] = market

    names: set[str] = set()
    for i, entry in enumerate(_list(top.get("accounts"), "accounts", err)):
        where = f"accounts[{i}]"
        fields = _mapping(entry, where, err, {"name", "owner", "balances", "api_key"})
        name = _name(fields.get("name"), f"{where}.name", err)
        if name in names:
            err.add(f"{where}.name", "named twice")
        names.add(name)
        balances = {}
        for asset, amount in _mapping(fields.get("balances"), f"{where}.balances", err).items():
            balances[asset.upper()] = _decimal(amount, f"{where}.balances.{asset}", err, minimum=Decimal(0))
        account: dict[str, Any] = {
            "name": name,
            "owner": _name(fields.get("owner", name), f"{where}.owner", err),
            "balances": balances,
        }
        if fields.get("api_key") is not None:
            key = _mapping(fields.get("api_key"), f"{where}.api_key", err, {"scopes"})
            scopes = key.get("scopes", ["read", "trade"])
            if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
                err.add(f"{where}.api_key.scopes", f"a list of {', '.join(SCOPES)}")
                scopes = []
            account["api_key"] = {"scopes": sorted(set(scopes))}
        out["accounts"].append(account)

    agent_names: set[str] = set()
    for i, entry in enumerate(_list(top.get("agents"), "agents", err)):
        where = f"agents[{i}]"
        fields = _mapping(
            entry,
            where,
            err,
            {"name", "kind", "market", "account", "rate", "size", "levels", "spread_bps", "step_bps", "refresh"},
        )
        agent: dict[str, Any] = {
            "name": _name(fields.get("name"), f"{where}.name", err),
            "kind": fields.get("kind"),
            "market": _symbol(fields.get("market"), f"{where}.market", err, known),
            "account": _name(fields.get("account"), f"{where}.account", err),
        }
        if agent["name"] in agent_names:
            err.add(f"{where}.name", "named twice")
        agent_names.add(agent["name"])
        if agent["kind"] not in AGENT_KINDS:
            err.add(f"{where}.kind", f"one of {', '.join(AGENT_KINDS)}")
        if agent["account"] and agent["account"] not in names:
            err.add(f"{where}.account", "one of the scenario's accounts")
        size = _mapping(fields.get("size"), f"{where}.size", err, {"distribution", "min", "max"})
        distribution = size.get("distribution", "uniform")
        if distribution not in ("uniform", "lognormal"):
            err.add(f"{where}.size.distribution", "uniform or lognormal")
        low = _decimal(size.get("min", "0.001"), f"{where}.size.min", err, positive=True)
        high = _decimal(size.get("max", size.get("min", "0.001")), f"{where}.size.max", err, positive=True)
        if Decimal(low) > Decimal(high):
            err.add(f"{where}.size", "min above max")
        agent["size"] = {"distribution": distribution, "min": low, "max": high}
        if agent["kind"] == "noise_taker":
            rate = _decimal(fields.get("rate", "0.2"), f"{where}.rate", err, positive=True)
            if Decimal(rate) > 50:
                err.add(f"{where}.rate", "at most 50 orders a second")
            agent["rate"] = rate
        else:
            levels = fields.get("levels", 3)
            if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 20:
                err.add(f"{where}.levels", "an integer from 1 to 20")
            agent["levels"] = levels if isinstance(levels, int) else 1
            agent["spread_bps"] = _decimal(fields.get("spread_bps", "10"), f"{where}.spread_bps", err, positive=True)
            agent["step_bps"] = _decimal(fields.get("step_bps", "5"), f"{where}.step_bps", err, minimum=Decimal(0))
            refresh = _duration(fields.get("refresh", "5s"), f"{where}.refresh", err)
            if refresh < 0.5:
                err.add(f"{where}.refresh", "at least 500ms")
            agent["refresh_s"] = refresh
        out["agents"].append(agent)

    for i, entry in enumerate(_list(top.get("schedule"), "schedule", err)):
        where = f"schedule[{i}]"
        fields = _mapping(entry, where, err, {"at", "market", "action", "percent"})
        event: dict[str, Any] = {
            "at": _duration(fields.get("at"), f"{where}.at", err),
            "market": _symbol(fields.get("market"), f"{where}.market", err, known),
            "action": fields.get("action"),
        }
        if event["action"] not in ACTIONS:
            err.add(f"{where}.action", f"one of {', '.join(ACTIONS)}")
        if event["action"] == "shock":
            percent = _decimal(fields.get("percent"), f"{where}.percent", err)
            if not Decimal(-99) <= Decimal(percent) <= Decimal(1000):
                err.add(f"{where}.percent", "from -99 to 1000")
            model = out["markets"].get(event["market"], {}).get("model", {})
            if event["market"] and model.get("kind") not in ("gbm", "ou"):
                err.add(f"{where}.market", "a shock moves a market of the scenario with a gbm or ou model")
            event["percent"] = percent
        out["schedule"].append(event)
    out["schedule"].sort(key=lambda e: e["at"])
    if err.found:
        raise ScenarioInvalid(details={"errors": err.found})
    return out


def scenario_digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

"""Runtime configuration: values from the ecosystem's configuration service, with local defaults.

``get_config(key)`` is called by the trading code on every order, so the common case is a dict lookup and a clock
read: values are cached for CACHE_TTL. Only a caller that finds its key expired talks to the service
(``GET {CONFIG_SERVICE_URL}/api/v1/configuration/{key}``, header ``X-Service-Name``); while one thread refreshes a
key, the others keep using the previous value instead of queueing behind it.

What a lookup returns, in order:
1. the service's value, converted to the key's type (numbers are ``Decimal``, never float: they price money);
2. the service answered 404 (or an empty list): the key is not configured there -> the local default;
3. the service is unreachable, slow (REQUEST_TIMEOUT), failing or answers garbage -> the last good value from the
   service, else the local default. Each key logs when it changes between these states, not on every call.

A circuit breaker (open after 5 consecutive failures, half-open after CONFIG_BREAKER_RESET_TIMEOUT) stops a dead
service from costing REQUEST_TIMEOUT on each refresh. An empty CONFIG_SERVICE_URL turns remote lookups off.

Local defaults come from settings (environment variables, see ``KEYS``), read at call time so tests and operators
can change them without restarting anything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import quote

import httpx
import pybreaker
import structlog
from django.conf import settings
from django.core.signals import setting_changed

logger = structlog.get_logger("exchange.runtime_config")

Kind = Literal["number", "boolean", "string", "json"]
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class ConfigKey:
    name: str
    kind: Kind
    default: Callable[[], Any]
    description: str = ""


KEYS: dict[str, ConfigKey] = {}


def register_key(name: str, kind: Kind, default: Callable[[], Any], description: str = "") -> ConfigKey:
    """Declare a key; ``get_config`` refuses undeclared names so a typo fails loudly instead of using a default."""
    KEYS[name] = ConfigKey(name, kind, default, description)
    return KEYS[name]


register_key(
    "trading.default_taker_fee_bps",
    "number",
    lambda: settings.DEFAULT_TAKER_FEE_BPS,
    "taker fee in basis points (env DEFAULT_TAKER_FEE_BPS, default 10)",
)
register_key(
    "trading.default_maker_fee_bps",
    "number",
    lambda: settings.DEFAULT_MAKER_FEE_BPS,
    "maker fee in basis points (env DEFAULT_MAKER_FEE_BPS, default 5)",
)
register_key(
    "market_making.levels",
    "number",
    lambda: settings.MARKET_MAKING_LEVELS,
    "price levels per side of the house's ladder (env MARKET_MAKING_LEVELS, default 10)",
)
register_key(
    "market_making.step_bps",
    "number",
    lambda: settings.MARKET_MAKING_STEP_BPS,
    "distance between two levels of the house's ladder in basis points (env MARKET_MAKING_STEP_BPS, default 5)",
)
register_key(
    "market_making.size_factor",
    "number",
    lambda: settings.MARKET_MAKING_SIZE_FACTOR,
    "multiplies every market's ladder size per level (env MARKET_MAKING_SIZE_FACTOR, default 1)",
)
register_key(
    "trading.default_spread_bps",
    "number",
    lambda: settings.DEFAULT_SPREAD_BPS,
    "quoted spread around the reference price in basis points (env DEFAULT_SPREAD_BPS, default 10)",
)
register_key(
    "trading.max_order_notional_usd",
    "number",
    lambda: settings.MAX_ORDER_NOTIONAL_USD,
    "largest accepted order value in USD (env MAX_ORDER_NOTIONAL_USD, default 1000000)",
)
register_key(
    "risk.house_inventory_low_usd",
    "number",
    lambda: settings.RISK_HOUSE_INVENTORY_LOW_USD,
    "house inventory below this USD value is reported as low (env RISK_HOUSE_INVENTORY_LOW_USD, default 100000)",
)
register_key(
    "risk.rejection_rate_high_per_min",
    "number",
    lambda: settings.RISK_REJECTION_RATE_HIGH_PER_MIN,
    "order rejections per minute above which risk raises an alert (env RISK_REJECTION_RATE_HIGH_PER_MIN, default 60)",
)


class UnknownConfigKey(KeyError):
    """The key was never declared with ``register_key``."""


class InvalidConfigValue(ValueError):
    """The service answered, but its value cannot be read as the key's type (a data problem, not an outage)."""


class ConfigServiceError(Exception):
    """The service is unreachable, slow, failing, or answered something that is not a configuration reply."""


class _NotFound:
    """The service says the key does not exist."""


NOT_FOUND = _NotFound()


def convert(value: Any, kind: Kind, declared_type: str | None = None) -> Any:
    """The service's raw value as the key's type. Raises InvalidConfigValue."""
    if declared_type == "json" and kind != "string" and isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal)
        except ValueError as exc:
            raise InvalidConfigValue(f"type json but not JSON: {value[:50]!r}") from exc
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise InvalidConfigValue(f"not a number: {value!r}"[:100])
        try:
            # repr() of a float is its shortest round-tripping text, so 0.1 becomes Decimal("0.1").
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation as exc:
            raise InvalidConfigValue(f"not a number: {value!r}"[:100]) from exc
        if not number.is_finite():
            raise InvalidConfigValue(f"not a finite number: {value!r}")
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, str | int | Decimal) else ""
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise InvalidConfigValue(f"not a boolean: {value!r}"[:100])
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return str(value)
        raise InvalidConfigValue(f"not a string: {value!r}"[:100])
    if kind == "json":
        if isinstance(value, str):
            try:
                return json.loads(value, parse_float=Decimal)
            except ValueError as exc:
                raise InvalidConfigValue(f"not JSON: {value[:50]!r}") from exc
        return value
    raise InvalidConfigValue(f"unknown kind {kind!r}")


def extract_value(body: Any, *, key: str, service_name: str, environment: str) -> tuple[Any, str | None] | _NotFound:
    """The raw value and declared type from either reply shape of the ecosystem (ECOSYSTEM.md).

    Envelope: ``{"success": true, "data": [{"key", "value", "environment", "service", "updated_at"}]}``; when it
    lists several entries for the key, the one for our service and environment wins. Flat: ``{"key", "value",
    "type"}``.
    """
    if not isinstance(body, dict):
        raise ConfigServiceError(f"reply is a JSON {type(body).__name__}, not an object")
    if "data" in body or "success" in body:
        if body.get("success") is False:
            raise ConfigServiceError(f"service reported failure: {str(body.get('error') or body.get('message'))[:100]}")
        data = body.get("data")
        entries = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        matching = [e for e in entries if isinstance(e, dict) and "value" in e and e.get("key", key) == key]
        if not matching:
            return NOT_FOUND

        def rank(entry: dict[str, Any]) -> tuple[bool, bool]:
            return (entry.get("service") == service_name, entry.get("environment") == environment)

        best = max(matching, key=rank)
        return best["value"], best.get("type")
    if "value" in body:
        if body.get("key", key) != key:
            raise ConfigServiceError(f"asked for {key!r}, got {body.get('key')!r}")
        return body["value"], body.get("type")
    raise ConfigServiceError("reply has neither data nor value")


@dataclass
class _Cached:
    value: Any
    expires_at: float  # time.monotonic()


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            logger.warning("config_breaker_open", failures=cb.fail_counter, retry_after_s=cb.reset_timeout)
        else:
            logger.info("config_breaker_" + new_state.name.replace("-", "_"))


class ConfigClient:
    """Cached, typed lookups against one configuration service. Thread-safe; one per process is enough."""

    def __init__(
        self,
        *,
        base_url: str,
        service_name: str,
        environment: str = "",
        timeout: float = 5.0,
        cache_ttl: float = 300.0,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        success_threshold: int = 1,
        keys: dict[str, ConfigKey] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service_name, self.environment = service_name, environment
        self.timeout, self.cache_ttl = timeout, cache_ttl
        self.keys = KEYS if keys is None else keys
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            success_threshold=success_threshold,
            # A bad value for one key is a data problem; it must not cut every key off from the service.
            exclude=[InvalidConfigValue],
            listeners=[_BreakerLog()],
            name="config-service",
        )
        self._http = httpx.Client(timeout=timeout, headers={"X-Service-Name": service_name})
        self._cache: dict[str, _Cached] = {}
        self._last_good: dict[str, Any] = {}
        self._state: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        if not self.base_url:
            logger.info("config_service_disabled", reason="CONFIG_SERVICE_URL is empty; using local defaults")

    def get(self, key: str) -> Any:
        spec = self.keys.get(key)
        if spec is None:
            raise UnknownConfigKey(key)
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached.value
        if not self.base_url:
            return spec.default()
        # After the first attempt there is always something to answer with (last good value or default).
        return self._refresh(spec, had_value=cached is not None or key in self._state)

    def invalidate(self, key: str | None = None) -> None:
        """Forget cached values (all, or one key) so the next lookup asks the service."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def close(self) -> None:
        self._http.close()

    def _refresh(self, spec: ConfigKey, *, had_value: bool) -> Any:
        lock = self._lock_for(spec.name)
        # Someone else is already asking: answer with the last good value or the default rather than wait (an order
        # must not queue behind a slow config service). Only the very first lookup of a key waits for the answer.
        if not lock.acquire(blocking=not had_value):
            return self._fallback_value(spec)
        try:
            cached = self._cache.get(spec.name)
            if cached is not None and cached.expires_at > time.monotonic():
                return cached.value
            try:
                result = self.breaker.call(self._fetch, spec)
            except pybreaker.CircuitBreakerError:
                return self._fall_back(spec, "circuit breaker open")
            except (ConfigServiceError, InvalidConfigValue) as exc:
                return self._fall_back(spec, str(exc))
            if isinstance(result, _NotFound):
                value = spec.default()
                self._last_good.pop(spec.name, None)
                self._note(spec.name, "not_found", "config_key_not_found", level="info", using="local_default")
            else:
                value = result
                self._last_good[spec.name] = value
                self._note(spec.name, "remote", "config_remote_value", level="info")
            self._cache[spec.name] = _Cached(value, time.monotonic() + self.cache_ttl)
            return value
        finally:
            lock.release()

    def _fetch(self, spec: ConfigKey) -> Any:
        url = f"{self.base_url}/api/v1/configuration/{quote(spec.name, safe='')}"
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.TimeoutException as exc:
            raise ConfigServiceError(f"no answer within {self.timeout}s ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise ConfigServiceError(f"unreachable: {type(exc).__name__}: {exc}"[:200]) from exc
        if response.status_code == 404:
            return NOT_FOUND
        if response.status_code != 200:
            raise ConfigServiceError(f"HTTP {response.status_code}")
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise ConfigServiceError("reply is not JSON") from exc
        extracted = extract_value(body, key=spec.name, service_name=self.service_name, environment=self.environment)
        if isinstance(extracted, _NotFound):
            return NOT_FOUND
        raw, declared_type = extracted
        return convert(raw, spec.kind, declared_type)

    def _fallback_value(self, spec: ConfigKey) -> Any:
        return self._last_good[spec.name] if spec.name in self._last_good else spec.default()

    def _fall_back(self, spec: ConfigKey, reason: str) -> Any:
        using = "last_good" if spec.name in self._last_good else "local_default"
        self._note(spec.name, f"fallback_{using}", "config_fallback", level="warning", using=using, reason=reason)
        return self._fallback_value(spec)

    def _note(self, key: str, state: str, event: str, *, level: str, **fields: Any) -> None:
        previous = self._state.get(key)
        if previous == state:
            return
        self._state[key] = state
        if state == "remote" and previous is not None and previous.startswith("fallback"):
            event = "config_remote_recovered"
        getattr(logger, level)(event, key=key, previous=previous, **fields)

    def _lock_for(self, key: str) -> threading.Lock:
        lock = self._locks.get(key)
        if lock is None:
            with self._locks_guard:
                lock = self._locks.setdefault(key, threading.Lock())
        return lock


_client: ConfigClient | None = None
_client_guard = threading.Lock()


def config_client() -> ConfigClient:
    """The process-wide client, built from settings on first use."""
    global _client
    client = _client
    if client is None:
        with _client_guard:
            if _client is None:
                _client = ConfigClient(
                    base_url=settings.CONFIG_SERVICE_URL,
                    service_name=settings.SERVICE_NAME,
                    environment=settings.ENVIRONMENT,
                    timeout=settings.REQUEST_TIMEOUT,
                    cache_ttl=settings.CACHE_TTL,
                    fail_max=settings.BREAKER_FAIL_MAX,
                    reset_timeout=settings.CONFIG_BREAKER_RESET_TIMEOUT,
                    success_threshold=settings.BREAKER_SUCCESS_THRESHOLD,
                )
            client = _client
    return client


def get_config(key: str) -> Any:
    """The typed value of a declared key (``KEYS``): Decimal for numbers, bool, str, or parsed JSON."""
    return config_client().get(key)


def reset_config_client() -> None:
    """Drop the process-wide client (and its cache); the next lookup builds a new one from settings."""
    global _client
    with _client_guard:
        if _client is not None:
            _client.close()
        _client = None


_CLIENT_SETTINGS = frozenset(
    {
        "CONFIG_SERVICE_URL",
        "SERVICE_NAME",
        "ENVIRONMENT",
        "REQUEST_TIMEOUT",
        "CACHE_TTL",
        "BREAKER_FAIL_MAX",
        "BREAKER_SUCCESS_THRESHOLD",
        "CONFIG_BREAKER_RESET_TIMEOUT",
    }
)


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    # override_settings / the pytest ``settings`` fixture: rebuild the client with the new values.
    if setting in _CLIENT_SETTINGS:
        reset_config_client()


setting_changed.connect(_on_setting_changed, dispatch_uid="exchange.runtime_config")

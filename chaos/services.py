"""Injecting and clearing faults.

An injection is a row (chaos/models.py) with its type, parameters, scope, seed and end; creating or clearing it
drops this process's snapshot of what is in force (the others see it within ``CHAOS_CACHE_TTL``). Faults that move
the house's ladder (spreads, liquidity) refresh the quotes of the markets they name when they start and when they
are cleared or found expired, so resting orders the new quotes cross are filled at once and the book is never left
crossed (orders.services.market_quotes_refresh).
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chaos import state
from chaos.models import ChaosType, Injection
from exchange import errors
from markets.reference_data import MARKETS

logger = structlog.get_logger("exchange.chaos")

LADDER_TYPES = (ChaosType.SPREADS, ChaosType.LIQUIDITY)
_SYMBOLS = {(m["base"], m["quote"]): m["symbol"] for m in MARKETS}


def symbol_normalize(text: str) -> str:
    """BTC-USD from BTC-USD, BTC/USD, btc_usd, BTCUSD, and the pair named the other way round (USD-BTC, as some of
    the ecosystem's scenarios spell it). Raises UnknownSymbol."""
    raw = str(text).strip().upper()
    for sep in ("-", "/", "_", ":", " "):
        if sep in raw:
            left, _, right = raw.partition(sep)
            break
    else:
        left = right = ""
        for (base, quote), _symbol in _SYMBOLS.items():
            for a, b in ((base, quote), (quote, base)):
                if raw == a + b:
                    left, right = a, b
    for pair in ((left, right), (right, left)):
        if pair in _SYMBOLS:
            return _SYMBOLS[pair]
    raise errors.UnknownSymbol(
        f"Unknown market symbol {str(text)[:30]!r}; the markets: {', '.join(sorted(_SYMBOLS.values()))}.",
        details={"symbol": str(text)[:30]},
    )


def _params_json(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"{v:f}" if isinstance(v, Decimal) else v) for k, v in params.items() if v is not None}


def _ladder_refresh(symbols: list[str]) -> None:
    """Re-quote the house on these markets (all when empty), filling resting orders the new quotes cross."""
    from markets.models import Market
    from orders.services import market_quotes_refresh

    markets = Market.objects.all() if not symbols else Market.objects.filter(symbol__in=symbols)
    for market in markets.order_by("pk"):
        try:
            market_quotes_refresh(market=market, actor=None, reason="house quotes changed: chaos")
        except Exception:
            logger.exception("chaos_ladder_refresh_failed", symbol=market.symbol)


def injection_create(
    *,
    kind: str,
    params: dict[str, Any],
    actor: Any,
    duration_s: float | None = None,
    seed: int | None = None,
    operations: list[str] | None = None,
    accounts: list[str] | None = None,
    symbols: list[str] | None = None,
) -> Injection:
    """Store an injection; it acts from now until it expires or is cleared."""
    if not settings.CHAOS_ENABLED:
        raise errors.NotFound("Chaos control is disabled.")
    default = min(settings.CHAOS_DEFAULT_DURATION, settings.CHAOS_MAX_DURATION)
    duration = float(duration_s) if duration_s is not None else default
    if duration > settings.CHAOS_MAX_DURATION:
        raise errors.ValidationFailed(
            details={"fields": {"duration_s": [f"At most CHAOS_MAX_DURATION ({settings.CHAOS_MAX_DURATION:g} s)."]}}
        )
    markets = sorted({symbol_normalize(s) for s in symbols or []})
    now = timezone.now()
    injection = Injection.objects.create(
        type=kind,
        params=_params_json(params),
        operations=sorted(set(operations or [])),
        accounts=sorted({str(a) for a in accounts or []}),
        markets=markets,
        seed=seed if seed is not None else secrets.randbits(48),
        created_by=actor if getattr(actor, "pk", None) else None,
        created_at=now,
        expires_at=now + timedelta(seconds=duration),
    )
    state.invalidate()
    logger.info(
        "chaos_injected",
        chaos_id=injection.chaos_id,
        type=kind,
        params=injection.params,
        markets=markets,
        accounts=injection.accounts,
        operations=injection.operations,
        seed=injection.seed,
        duration_s=duration,
    )
    if kind in LADDER_TYPES:
        transaction.on_commit(lambda: _ladder_refresh(markets))
    return injection


def _clear(injections: list[Injection], *, reason: str) -> list[Injection]:
    now = timezone.now()
    ended = []
    for injection in injections:
        if injection.cleared_at is None and injection.expires_at > now:
            Injection.objects.filter(pk=injection.pk, cleared_at__isnull=True).update(
                cleared_at=now, cleared_reason=reason
            )
            injection.cleared_at, injection.cleared_reason = now, reason
            ended.append(injection)
    state.invalidate()
    ladder = [i for i in ended if i.type in LADDER_TYPES]
    if ladder:
        symbols = sorted({s for i in ladder for s in i.markets}) if all(i.markets for i in ladder) else []
        transaction.on_commit(lambda: _ladder_refresh(symbols))
    for injection in ended:
        logger.info("chaos_cleared", chaos_id=injection.chaos_id, type=injection.type, reason=reason)
    return ended


def injection_clear(*, chaos_id: str, actor: Any) -> Injection:
    """End an injection now. Clearing one that has already ended changes nothing and answers it as it is."""
    injection = Injection.objects.filter(chaos_id=chaos_id).first()
    if injection is None:
        raise errors.NotFound("No such chaos injection.", details={"chaos_id": chaos_id[:60]})
    _clear([injection], reason="cleared")
    return injection


def injection_clear_all(*, actor: Any) -> list[Injection]:
    """End every injection in force."""
    now = timezone.now()
    return _clear(
        list(Injection.objects.filter(cleared_at__isnull=True, expires_at__gt=now).order_by("id")), reason="clear-all"
    )


def liquidity_restore(*, actor: Any, symbols: list[str] | None = None) -> tuple[Injection, list[Injection]]:
    """End the liquidity reductions in force on these markets (all when none are named): recorded as an action of
    its own (type restore_liquidity, already ended) so history shows it."""
    markets = sorted({symbol_normalize(s) for s in symbols or []})
    now = timezone.now()
    found = [
        i
        for i in Injection.objects.filter(type=ChaosType.LIQUIDITY, cleared_at__isnull=True, expires_at__gt=now)
        if not markets or not i.markets or set(i.markets) & set(markets)
    ]
    cleared = _clear(found, reason="restore-liquidity")
    action = Injection.objects.create(
        type=ChaosType.RESTORE_LIQUIDITY,
        params={"cleared": [i.chaos_id for i in cleared]},
        markets=markets,
        seed=0,
        created_by=actor if getattr(actor, "pk", None) else None,
        created_at=now,
        expires_at=now,
    )
    return action, cleared


# --- what the effects report ----------------------------------------------------------------------------------
_pending: dict[int, int] = {}
_pending_lock = threading.Lock()


def affected_add(injection: state.Active, count: int = 1) -> None:
    """Count a request or an order the injection acted on (written in batches, see ``affected_flush``)."""
    with _pending_lock:
        _pending[injection.pk] = _pending.get(injection.pk, 0) + count


def affected_flush() -> None:
    """Write the counts gathered in this process (called when the snapshot refreshes and before a scrape)."""
    with _pending_lock:
        pending = dict(_pending)
        _pending.clear()
    for pk, count in pending.items():
        try:
            Injection.objects.filter(pk=pk).update(affected=F("affected") + count)
        except Exception:
            with _pending_lock:
                _pending[pk] = _pending.get(pk, 0) + count
            return

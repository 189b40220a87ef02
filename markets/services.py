"""Writes for markets: reference price and trading status (each change kept in the market's history), and the
effective spread and fee (a market's own setting, or the configured default)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from chaos.effects import ladder_adjust
from exchange import errors
from exchange.runtime_config import get_config
from ledger.selectors import asset_map
from ledger.services import amount_check_precision
from markets.ladder import LadderSettings
from markets.models import Market, MarketStatus

# A market change's reason is kept as django-simple-history's history_change_reason, a varchar(100).
REASON_MAX_LENGTH = 100


def effective_spread_bps(market: Any) -> Decimal:
    return market.spread_bps if market.spread_bps is not None else Decimal(get_config("trading.default_spread_bps"))


def effective_fee_bps(market: Any) -> Decimal:
    """The taker fee: the market's own, or the configured default."""
    return (
        market.taker_fee_bps
        if market.taker_fee_bps is not None
        else Decimal(get_config("trading.default_taker_fee_bps"))
    )


def effective_maker_fee_bps(market: Any) -> Decimal:
    return (
        market.maker_fee_bps
        if market.maker_fee_bps is not None
        else Decimal(get_config("trading.default_maker_fee_bps"))
    )


def ladder_settings(market: Any) -> LadderSettings:
    """The house's ladder settings of a market (a Market or the row the order path read under its lock), with the
    configured defaults for what the market leaves empty."""
    levels = market.ladder_levels if market.ladder_levels is not None else int(get_config("market_making.levels"))
    step = (
        market.ladder_step_bps if market.ladder_step_bps is not None else Decimal(get_config("market_making.step_bps"))
    )
    size = (market.ladder_size or Decimal(0)) * Decimal(get_config("market_making.size_factor"))
    # Chaos: spreads widened and depth thinned by the injections in force on this market (chaos/effects.py).
    spread, size = ladder_adjust(symbol=market.symbol, spread_bps=effective_spread_bps(market), size=size)
    return LadderSettings(
        reference_price=market.reference_price,
        spread_bps=spread,
        levels=levels,
        step_bps=step,
        size=size,
        price_tick=market.price_tick,
        quantity_step=market.quantity_step,
        enabled=market.house_quoting,
    )


def _reason_check(reason: str) -> None:
    if len(reason) > REASON_MAX_LENGTH:
        raise errors.ValidationFailed(
            f"The reason is longer than {REASON_MAX_LENGTH} characters.",
            details={"fields": {"reason": [f"At most {REASON_MAX_LENGTH} characters."]}},
        )


def market_price_parse(*, market: Market, price: Any) -> Decimal:
    """A valid reference price for the market: positive, finite, at most the quote asset's decimals.
    Raises InvalidAmount. (The admin's form calls it too, to show a bad price as a field error.)"""
    try:
        value = Decimal(str(price))
    except Exception:
        raise errors.InvalidAmount("The price is not a number.", details={"price": str(price)[:40]}) from None
    if not value.is_finite() or value <= 0 or value > Decimal("1e12"):
        raise errors.InvalidAmount("The price must be a positive number.", details={"price": str(price)[:40]})
    amount_check_precision(amount=value, asset=asset_map()[market.quote_asset_id])
    return value


@transaction.atomic
def market_set_price(*, market: Market, price: Any, actor: Any, reason: str = "") -> Market:
    """Set a market's reference price (kept in the market's history, so every fill's price is traceable)."""
    _reason_check(reason)
    value = market_price_parse(market=market, price=price)
    locked = Market.objects.select_for_update().get(pk=market.pk)
    locked.reference_price = value
    locked.price_updated_at = timezone.now()
    locked._history_user = actor  # type: ignore[attr-defined]
    locked._change_reason = reason or f"price -> {value}"  # type: ignore[attr-defined]
    locked.save()
    return locked


@transaction.atomic
def market_set_status(*, market: Market, status: str, actor: Any, reason: str = "") -> Market:
    """Halt or resume trading on a market."""
    _reason_check(reason)
    if status not in MarketStatus.values:
        raise errors.ValidationFailed(details={"fields": {"status": [f"Must be one of {MarketStatus.values}."]}})
    locked = Market.objects.select_for_update().get(pk=market.pk)
    locked.status = status
    locked._history_user = actor  # type: ignore[attr-defined]
    locked._change_reason = reason or f"status -> {status}"  # type: ignore[attr-defined]
    locked.save()
    return locked

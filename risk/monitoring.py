"""Risk monitoring: the exchange's inventory and obligations, order flow, and the accounts nearest their limits.

Definitions (all USD values at the USD markets' reference prices now; USDT counts 1:1):

* house inventory: what the house liquidity books hold of an asset (the sum of its shards); the house is the
  counterparty of every fill, so a buy of an asset the house holds too little of is rejected.
* house funding: what operators have moved into house liquidity (``house_funding`` entries), net.
* net exposure = house inventory - house funding: what trading has changed in the house's holdings. Positive:
  customers sold the asset to the house (the house is long it against its funding); negative: customers bought it
  (the house is short). Fees are kept apart, in fee revenue, and are not part of it.
* customer liabilities: what customers hold of an asset (available + locked), which the exchange owes them.
* fees earned: the fee revenue books of an asset.
* order flow: orders placed and orders rejected over the last 1, 5 and 15 minutes (``Order.created_at``), and
  the per-minute rates (count / minutes).
* accounts nearest their limits: a spot account's limit is what it holds; one is nearest its limits when most of
  its equity sits in one non-cash asset (it is exposed to that one price, and has little cash left to buy with).
  The top accounts are ranked by that concentration (share of equity in the largest non-cash asset), then by the
  least cash available (USD + USDT).

Alerts, from configuration (``exchange.runtime_config``):

* ``risk.house_inventory_low_usd``: an asset whose house inventory is worth less than this (``house_inventory_low``);
* ``risk.rejection_rate_high_per_min``: more rejections in the last minute than this (``rejection_rate_high``).

Every time the summary is computed the Prometheus gauges below are set; computing it only reads (no row locks),
so it never holds up trading. ``manage.py risk_monitor`` (run by ``serve``) computes it every
RISK_MONITOR_INTERVAL, so the gauges are fresh whether or not anyone reads the summary, and logs each alert once
when it starts (``risk_alert_started``, a warning) and once when it ends (``risk_alert_ended``): ``AlertLog``.

The gauges use prometheus_client's multiprocess mode "mostrecent": under gunicorn every worker writes its samples
to PROMETHEUS_MULTIPROC_DIR, and whichever worker computed the summary last is the current value (with the default
mode "all" each worker would export its own, stale, series). Prometheus gauges are floats; the API carries the
exact decimals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import structlog
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from prometheus_client import Gauge

from accounts.models import Account, Balance
from exchange.api import format_amount
from exchange.runtime_config import get_config
from ledger.models import EntryKind, LedgerAccount, LedgerAccountKind, Posting
from ledger.reconciliation import sums_by
from ledger.selectors import asset_map
from markets.selectors import usd_prices
from orders.models import Order, OrderStatus
from risk.positions import CASH_ASSETS

logger = structlog.get_logger("exchange.risk")

ZERO = Decimal(0)
CENT = Decimal("0.01")
WINDOWS_MINUTES = (1, 5, 15)
TOP_ACCOUNTS = 5
RECENT_REJECTIONS = 10

HOUSE_INVENTORY_USD = Gauge(
    "exchange_house_inventory_usd",
    "House liquidity of an asset, valued in USD at its reference price.",
    ["asset"],
    multiprocess_mode="mostrecent",
)
HOUSE_INVENTORY = Gauge(
    "exchange_house_inventory",
    "House liquidity of an asset, in units of the asset.",
    ["asset"],
    multiprocess_mode="mostrecent",
)
NET_EXPOSURE_USD = Gauge(
    "exchange_net_exposure_usd",
    "House inventory minus house funding of an asset (what trading changed), in USD.",
    ["asset"],
    multiprocess_mode="mostrecent",
)
CUSTOMER_LIABILITIES_USD = Gauge(
    "exchange_customer_liabilities_usd",
    "What customers hold of an asset, in USD.",
    ["asset"],
    multiprocess_mode="mostrecent",
)
FEES_EARNED_USD = Gauge(
    "exchange_fees_earned_usd",
    "Fee revenue of an asset, in USD.",
    ["asset"],
    multiprocess_mode="mostrecent",
)
ORDERS_PER_MINUTE = Gauge(
    "exchange_orders_per_minute",
    "Orders placed per minute over the window.",
    ["window"],
    multiprocess_mode="mostrecent",
)
REJECTIONS_PER_MINUTE = Gauge(
    "exchange_rejections_per_minute",
    "Orders rejected per minute over the window.",
    ["window"],
    multiprocess_mode="mostrecent",
)
RISK_ALERT = Gauge(
    "exchange_risk_alert",
    "1 while a risk alert holds, else 0 (asset is empty for exchange-wide alerts).",
    ["alert", "asset"],
    multiprocess_mode="mostrecent",
)


def _usd(amount: Decimal, price: Decimal | None) -> Decimal | None:
    return None if price is None else amount * price


def _cents(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value.quantize(CENT, rounding=ROUND_HALF_EVEN), 2)


def _units(value: Decimal, asset: str) -> str | None:
    return format_amount(value, asset_map()[asset].decimals)


def _rate(count: int, minutes: int) -> Decimal:
    return (Decimal(count) / minutes).quantize(CENT, rounding=ROUND_HALF_EVEN)


def _customer_holdings() -> dict[str, Decimal]:
    """Sum of every customer balance (available + locked) per asset, exactly (SQLite's SUM is a float)."""
    if connection.vendor == "postgresql":
        rows = Balance.objects.values("asset_id").annotate(held=Sum(F("available") + F("locked")))
        return {row["asset_id"]: row["held"] or ZERO for row in rows}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for asset, available, locked in Balance.objects.values_list("asset_id", "available", "locked").iterator(
        chunk_size=5000
    ):
        totals[asset] += available + locked
    return dict(totals)


def order_flow(*, now: datetime, account: Account | None = None) -> list[dict[str, Any]]:
    """Orders and rejections over the last 1, 5 and 15 minutes, in one query."""
    qs = Order.objects.filter(created_at__gte=now - timedelta(minutes=max(WINDOWS_MINUTES)), created_at__lte=now)
    if account is not None:
        qs = qs.filter(account=account)
    counts = qs.aggregate(
        **{f"orders_{m}": Count("pk", filter=Q(created_at__gte=now - timedelta(minutes=m))) for m in WINDOWS_MINUTES},
        **{
            f"rejections_{m}": Count(
                "pk", filter=Q(created_at__gte=now - timedelta(minutes=m), status=OrderStatus.REJECTED)
            )
            for m in WINDOWS_MINUTES
        },
    )
    return [
        {
            "minutes": m,
            "orders": counts[f"orders_{m}"],
            "rejections": counts[f"rejections_{m}"],
            "orders_per_minute": _rate(counts[f"orders_{m}"], m),
            "rejections_per_minute": _rate(counts[f"rejections_{m}"], m),
        }
        for m in WINDOWS_MINUTES
    ]


@dataclass
class _AccountExposure:
    account_id: Any
    equity_usd: Decimal = ZERO
    cash_available_usd: Decimal = ZERO
    largest_asset: str | None = None
    largest_value_usd: Decimal = ZERO

    @property
    def concentration(self) -> Decimal:
        return self.largest_value_usd / self.equity_usd if self.equity_usd > 0 else ZERO


def _exposure(account_id: Any, balances: list[tuple[str, Decimal, Decimal]], prices: dict[str, Decimal]) -> Any:
    exposure = _AccountExposure(account_id=account_id)
    for asset, available, locked in balances:
        price = prices.get(asset)
        if price is None:
            continue
        value = (available + locked) * price
        exposure.equity_usd += value
        if asset in CASH_ASSETS:
            exposure.cash_available_usd += available * price
        elif value > exposure.largest_value_usd:
            exposure.largest_asset, exposure.largest_value_usd = asset, value
    return exposure


def accounts_nearest_limits(*, prices: dict[str, Decimal], limit: int = TOP_ACCOUNTS) -> list[dict[str, Any]]:
    holdings: dict[Any, list[tuple[str, Decimal, Decimal]]] = defaultdict(list)
    rows = Balance.objects.exclude(available=0, locked=0).values_list(
        "account__account_id", "asset_id", "available", "locked"
    )
    for account_id, asset, available, locked in rows.iterator(chunk_size=5000):
        holdings[account_id].append((asset, available, locked))
    exposures = [_exposure(account_id, balances, prices) for account_id, balances in holdings.items()]
    exposures = [e for e in exposures if e.equity_usd > 0]
    exposures.sort(key=lambda e: (-e.concentration, e.cash_available_usd, str(e.account_id)))
    return [
        {
            "account_id": str(e.account_id),
            "equity_usd": _cents(e.equity_usd),
            "largest_asset": e.largest_asset,
            "concentration": format_amount(e.concentration, 4),
            "cash_available_usd": _cents(e.cash_available_usd),
        }
        for e in exposures[:limit]
    ]


class AlertLog:
    """Remembers which alerts hold and logs each one once when it starts and once when it ends (a monitor that
    logged every alert on every round would bury the change that matters)."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str | None], dict[str, Any]] = {}

    def update(self, alerts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Record the alerts that hold now; returns (started, ended)."""
        current = {(a["alert"], a["asset"]): a for a in alerts}
        started = [a for key, a in current.items() if key not in self.active]
        ended = [a for key, a in self.active.items() if key not in current]
        for alert in started:
            logger.warning("risk_alert_started", **alert)
        for alert in ended:
            logger.info("risk_alert_ended", alert=alert["alert"], asset=alert["asset"], threshold=alert["threshold"])
        self.active = current
        return started, ended


def risk_summary(*, now: datetime | None = None) -> dict[str, Any]:
    """The exchange-wide risk picture; sets the Prometheus gauges. ``alerts`` lists the alerts that hold."""
    now = now or timezone.now()
    prices = usd_prices() or {}
    books: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))  # kind -> asset -> balance
    for kind, asset, balance in LedgerAccount.objects.filter(
        account__isnull=True, kind__in=(LedgerAccountKind.HOUSE_LIQUIDITY, LedgerAccountKind.FEE_REVENUE)
    ).values_list("kind", "asset_id", "balance"):
        books[kind][asset] += balance
    house, fees = books[LedgerAccountKind.HOUSE_LIQUIDITY], books[LedgerAccountKind.FEE_REVENUE]
    funding = sums_by(
        Posting.objects.filter(
            ledger_account__kind=LedgerAccountKind.HOUSE_LIQUIDITY, entry__kind=EntryKind.HOUSE_FUNDING
        ),
        "asset_id",
    )
    customers = _customer_holdings()
    low_usd = Decimal(get_config("risk.house_inventory_low_usd"))
    high_rejections = Decimal(get_config("risk.rejection_rate_high_per_min"))

    assets, alerts = [], []
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for asset in sorted(asset_map()):
        price = prices.get(asset)
        inventory, funded = house.get(asset, ZERO), funding.get(asset, ZERO)
        figures = {
            "house_inventory": inventory,
            "house_funding": funded,
            "net_exposure": inventory - funded,
            "customer_liabilities": customers.get(asset, ZERO),
            "fees_earned": fees.get(asset, ZERO),
        }
        row: dict[str, Any] = {"asset": asset, "price_usd": _cents(price)}
        for name, value in figures.items():
            usd = _usd(value, price)
            row[name] = _units(value, asset)
            row[f"{name}_usd"] = _cents(usd)
            if usd is not None:
                totals[f"{name}_usd"] += usd
        assets.append(row)
        if price is None:
            continue
        inventory_usd = inventory * price
        HOUSE_INVENTORY_USD.labels(asset=asset).set(float(inventory_usd))
        HOUSE_INVENTORY.labels(asset=asset).set(float(inventory))
        NET_EXPOSURE_USD.labels(asset=asset).set(float(figures["net_exposure"] * price))
        CUSTOMER_LIABILITIES_USD.labels(asset=asset).set(float(figures["customer_liabilities"] * price))
        FEES_EARNED_USD.labels(asset=asset).set(float(figures["fees_earned"] * price))
        low = inventory_usd < low_usd
        RISK_ALERT.labels(alert="house_inventory_low", asset=asset).set(1 if low else 0)
        if low:
            alert = {
                "alert": "house_inventory_low",
                "asset": asset,
                "value": _cents(inventory_usd),
                "threshold": format_amount(low_usd),
            }
            alerts.append(alert)

    flow = order_flow(now=now)
    for window in flow:
        label = f"{window['minutes']}m"
        ORDERS_PER_MINUTE.labels(window=label).set(float(window["orders_per_minute"]))
        REJECTIONS_PER_MINUTE.labels(window=label).set(float(window["rejections_per_minute"]))
    last_minute = flow[0]["rejections_per_minute"]
    high = last_minute > high_rejections
    RISK_ALERT.labels(alert="rejection_rate_high", asset="").set(1 if high else 0)
    if high:
        alerts.append(
            {
                "alert": "rejection_rate_high",
                "asset": None,
                "value": format_amount(last_minute),
                "threshold": format_amount(high_rejections),
            }
        )

    return {
        "computed_at": now,
        "assets": assets,
        "totals": {name: _cents(value) for name, value in sorted(totals.items())},
        "order_flow": [
            {
                **w,
                "orders_per_minute": format_amount(w["orders_per_minute"], 2),
                "rejections_per_minute": format_amount(w["rejections_per_minute"], 2),
            }
            for w in flow
        ],
        "accounts_nearest_limits": accounts_nearest_limits(prices=prices),
        "thresholds": {
            "house_inventory_low_usd": format_amount(low_usd),
            "rejection_rate_high_per_min": format_amount(high_rejections),
        },
        "alerts": alerts,
    }


def account_risk(*, account: Account, now: datetime | None = None) -> dict[str, Any]:
    """One account's equity, exposure and concentration per asset, and its recent rejections."""
    now = now or timezone.now()
    prices = usd_prices() or {}
    balances = list(
        Balance.objects.filter(account=account).order_by("asset_id").values_list("asset_id", "available", "locked")
    )
    exposure = _exposure(account.account_id, balances, prices)
    complete = all(prices.get(asset) is not None for asset, available, locked in balances if available + locked)
    rows = []
    for asset, available, locked in balances:
        price = prices.get(asset)
        value = _usd(available + locked, price)
        share = value / exposure.equity_usd if value is not None and exposure.equity_usd > 0 else None
        rows.append(
            {
                "asset": asset,
                "total": _units(available + locked, asset),
                "available": _units(available, asset),
                "price_usd": _cents(price),
                "value_usd": _cents(value),
                "share_of_equity": None if share is None else format_amount(share, 4),
                "cash": asset in CASH_ASSETS,
            }
        )
    recent = (
        Order.objects.filter(account=account, status=OrderStatus.REJECTED)
        .select_related("market")
        .order_by("-id")[:RECENT_REJECTIONS]
    )
    return {
        "account_id": str(account.account_id),
        "status": account.status,
        "computed_at": now,
        "equity_usd": _cents(exposure.equity_usd) if complete else None,
        "cash_available_usd": _cents(exposure.cash_available_usd),
        "largest_asset": exposure.largest_asset,
        "concentration": format_amount(exposure.concentration, 4),
        "assets": rows,
        "order_flow": [
            {
                **w,
                "orders_per_minute": format_amount(w["orders_per_minute"], 2),
                "rejections_per_minute": format_amount(w["rejections_per_minute"], 2),
            }
            for w in order_flow(now=now, account=account)
        ],
        "recent_rejections": [
            {
                "order_id": str(o.order_id),
                "symbol": o.market.symbol,
                "side": o.side,
                "reason": o.reject_reason,
                "message": o.reject_message,
                "created_at": o.created_at,
            }
            for o in recent
        ],
    }

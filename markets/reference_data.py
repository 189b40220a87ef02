"""The markets every database starts with (created by a data migration; also restored for tests)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

# Plausible late-2026 prices; quantity steps and limits in the style of large spot exchanges.
MARKETS: list[dict[str, Any]] = [
    {
        "symbol": "BTC-USD",
        "price_tick": D("0.01"),
        "ladder_size": D("0.5"),
        "base": "BTC",
        "quote": "USD",
        "quantity_step": D("0.00001"),
        "min_quantity": D("0.00001"),
        "min_notional": D("1"),
        "max_notional": D("5000000"),
        "reference_price": D("65000.00"),
    },
    {
        "symbol": "ETH-USD",
        "price_tick": D("0.01"),
        "ladder_size": D("5"),
        "base": "ETH",
        "quote": "USD",
        "quantity_step": D("0.0001"),
        "min_quantity": D("0.0001"),
        "min_notional": D("1"),
        "max_notional": D("5000000"),
        "reference_price": D("3500.00"),
    },
    {
        "symbol": "BTC-USDT",
        "price_tick": D("0.01"),
        "ladder_size": D("0.5"),
        "base": "BTC",
        "quote": "USDT",
        "quantity_step": D("0.00001"),
        "min_quantity": D("0.00001"),
        "min_notional": D("1"),
        "max_notional": D("5000000"),
        "reference_price": D("65010.000000"),
    },
    {
        "symbol": "ETH-USDT",
        "price_tick": D("0.01"),
        "ladder_size": D("5"),
        "base": "ETH",
        "quote": "USDT",
        "quantity_step": D("0.0001"),
        "min_quantity": D("0.0001"),
        "min_notional": D("1"),
        "max_notional": D("5000000"),
        "reference_price": D("3501.000000"),
    },
    {
        "symbol": "ETH-BTC",
        "price_tick": D("0.00001"),
        "ladder_size": D("5"),
        "base": "ETH",
        "quote": "BTC",
        "quantity_step": D("0.001"),
        "min_quantity": D("0.001"),
        "min_notional": D("0.0001"),
        "max_notional": D("100"),
        "reference_price": D("0.05384615"),
    },
]


def ensure_reference_data(apps: Any = None, app_label: str = "markets") -> None:
    """Create the reference markets that are missing. Migrations pass their historical ``apps`` (and the app the
    model lived in then): only the fields that model had are set, later migrations fill in the rest."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Market = apps.get_model(app_label, "Market")
    known = {f.name for f in Market._meta.concrete_fields}
    existing = set(Market.objects.values_list("symbol", flat=True))
    for spec in MARKETS:
        if spec["symbol"] in existing:
            continue
        fields = {k: v for k, v in spec.items() if k in known}
        Market.objects.create(base_asset_id=spec["base"], quote_asset_id=spec["quote"], **fields)
    ensure_initial_history(apps, app_label)


def ensure_initial_history(apps: Any = None, app_label: str = "markets") -> None:
    """Give every market without history its first version (its state as created, by no user), so the price
    behind a fill made before any change is traceable too. A migration's models send no django-simple-history
    signals, so the markets the data migration creates would otherwise start with no history at all."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Market = apps.get_model(app_label, "Market")
    HistoricalMarket = apps.get_model(app_label, "HistoricalMarket")
    fields = [f.attname for f in Market._meta.concrete_fields]
    HistoricalMarket.objects.bulk_create(
        HistoricalMarket(
            **{name: getattr(market, name) for name in fields},
            # A market without history was never changed through the model: it is as it was created.
            history_date=market.price_updated_at,
            history_type="+",
            history_change_reason="initial reference data",
        )
        for market in Market.objects.exclude(pk__in=HistoricalMarket.objects.values("id"))
    )

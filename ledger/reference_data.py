"""The reference data every database needs: the assets and the exchange's own ledger accounts.

Used by the data migration and, because a transactional test flushes every table, by the test suite too.
Idempotent: it creates what is missing and never touches what exists.
"""

from __future__ import annotations

from typing import Any

# Precision: BTC and ETH at 8 decimals (satoshi; ETH as most exchanges trade it, not wei), USD at cents,
# USDT at 6 (its on-chain precision).
ASSETS: list[dict[str, Any]] = [
    {"code": "BTC", "name": "Bitcoin", "decimals": 8, "is_fiat": False},
    {"code": "ETH", "name": "Ether", "decimals": 8, "is_fiat": False},
    {"code": "USD", "name": "US Dollar", "decimals": 2, "is_fiat": True},
    {"code": "USDT", "name": "Tether USD", "decimals": 6, "is_fiat": False},
]

# For input fields and the schema's AssetEnum: the codes, exactly as written (the API does not upper-case them).
ASSET_CHOICES: list[tuple[str, str]] = [(asset["code"], asset["code"]) for asset in ASSETS]

# House liquidity and fee revenue are split into shards so concurrent fills rarely wait on the same row.
HOUSE_SHARDS = 8


def ensure_reference_data(apps: Any = None) -> None:
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Asset = apps.get_model("ledger", "Asset")
    LedgerAccount = apps.get_model("ledger", "LedgerAccount")
    for spec in ASSETS:
        Asset.objects.get_or_create(code=spec["code"], defaults=spec)
    existing = set(LedgerAccount.objects.filter(account__isnull=True).values_list("kind", "asset_id", "shard"))
    wanted = []
    for spec in ASSETS:
        for kind, shards in (("house_liquidity", HOUSE_SHARDS), ("fee_revenue", HOUSE_SHARDS), ("external", 1)):
            for shard in range(shards):
                if (kind, spec["code"], shard) not in existing:
                    wanted.append(LedgerAccount(kind=kind, asset_id=spec["code"], shard=shard))
    LedgerAccount.objects.bulk_create(wanted)

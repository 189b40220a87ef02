"""Reads of the ledger."""

from __future__ import annotations

from exchange import errors
from ledger.models import Asset, LedgerAccount, LedgerAccountKind

_ASSETS: dict[str, Asset] | None = None


def asset_map() -> dict[str, Asset]:
    """All assets by code. Assets are reference data created by a migration and never change at run time,
    so they are read once per process."""
    global _ASSETS
    if _ASSETS is None:
        _ASSETS = {asset.code: asset for asset in Asset.objects.all()}
    return _ASSETS


def asset_get(*, code: str) -> Asset:
    asset = asset_map().get(str(code).upper())
    if asset is None:
        raise errors.UnknownAsset(f"Unknown asset {code!r}.", details={"asset": code, "known": sorted(asset_map())})
    return asset


def external_account(*, asset_code: str) -> LedgerAccount:
    return LedgerAccount.objects.get(kind=LedgerAccountKind.EXTERNAL, asset_id=asset_code, shard=0)


def house_shards(*, kind: str, asset_code: str) -> list[LedgerAccount]:
    return list(LedgerAccount.objects.filter(kind=kind, asset_id=asset_code, account__isnull=True).order_by("shard"))


def customer_ledger_accounts(*, account_id: int, asset_code: str) -> tuple[LedgerAccount, LedgerAccount]:
    """The (available, locked) ledger accounts of one customer account and asset."""
    rows = {la.kind: la for la in LedgerAccount.objects.filter(account_id=account_id, asset_id=asset_code)}
    return rows[LedgerAccountKind.CUSTOMER_AVAILABLE], rows[LedgerAccountKind.CUSTOMER_LOCKED]

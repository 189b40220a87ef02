"""Idempotent seeding of users, accounts, opening deposits, house liquidity and API keys."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Account, ApiKey
from accounts.services import account_create, api_key_create, deposit_create, house_fund
from exchange import locking
from ledger.models import LedgerAccount

DEFAULT_SEED: dict[str, Any] = {
    "house": {"BTC": "100", "ETH": "2000", "USD": "10000000", "USDT": "10000000"},
    "users": [
        {"username": "operator", "scopes": ["operator"]},
        {
            "username": "demo-trader",
            "scopes": ["read", "trade"],
            "accounts": [{"label": "main", "deposits": {"USD": "100000", "BTC": "1", "ETH": "10", "USDT": "50000"}}],
        },
        {"username": "demo-monitor", "scopes": ["monitor"], "accounts": []},
    ],
}


@transaction.atomic
def seed(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Apply a seed spec; returns the API keys created now (username, scopes, key), each shown only once.

    One transaction moves money on many rows, so it first creates what is missing, then takes every lock it will
    need in the global order (exchange.locking: accounts, their balance rows, the exchange's books), then funds."""
    User = get_user_model()
    new_keys: list[dict[str, str]] = []
    deposits: list[tuple[Account, str, str, str]] = []
    for entry in spec.get("users") or []:
        user, _ = User.objects.get_or_create(username=entry["username"])
        scopes = sorted(entry.get("scopes") or ["read"])
        if not ApiKey.objects.filter(user=user, name="seed", revoked=False).exists():
            _key, plain = api_key_create(user=user, name="seed", scopes=scopes)
            new_keys.append({"username": user.username, "scopes": ",".join(scopes), "key": plain})
        for acc in entry.get("accounts") or []:
            label = acc.get("label", "main")
            account = Account.objects.filter(owner=user, label=label).first() or account_create(owner=user, label=label)
            for asset, amount in (acc.get("deposits") or {}).items():
                deposits.append((account, asset, amount, f"seed:{user.username}:{label}:{asset}"))
    house = spec.get("house") or {}
    locking.lock_accounts({account.pk for account, *_ in deposits}, mode=locking.Mode.SHARE)
    locking.lock_balances({(account.pk, asset.upper()) for account, asset, *_ in deposits})
    assets = {asset.upper() for asset in house} | {asset.upper() for _, asset, *_ in deposits}
    locking.lock_books(
        LedgerAccount.objects.filter(account__isnull=True, asset_id__in=assets).values_list("pk", flat=True)
    )
    for asset, amount in house.items():
        house_fund(asset=asset, amount=amount, reason="seed: house liquidity", idempotency_key=f"seed:house:{asset}")
    for account, asset, amount, key in deposits:
        deposit_create(
            account=account, asset=asset, amount=amount, actor=None, reason="seed: opening deposit", idempotency_key=key
        )
    return new_keys

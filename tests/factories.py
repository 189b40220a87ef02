"""Factories for the tests: users, accounts (through the service, so balance rows and ledger accounts exist)."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from accounts.models import Account
from accounts.services import account_create, api_key_create, deposit_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")


def make_account(*, owner: Any = None, label: str = "main", funds: dict[str, str] | None = None) -> Account:
    """An account opened through the service, optionally funded with deposits (asset -> amount)."""
    account = account_create(owner=owner or UserFactory(), label=label)
    for asset, amount in (funds or {}).items():
        deposit_create(account=account, asset=asset, amount=amount, actor=None, reason="test funding")
    return account


def make_key(*, user: Any, scopes: list[str]) -> str:
    _key, plain = api_key_create(user=user, name=f"{user.username}-{'-'.join(scopes)}", scopes=scopes)
    return plain

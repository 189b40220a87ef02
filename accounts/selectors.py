"""Reads for accounts. Visibility rule: a key sees its owner's accounts; an operator key sees all. Anything else
answers 404, so the existence of another user's account never leaks."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from accounts.models import Account, ApiKey, Balance, Scope
from exchange import errors
from exchange.api import format_amount
from ledger.models import Posting
from ledger.selectors import asset_map


def actor_is_operator(*, key: ApiKey | None) -> bool:
    """May act on the books (move money, open accounts for others)."""
    return bool(key is not None and key.has_scope(Scope.OPERATOR))


def actor_sees_all(*, key: ApiKey | None) -> bool:
    """May read every account, order, trade and position: operators and read-only monitors."""
    return bool(key is not None and key.has_scope(Scope.MONITOR))


def account_list(*, user: Any, key: ApiKey | None, owner_id: int | None = None) -> QuerySet[Account]:
    qs = Account.objects.all()
    if not actor_sees_all(key=key):
        qs = qs.filter(owner=user)
    elif owner_id is not None:
        qs = qs.filter(owner_id=owner_id)
    return qs


def account_get(*, account_id: Any, user: Any, key: ApiKey | None) -> Account:
    try:
        parsed = uuid.UUID(str(account_id))
    except ValueError:
        raise errors.NotFound("Account not found.", details={"account_id": str(account_id)}) from None
    account = account_list(user=user, key=key).filter(account_id=parsed).first()
    if account is None:
        raise errors.NotFound("Account not found.", details={"account_id": str(account_id)})
    return account


def balance_list(*, account: Account) -> list[Balance]:
    """Every asset, zeros included, ordered by asset code."""
    return list(Balance.objects.filter(account=account).order_by("asset_id"))


def transaction_list(
    *,
    account: Account,
    asset: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Posting]:
    """Journal lines that touched the account, newest first."""
    qs = Posting.objects.filter(account=account).select_related("entry", "ledger_account").order_by("-id")
    if asset:
        qs = qs.filter(asset_id=asset.upper())
    if kind:
        qs = qs.filter(entry__kind=kind)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs


def account_audit(*, account: Account) -> list[dict[str, Any]]:
    """The account's change history and its journal entries, merged in time order (oldest first)."""
    events: list[dict[str, Any]] = []
    for record in account.history.select_related("history_user").order_by("history_date", "history_id"):
        events.append(
            {
                "type": "account_change",
                "at": record.history_date,
                "actor": getattr(record.history_user, "username", None),
                "change": {"+": "created", "~": "changed", "-": "deleted"}[record.history_type],
                "status": record.status,
                "label": record.label,
                "reason": record.history_change_reason,
            }
        )
    postings = (
        Posting.objects.filter(account=account).select_related("entry", "entry__actor", "ledger_account").order_by("id")
    )
    for posting in postings:
        entry = posting.entry
        events.append(
            {
                "type": "journal_entry",
                "at": entry.created_at,
                "actor": getattr(entry.actor, "username", None),
                "entry_id": str(entry.entry_id),
                "kind": entry.kind,
                "asset": posting.asset_id,
                "bucket": posting.ledger_account.kind.removeprefix("customer_"),
                "amount": format_amount(posting.amount, asset_map()[posting.asset_id].decimals),
                "memo": entry.memo,
            }
        )
    events.sort(key=lambda e: e["at"])
    return events


def total_equity_usd(*, balances: list[Balance]) -> Decimal | None:
    """Value of all holdings in USD at market prices; None until markets exist to price them."""
    from markets.selectors import usd_prices  # orders reads accounts at import time: import here, not at the top

    prices = usd_prices()
    if prices is None:
        return None
    total = Decimal(0)
    for balance in balances:
        if balance.total == 0:
            continue
        price = prices.get(balance.asset_id)
        if price is None:
            return None
        total += balance.total * price
    return total.quantize(Decimal("0.01"))

"""Reads for accounts. Visibility rule: a key sees its owner's accounts; an operator key sees all. Anything else
answers 404, so the existence of another user's account never leaks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet

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


# An account's identity (row id, public id, owner) never changes once it is opened, so the order path keeps it per
# process: its status is read again, under a lock, by the order itself (orders/store.py).
_IDENTITIES: dict[uuid.UUID, tuple[int, int, str]] = {}
_IDENTITIES_MAX = 100_000


def account_for_trading(*, account_id: Any, user: Any) -> Account:
    """One of ``user``'s own accounts by public id, without a query once seen: an Account carrying its identity only
    (id, account_id, owner, label). Another user's account is not found, exactly like one that does not exist."""
    try:
        parsed = uuid.UUID(str(account_id))
    except ValueError:
        raise errors.NotFound("Account not found.", details={"account_id": str(account_id)}) from None
    identity = _IDENTITIES.get(parsed)
    if identity is None:
        row = Account.objects.filter(account_id=parsed).values_list("id", "owner_id", "label").first()
        if row is None:
            raise errors.NotFound("Account not found.", details={"account_id": str(account_id)})
        if len(_IDENTITIES) >= _IDENTITIES_MAX:
            _IDENTITIES.clear()
        identity = _IDENTITIES[parsed] = row
    pk, owner_id, label = identity
    if owner_id != getattr(user, "pk", None):
        raise errors.NotFound("Account not found.", details={"account_id": str(account_id)})
    return Account(id=pk, account_id=parsed, owner_id=owner_id, label=label)


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


# Audit events are read in pages of a merged, time-ordered stream: each event has a key (time, source, id) that is
# unique and increasing, and a page is the next ``limit`` keys after (or before) a cursor, read from each source
# with the same keyset condition. The cost of a page is the page, not the account's history.
AuditKey = tuple[datetime, int, int]
_CHANGE, _ENTRY = 0, 1  # at equal times, a status change sorts before a journal line


@dataclass(frozen=True)
class AuditPage:
    events: list[dict[str, Any]]
    first: AuditKey | None  # keys of the first and last events, for the cursors
    last: AuditKey | None
    more: bool  # more events lie beyond the page in the direction it was read


def _after(at: str, ident: str, rank: int, key: AuditKey, descending: bool) -> Q:
    """Rows of one source whose (at, rank, id) is strictly after ``key`` (before it when descending)."""
    k_at, k_rank, k_id = key
    op = "lt" if descending else "gt"
    same_rank = Q(**{f"{at}": k_at, f"{ident}__{op}": k_id}) if rank == k_rank else Q(pk__in=[])
    later_rank = Q(**{f"{at}": k_at}) if (rank < k_rank if descending else rank > k_rank) else Q(pk__in=[])
    return Q(**{f"{at}__{op}": k_at}) | same_rank | later_rank


def account_audit(
    *, account: Account, after: AuditKey | None = None, before: AuditKey | None = None, limit: int = 50
) -> AuditPage:
    """A page of the account's change history and journal lines, merged in time order (oldest first): the
    ``limit`` events after ``after`` (or the first ones), or the ``limit`` events before ``before``."""
    descending = before is not None
    cursor = before if descending else after
    sign = "-" if descending else ""
    changes = account.history.select_related("history_user")
    postings = Posting.objects.filter(account=account).select_related("entry", "entry__actor", "ledger_account")
    if cursor is not None:
        changes = changes.filter(_after("history_date", "history_id", _CHANGE, cursor, descending))
        postings = postings.filter(_after("entry__created_at", "id", _ENTRY, cursor, descending))
    changes = changes.order_by(f"{sign}history_date", f"{sign}history_id")[: limit + 1]
    postings = postings.order_by(f"{sign}entry__created_at", f"{sign}id")[: limit + 1]
    keyed: list[tuple[AuditKey, dict[str, Any]]] = []
    for record in changes:
        event = {
            "type": "account_change",
            "at": record.history_date,
            "actor": getattr(record.history_user, "username", None),
            "change": {"+": "created", "~": "changed", "-": "deleted"}[record.history_type],
            "status": record.status,
            "label": record.label,
            "reason": record.history_change_reason,
        }
        keyed.append(((record.history_date, _CHANGE, record.history_id), event))
    for posting in postings:
        entry = posting.entry
        event = {
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
        keyed.append(((entry.created_at, _ENTRY, posting.pk), event))
    keyed.sort(key=lambda pair: pair[0], reverse=descending)
    more = len(keyed) > limit
    keyed = keyed[:limit]
    if descending:
        keyed.reverse()
    keys = [key for key, _ in keyed]
    return AuditPage(
        events=[event for _, event in keyed],
        first=keys[0] if keys else None,
        last=keys[-1] if keys else None,
        more=more,
    )


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

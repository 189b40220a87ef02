"""Writes for accounts: creation, status changes, funding (deposits, withdrawals, adjustments) and API keys.

Every money movement goes through ``ledger.services.journal_post`` against the external (custody) ledger account,
with the acting operator and a reason, so the journal explains every unit on every balance.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from accounts.models import Account, AccountStatus, ApiKey, Balance, Scope
from exchange import errors, locking
from ledger.models import EntryKind, JournalEntry, LedgerAccount, LedgerAccountKind
from ledger.selectors import asset_get, asset_map, customer_ledger_accounts, external_account
from ledger.services import Leg, journal_post

MAX_AMOUNT = Decimal("1e15")


@transaction.atomic
def account_create(*, owner: User, label: str = "", actor: Any = None) -> Account:
    """Open a spot account with a zero balance row and the two ledger accounts (available, locked) per asset."""
    account = Account(owner=owner, label=label.strip())
    account._history_user = actor or owner  # type: ignore[attr-defined]
    account.save()
    assets = sorted(asset_map())
    Balance.objects.bulk_create([Balance(account=account, asset_id=code) for code in assets])
    LedgerAccount.objects.bulk_create(
        [
            LedgerAccount(kind=kind, asset_id=code, account=account)
            for code in assets
            for kind in (LedgerAccountKind.CUSTOMER_AVAILABLE, LedgerAccountKind.CUSTOMER_LOCKED)
        ]
    )
    return account


def _transition(
    *, account: Account, allowed_from: set[str], to: str, actor: Any, reason: str, check: Any = None
) -> Account:
    # The account row FOR UPDATE (exchange.locking, level 2) makes check-then-set atomic: of two concurrent
    # transitions only one sees the old status, and money movements (which hold the row FOR SHARE) finish first
    # or see the new status.
    status = locking.lock_account(account.pk, mode=locking.Mode.UPDATE)
    if status not in allowed_from:
        raise errors.InvalidStateTransition(
            f"Account is {status}; cannot become {to}.",
            details={"status": status, "requested": to},
        )
    if check is not None:
        check()
    locked = Account.objects.get(pk=account.pk)
    locked.status = to
    locked._history_user = actor  # type: ignore[attr-defined]
    locked._change_reason = reason or f"status -> {to}"  # type: ignore[attr-defined]
    locked.save(update_fields=["status", "updated_at"])
    return locked


@transaction.atomic
def account_suspend(*, account: Account, actor: Any, reason: str = "") -> Account:
    return _transition(
        account=account, allowed_from={AccountStatus.ACTIVE}, to=AccountStatus.SUSPENDED, actor=actor, reason=reason
    )


@transaction.atomic
def account_reactivate(*, account: Account, actor: Any, reason: str = "") -> Account:
    return _transition(
        account=account, allowed_from={AccountStatus.SUSPENDED}, to=AccountStatus.ACTIVE, actor=actor, reason=reason
    )


@transaction.atomic
def account_close(*, account: Account, actor: Any, reason: str = "") -> Account:
    """Close an account; every balance must be zero. The account row is locked FOR UPDATE first, so no deposit or
    fill is between its status check and its credit (they hold the row FOR SHARE); then the balance rows."""

    def check_empty() -> None:
        held = {b.asset_id: str(b.total) for b in locking.lock_account_balances(account.pk) if b.total != 0}
        if held:
            raise errors.AccountNotEmpty(details={"balances": held})

    return _transition(
        account=account,
        allowed_from={AccountStatus.ACTIVE, AccountStatus.SUSPENDED},
        to=AccountStatus.CLOSED,
        actor=actor,
        reason=reason,
        check=check_empty,
    )


def account_lock_for_movement(*, account: Account, allow_suspended: bool = False) -> str:
    """Take the account's row FOR SHARE (exchange.locking, level 2) and refuse closed (and, unless allowed,
    suspended) accounts by the status read under that lock: the caller's object may be stale, and no status
    change can commit until this transaction ends. Call it before any balance lock."""
    status = locking.lock_account(account.pk, mode=locking.Mode.SHARE)
    account.status = status or account.status
    if status == AccountStatus.CLOSED:
        raise errors.AccountClosed()
    if status == AccountStatus.SUSPENDED and not allow_suspended:
        raise errors.AccountSuspended()
    return account.status


def amount_parse(*, amount: Any, asset_code: str, allow_negative: bool = False) -> tuple[Decimal, str]:
    """Validate an amount for an asset: a finite number, non-zero, positive (unless allowed), within bounds,
    with no more decimals than the asset has. Returns (amount, asset code)."""
    asset = asset_get(code=asset_code)
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except Exception as exc:
        raise errors.InvalidAmount("The amount is not a number.", details={"amount": str(amount)}) from exc
    if not value.is_finite():
        raise errors.InvalidAmount("The amount is not a finite number.", details={"amount": str(amount)})
    if value == 0 or (value < 0 and not allow_negative):
        raise errors.InvalidAmount("The amount must be positive.", details={"amount": str(amount)})
    if abs(value) > MAX_AMOUNT:
        raise errors.InvalidAmount(f"The amount exceeds {MAX_AMOUNT:f}.", details={"amount": str(amount)})
    from ledger.services import amount_check_precision

    amount_check_precision(amount=value, asset=asset)
    return value, asset.code


def _replay(
    idempotency_key: str | None, *, kind: str, account: Account, asset: str, amount: Decimal
) -> JournalEntry | None:
    """Return the entry a previous call with the same key made, or None; a key reused for something else is a
    conflict."""
    if not idempotency_key:
        return None
    entry = JournalEntry.objects.filter(idempotency_key=idempotency_key).first()
    if entry is None:
        return None
    same = (
        entry.kind == kind
        and entry.reference_id == str(account.account_id)
        and entry.metadata.get("asset") == asset
        and Decimal(entry.metadata.get("amount", "0")) == amount
    )
    if not same:
        raise errors.IdempotencyConflict(details={"idempotency_key": idempotency_key})
    return entry


def _fund(
    *,
    kind: str,
    account: Account,
    asset: str,
    amount: Any,
    actor: Any,
    reason: str,
    idempotency_key: str | None,
    allow_negative: bool = False,
) -> JournalEntry:
    value, code = amount_parse(amount=amount, asset_code=asset, allow_negative=allow_negative)
    account_lock_for_movement(account=account, allow_suspended=kind != EntryKind.WITHDRAWAL)
    replay = _replay(idempotency_key, kind=kind, account=account, asset=code, amount=value)
    if replay is not None:
        return replay
    available, _locked = customer_ledger_accounts(account_id=account.pk, asset_code=code)
    external = external_account(asset_code=code)
    try:
        # A savepoint: a concurrent duplicate of the idempotency key fails alone and is then replayed.
        with transaction.atomic():
            return journal_post(
                kind=kind,
                legs=[Leg(available, value), Leg(external, -value)],
                actor=actor,
                memo=reason,
                reference_type="account",
                reference_id=str(account.account_id),
                idempotency_key=idempotency_key or None,
                metadata={"asset": code, "amount": str(value)},
            )
    except IntegrityError:
        replay = _replay(idempotency_key, kind=kind, account=account, asset=code, amount=value)
        if replay is None:
            raise
        return replay


@transaction.atomic
def deposit_create(
    *, account: Account, asset: str, amount: Any, actor: Any, reason: str = "", idempotency_key: str | None = None
) -> JournalEntry:
    """Credit an account from the external (custody) account. Suspended accounts still receive deposits, as at a
    real exchange; closed accounts receive nothing."""
    return _fund(
        kind=EntryKind.DEPOSIT,
        account=account,
        asset=asset,
        amount=amount,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key,
    )


@transaction.atomic
def withdrawal_create(
    *, account: Account, asset: str, amount: Any, actor: Any, reason: str = "", idempotency_key: str | None = None
) -> JournalEntry:
    """Debit an account to the external account; refused beyond the available balance or when not active."""
    value, code = amount_parse(amount=amount, asset_code=asset)
    return _fund(
        kind=EntryKind.WITHDRAWAL,
        account=account,
        asset=code,
        amount=-value,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key,
        allow_negative=True,
    )


@transaction.atomic
def adjustment_create(
    *, account: Account, asset: str, amount: Any, actor: Any, reason: str, idempotency_key: str | None = None
) -> JournalEntry:
    """An operator correction, positive or negative, against the external account; a reason is required."""
    if not reason.strip():
        raise errors.ValidationFailed("An adjustment needs a reason.", details={"fields": {"reason": ["required"]}})
    return _fund(
        kind=EntryKind.ADJUSTMENT,
        account=account,
        asset=asset,
        amount=amount,
        actor=actor,
        reason=reason,
        idempotency_key=idempotency_key,
        allow_negative=True,
    )


@transaction.atomic
def house_fund(
    *, asset: str, amount: Any, actor: Any = None, reason: str = "house liquidity", idempotency_key: str | None = None
) -> JournalEntry:
    """Move liquidity from custody into the house's books, spread evenly over its shards (the remainder of the
    even split goes to shard 0, so no unit is lost to rounding)."""
    from ledger.selectors import house_shards

    value, code = amount_parse(amount=amount, asset_code=asset)
    if idempotency_key and JournalEntry.objects.filter(idempotency_key=idempotency_key).exists():
        return JournalEntry.objects.get(idempotency_key=idempotency_key)
    quantum = asset_get(code=code).quantum
    shards = house_shards(kind=LedgerAccountKind.HOUSE_LIQUIDITY, asset_code=code)
    share = (value / len(shards)).quantize(quantum, rounding="ROUND_DOWN")
    legs = [Leg(shard, share) for shard in shards if share > 0]
    remainder = value - share * len(legs)
    if remainder:
        legs.append(Leg(shards[0], remainder))
    legs.append(Leg(external_account(asset_code=code), -value))
    return journal_post(
        kind=EntryKind.HOUSE_FUNDING,
        legs=legs,
        actor=actor,
        memo=reason,
        reference_type="house",
        reference_id=code,
        idempotency_key=idempotency_key,
        metadata={"asset": code, "amount": str(value)},
    )


def api_key_create(
    *, user: User, name: str, scopes: list[str], actor: Any = None, account: Account | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns (key row, the plain key). The plain key is never stored and cannot be shown again.

    The key also gets a signing secret for the Binance-compatible API (HMAC-SHA256, accounts/signing.py), stored
    encrypted; its plain value is on the returned row as ``signing_secret`` only, to be shown once. ``account`` is
    the account the key trades there (one of the user's own; none: the user's default account)."""
    from accounts.signing import signing_secret_new

    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise errors.ValidationFailed(
            "Unknown or missing scopes.", details={"fields": {"scopes": unknown or ["required"]}, "known": Scope.values}
        )
    if account is not None and account.owner_id != user.pk:
        raise errors.NotFound("Account not found.", details={"account_id": str(account.account_id)})
    secret, encrypted = signing_secret_new()
    key = ApiKey(user=user, name=name, scopes=sorted(set(scopes)), account=account, signing_secret_encrypted=encrypted)
    key._history_user = actor or user  # type: ignore[attr-defined]
    plain = ApiKey.objects.assign_key(key)
    key.save()
    key.signing_secret = secret  # type: ignore[attr-defined]
    return key, plain


def api_key_revoke(*, key: ApiKey, actor: Any = None) -> ApiKey:
    key.revoked = True
    key._history_user = actor  # type: ignore[attr-defined]
    key.save()
    return key

"""Input and output shapes of the accounts API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from accounts.models import Account, Balance
from exchange.api import AmountField, AssetAmountField, KeysetCursorField, WrappedCursorPagination, format_amount
from ledger.models import EntryKind, Posting
from ledger.selectors import asset_map


def _decimals(asset_code: str) -> int | None:
    asset = asset_map().get(asset_code)
    return asset.decimals if asset else None


class BalanceOut(serializers.Serializer):
    asset = serializers.CharField(source="asset_id")
    available = AssetAmountField(asset="asset_id")
    locked = AssetAmountField(asset="asset_id")
    total = AssetAmountField(asset="asset_id")


class AccountOut(serializers.Serializer):
    account_id = serializers.UUIDField()
    owner = serializers.CharField(source="owner.username")
    label = serializers.CharField()
    account_type = serializers.CharField()
    status = serializers.CharField()
    balances = serializers.SerializerMethodField()
    total_equity_usd = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def _balances(self, obj: Account) -> list[Balance]:
        cache = getattr(obj, "_balances_cache", None)
        if cache is None:
            cache = sorted(obj.balances.all(), key=lambda b: b.asset_id)
            obj._balances_cache = cache  # type: ignore[attr-defined]
        return cache

    def get_balances(self, obj: Account) -> list[dict[str, Any]]:
        return BalanceOut(self._balances(obj), many=True).data  # type: ignore[return-value]

    def get_total_equity_usd(self, obj: Account) -> str | None:
        from accounts.selectors import total_equity_usd

        return format_amount(total_equity_usd(balances=self._balances(obj)), 2)


class AccountCreateIn(serializers.Serializer):
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    # Operators may open an account for any user (by username); others always for themselves.
    owner = serializers.CharField(max_length=150, required=False)


class FundingIn(serializers.Serializer):
    asset = serializers.CharField(max_length=10)
    amount = AmountField()
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    idempotency_key = serializers.CharField(max_length=128, required=False, allow_null=True, default=None)


class AdjustmentIn(FundingIn):
    reason = serializers.CharField(max_length=500)


class StatusChangeIn(serializers.Serializer):
    # Kept as the history's change reason, a varchar(100): longer would fail on PostgreSQL with a 500.
    reason = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class TransactionOut(serializers.Serializer):
    """One journal line that touched the account."""

    transaction_id = serializers.IntegerField(source="id")
    entry_id = serializers.UUIDField(source="entry.entry_id")
    kind = serializers.CharField(source="entry.kind")
    asset = serializers.CharField(source="asset_id")
    bucket = serializers.SerializerMethodField(help_text="available or locked")
    amount = AssetAmountField(asset="asset_id")
    memo = serializers.CharField(source="entry.memo")
    reference_type = serializers.CharField(source="entry.reference_type")
    reference_id = serializers.CharField(source="entry.reference_id")
    order_id = serializers.SerializerMethodField()
    trade_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_bucket(self, obj: Posting) -> str:
        return obj.ledger_account.kind.removeprefix("customer_")

    def get_order_id(self, obj: Posting) -> str | None:
        # A trade entry names the order of each account it settles (taker and maker); other entries one order.
        meta = obj.entry.metadata
        return meta.get("order_by_account", {}).get(str(obj.account_id)) or meta.get("order_id")

    def get_trade_id(self, obj: Posting) -> str | None:
        return obj.entry.metadata.get("trade_id")


class TransactionFilterIn(serializers.Serializer):
    asset = serializers.CharField(required=False, max_length=10)
    kind = serializers.ChoiceField(choices=EntryKind.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    # Pagination parameters pass through to the paginator.
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)


class FundingOut(serializers.Serializer):
    entry_id = serializers.UUIDField()
    kind = serializers.CharField()
    asset = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()
    memo = serializers.CharField()
    idempotency_key = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_asset(self, obj: Any) -> str:
        return obj.metadata.get("asset")

    def get_amount(self, obj: Any) -> str | None:
        """The signed change to the account (a withdrawal is negative), at the asset's precision."""
        asset = obj.metadata.get("asset")
        return format_amount(Decimal(obj.metadata.get("amount")), _decimals(asset))


class AuditPageIn(serializers.Serializer):
    cursor = KeysetCursorField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=WrappedCursorPagination.max_page_size)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("limit", WrappedCursorPagination.page_size)
        return attrs

"""Input and output shapes of the accounts API (field names per ECOSYSTEM.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from accounts.models import Account, AccountStatus, Balance, Scope
from exchange.api import (
    AmountField,
    AssetAmountField,
    AssetField,
    KeysetCursorField,
    PageIn,
    StrictDateTimeField,
    StrictUUIDField,
    TextField,
    WrappedCursorPagination,
    format_amount,
)
from ledger.models import EntryKind, Posting
from ledger.reference_data import ASSET_CHOICES
from ledger.selectors import asset_map


def _decimals(asset_code: str) -> int | None:
    asset = asset_map().get(asset_code)
    return asset.decimals if asset else None


class BalanceOut(serializers.Serializer):
    asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="asset_id")
    available = AssetAmountField(asset="asset_id")
    locked = AssetAmountField(asset="asset_id")
    total = AssetAmountField(asset="asset_id")


class AccountOut(serializers.Serializer):
    account_id = serializers.UUIDField()
    owner = serializers.CharField(source="owner.username")
    label = serializers.CharField()
    account_type = serializers.ChoiceField(choices=[("spot", "spot")])
    status = serializers.ChoiceField(choices=AccountStatus.choices)
    balances = serializers.SerializerMethodField()
    total_equity_usd = serializers.SerializerMethodField(
        help_text="Every balance at USD reference prices, in USD; null while an asset has no USD price."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def _balances(self, obj: Account) -> list[Balance]:
        cache = getattr(obj, "_balances_cache", None)
        if cache is None:
            cache = sorted(obj.balances.all(), key=lambda b: b.asset_id)
            obj._balances_cache = cache  # type: ignore[attr-defined]
        return cache

    @extend_schema_field(BalanceOut(many=True))
    def get_balances(self, obj: Account) -> list[dict[str, Any]]:
        return BalanceOut(self._balances(obj), many=True).data  # type: ignore[return-value]

    @extend_schema_field({"type": "string", "format": "decimal", "nullable": True})
    def get_total_equity_usd(self, obj: Account) -> str | None:
        from accounts.selectors import total_equity_usd

        return format_amount(total_equity_usd(balances=self._balances(obj)), 2)


class BalanceListOut(serializers.Serializer):
    account_id = serializers.UUIDField()
    balances = BalanceOut(many=True, help_text="Every asset, zeros included, by asset code.")


class AccountCreateIn(serializers.Serializer):
    label = TextField(max_length=100, required=False, allow_blank=True, default="")
    # Operators may open an account for any user (by username); others always for themselves.
    owner = TextField(
        max_length=150, required=False, help_text="Username (operators: any existing user; others: themselves)."
    )


class FundingIn(serializers.Serializer):
    asset = AssetField()
    amount = AmountField()
    reason = TextField(max_length=500, required=False, allow_blank=True, default="")
    idempotency_key = TextField(
        max_length=128,
        required=False,
        allow_null=True,
        default=None,
        help_text="A repeat with the same key returns the original entry; other parameters: 409.",
    )


class AdjustmentIn(FundingIn):
    amount = AmountField(signed=True, help_text="Signed: positive credits, negative debits.")
    reason = TextField(max_length=500)


class StatusChangeIn(serializers.Serializer):
    # Kept as the history's change reason, a varchar(100): longer would fail on PostgreSQL with a 500.
    reason = TextField(max_length=100, required=False, allow_blank=True, default="")


class TransactionOut(serializers.Serializer):
    """One journal line that touched the account."""

    transaction_id = serializers.IntegerField(source="id")
    entry_id = serializers.UUIDField(source="entry.entry_id")
    kind = serializers.ChoiceField(choices=EntryKind.choices, source="entry.kind")
    asset = serializers.ChoiceField(choices=ASSET_CHOICES, source="asset_id")
    bucket = serializers.SerializerMethodField(help_text="available or locked")
    amount = AssetAmountField(asset="asset_id")
    memo = serializers.CharField(source="entry.memo")
    reference_type = serializers.CharField(source="entry.reference_type")
    reference_id = serializers.CharField(source="entry.reference_id")
    order_id = serializers.SerializerMethodField()
    trade_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_field({"type": "string", "enum": ["available", "locked"]})
    def get_bucket(self, obj: Posting) -> str:
        return obj.ledger_account.kind.removeprefix("customer_")

    @extend_schema_field({"type": "string", "format": "uuid", "nullable": True})
    def get_order_id(self, obj: Posting) -> str | None:
        # A trade entry names the order of each account it settles (taker and maker); other entries one order.
        meta = obj.entry.metadata
        return meta.get("order_by_account", {}).get(str(obj.account_id)) or meta.get("order_id")

    @extend_schema_field({"type": "string", "format": "uuid", "nullable": True})
    def get_trade_id(self, obj: Posting) -> str | None:
        return obj.entry.metadata.get("trade_id")


class TransactionFilterIn(PageIn):
    asset = AssetField(required=False)
    kind = serializers.ChoiceField(choices=EntryKind.choices, required=False)
    since = StrictDateTimeField(required=False, help_text="From this time (inclusive).")
    until = StrictDateTimeField(required=False, help_text="Before this time (exclusive).")


class FundingOut(serializers.Serializer):
    entry_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=EntryKind.choices)
    asset = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField(help_text="The signed change to the account's available balance.")
    memo = serializers.CharField()
    idempotency_key = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ChoiceField(choices=ASSET_CHOICES))
    def get_asset(self, obj: Any) -> str:
        return obj.metadata.get("asset")

    @extend_schema_field({"type": "string", "format": "decimal"})
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


class FundingResultOut(serializers.Serializer):
    transaction = FundingOut(help_text="The journal entry (or, for a repeated idempotency key, the original one).")
    balances = BalanceOut(many=True, help_text="The account's balances after it.")


class AccountChangeEventOut(serializers.Serializer):
    type = serializers.ChoiceField(choices=[("account_change", "account_change")])
    at = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True)
    change = serializers.ChoiceField(choices=[("created", "created"), ("changed", "changed"), ("deleted", "deleted")])
    status = serializers.ChoiceField(choices=AccountStatus.choices)
    label = serializers.CharField()
    reason = serializers.CharField(allow_null=True)


class JournalEntryEventOut(serializers.Serializer):
    type = serializers.ChoiceField(choices=[("journal_entry", "journal_entry")])
    at = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True)
    entry_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=EntryKind.choices)
    asset = serializers.ChoiceField(choices=ASSET_CHOICES)
    bucket = serializers.ChoiceField(choices=[("available", "available"), ("locked", "locked")])
    amount = serializers.CharField(help_text="Signed decimal string at the asset's precision.")
    memo = serializers.CharField()


class AuditOut(serializers.Serializer):
    account_id = serializers.UUIDField()
    events = serializers.SerializerMethodField(help_text="Oldest first: account changes and journal lines, by type.")

    @extend_schema_field(
        PolymorphicProxySerializer(
            component_name="AuditEvent",
            serializers={"account_change": AccountChangeEventOut, "journal_entry": JournalEntryEventOut},
            resource_type_field_name="type",
            many=True,
        )
    )
    def get_events(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        return obj["events"]

    next = serializers.URLField(allow_null=True, help_text="The next page (later events), or null.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page (earlier events), or null.")


class ApiKeyCreateIn(serializers.Serializer):
    user = TextField(max_length=150, help_text="Username of the key's owner (an existing user).")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), min_length=1, max_length=4, help_text="What it may do."
    )
    name = TextField(max_length=50, required=False, allow_blank=True, default="")
    account_id = StrictUUIDField(
        required=False,
        help_text="The account it trades on the Binance-compatible API (/api/v3): one of the user's. Absent: the "
        "user's default account (their oldest one not closed).",
    )


class ApiKeyCreatedOut(serializers.Serializer):
    prefix = serializers.CharField(help_text="The key's public id (its first part).")
    name = serializers.CharField()
    user = serializers.CharField(source="user.username")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices))
    account_id = serializers.UUIDField(source="account.account_id", allow_null=True, default=None)
    created = serializers.DateTimeField()
    key = serializers.CharField(help_text="The API key (`Api-Key` / `X-MBX-APIKEY`). Shown once, stored hashed.")
    signing_secret = serializers.CharField(
        help_text="HMAC-SHA256 secret for signed /api/v3 requests. Shown once, stored encrypted."
    )

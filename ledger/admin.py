"""Read-only ledger screens: the journal can be inspected, never edited from the admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Case, F, OuterRef, QuerySet, Subquery, When
from django.http import HttpRequest, HttpResponse

from exchange.api import money_text
from ledger.models import Asset, JournalEntry, LedgerAccount, LedgerAccountKind, Posting


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("ledger_account", "account_id_public", "amount_text")
    readonly_fields = fields
    verbose_name_plural = "Postings (they sum to zero per asset)"
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Posting]:
        return super().get_queryset(request).select_related("ledger_account", "account")

    @admin.display(description="account")
    def account_id_public(self, obj: Posting) -> str:
        return str(obj.account.account_id) if obj.account_id else "-"

    @admin.display(description="amount")
    def amount_text(self, obj: Posting) -> str:
        return money_text(obj.amount, obj.asset_id)


def _title(admin_obj: admin.ModelAdmin, request: HttpRequest, object_id: str, make: Any) -> dict[str, Any]:
    obj = admin_obj.get_object(request, object_id)
    return {"title": make(obj)} if obj is not None else {}


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ("entry_id", "kind", "reference_type", "reference_id", "actor", "memo", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("entry_id", "reference_id", "memo", "idempotency_key")
    list_select_related = ("actor",)
    inlines = [PostingInline]
    date_hierarchy = "created_at"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), **_title(self, request, object_id, lambda e: f"Journal entry {e.entry_id}")}
        return super().change_view(request, object_id, form_url, extra)


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = ("id", "entry", "kind", "ledger_account", "account_public_id", "amount_text", "created_at")
    list_filter = ("asset", "ledger_account__kind", "entry__kind")
    search_fields = ("entry__entry_id", "account__account_id", "entry__memo")
    # Every column that shows a related row is joined here: one query for the page, however many rows.
    list_select_related = ("entry", "ledger_account", "asset", "account")

    @admin.display(description="entry kind", ordering="entry__kind")
    def kind(self, obj: Posting) -> str:
        return obj.entry.kind

    @admin.display(description="account")
    def account_public_id(self, obj: Posting) -> str:
        return str(obj.account.account_id) if obj.account_id else "-"

    @admin.display(description="amount", ordering="amount")
    def amount_text(self, obj: Posting) -> str:
        return money_text(obj.amount, obj.asset_id)


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "asset", "shard", "account_public_id", "balance_text")
    list_filter = ("kind", "asset")
    search_fields = ("account__account_id",)
    list_select_related = ("account", "asset")
    readonly_fields = ("kind", "asset", "shard", "account", "balance_text")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerAccount]:
        # A customer's ledger accounts keep no balance of their own: the account's balance row is their cache
        # (ledger.services.journal_post). Show that, in the same query.
        from accounts.models import Balance

        rows = Balance.objects.filter(account_id=OuterRef("account_id"), asset_id=OuterRef("asset_id"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                shown_balance=Case(
                    When(kind=LedgerAccountKind.CUSTOMER_AVAILABLE, then=Subquery(rows.values("available")[:1])),
                    When(kind=LedgerAccountKind.CUSTOMER_LOCKED, then=Subquery(rows.values("locked")[:1])),
                    default=F("balance"),
                )
            )
        )

    @admin.display(description="account")
    def account_public_id(self, obj: LedgerAccount) -> str:
        return str(obj.account.account_id) if obj.account_id else "-"

    @admin.display(description="balance")
    def balance_text(self, obj: LedgerAccount) -> str:
        return money_text(getattr(obj, "shown_balance", obj.balance), obj.asset_id)


@admin.register(Asset)
class AssetAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "decimals", "is_fiat")

"""Read-only ledger screens: the journal can be inspected, never edited from the admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ledger.models import Asset, JournalEntry, LedgerAccount, Posting


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ("ledger_account", "asset", "account", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ("entry_id", "kind", "reference_type", "reference_id", "actor", "memo", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("entry_id", "reference_id", "memo", "idempotency_key")
    list_select_related = ("actor",)
    inlines = [PostingInline]
    date_hierarchy = "created_at"


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = ("id", "entry", "ledger_account", "asset", "account", "amount", "created_at")
    list_filter = ("asset", "ledger_account__kind")
    search_fields = ("entry__entry_id", "account__account_id")
    # Every column that shows a related row is joined here: one query for the page, however many rows.
    list_select_related = ("entry", "ledger_account", "asset", "account")


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "asset", "shard", "account", "balance")
    list_filter = ("kind", "asset")
    search_fields = ("account__account_id",)
    list_select_related = ("account", "asset")


@admin.register(Asset)
class AssetAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "decimals", "is_fiat")

"""Operator screens for accounts and API keys. Money moves only through services (never by editing a row);
balances are read-only here; history is kept and cannot be reverted from the admin."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey
from simple_history.admin import SimpleHistoryAdmin

from accounts import services
from accounts.models import Account, ApiKey, Balance, Scope
from exchange import errors
from ledger.reference_data import ASSETS

# Our keys live in accounts.ApiKey (with user and scopes); the library's own model is unused.
admin.site.unregister(APIKey)


class HistoryAdmin(SimpleHistoryAdmin):
    """History to read, never to revert: SIMPLE_HISTORY_REVERT_DISABLED only hides the Revert button, and a POST
    to a history page would still save the old version (reviving a revoked API key, or undoing a change)."""

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and self.revert_disabled(request):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class BalanceInline(admin.TabularInline):
    model = Balance
    fields = ("asset", "available", "locked", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FundingForm(forms.Form):
    asset = forms.ChoiceField(choices=[(a["code"], a["code"]) for a in ASSETS])
    amount = forms.DecimalField(max_digits=38, decimal_places=18, min_value=Decimal("0"))
    reason = forms.CharField(max_length=500)


@admin.register(Account)
class AccountAdmin(HistoryAdmin):
    list_display = ("account_id", "label", "owner", "status", "holdings", "created_at")
    list_filter = ("status", "account_type", "created_at")
    search_fields = ("account_id", "label", "owner__username")
    list_select_related = ("owner",)
    readonly_fields = ("account_id", "account_type", "status", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The owner is chosen when the account is opened; moving an account (and its money) to another user is
        # not an edit.
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "owner") if obj is not None else fields

    fields = ("account_id", "owner", "label", "account_type", "status", "created_at", "updated_at")
    inlines = [BalanceInline]
    actions = ["deposit", "suspend", "reactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        # One prefetch for every row's balances keeps the list page at a fixed number of queries.
        return super().get_queryset(request).prefetch_related("balances")

    @admin.display(description="holdings")
    def holdings(self, obj: Account) -> str:
        held = [f"{b.asset_id} {b.total.normalize():f}" for b in obj.balances.all() if b.total]
        return ", ".join(held) or "-"

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        if not change:
            # New accounts get their balance rows and ledger accounts from the service.
            created = services.account_create(owner=obj.owner, label=obj.label, actor=request.user)
            obj.pk, obj.account_id = created.pk, created.account_id
        else:
            obj._history_user = request.user  # type: ignore[attr-defined]
            super().save_model(request, obj, form, change)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Suspend selected accounts")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._each(request, queryset, services.account_suspend, "suspended")

    @admin.action(description="Reactivate selected accounts")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._each(request, queryset, services.account_reactivate, "reactivated")

    def _each(self, request: HttpRequest, queryset: QuerySet[Account], service: Any, verb: str) -> None:
        done = 0
        for account in queryset:
            try:
                service(account=account, actor=request.user, reason=f"admin: {verb}")
                done += 1
            except errors.ExchangeError as exc:
                self.message_user(request, f"{account}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} account(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Deposit into selected accounts")
    def deposit(self, request: HttpRequest, queryset: QuerySet[Account]) -> HttpResponse | None:
        if "apply" in request.POST:
            form = FundingForm(request.POST)
            if form.is_valid():
                done = 0
                for account in queryset:
                    try:
                        services.deposit_create(
                            account=account,
                            asset=form.cleaned_data["asset"],
                            amount=form.cleaned_data["amount"],
                            actor=request.user,
                            reason=form.cleaned_data["reason"],
                        )
                        done += 1
                    except errors.ExchangeError as exc:
                        self.message_user(request, f"{account}: {exc.message}", messages.ERROR)
                self.message_user(request, f"Deposited into {done} account(s).", messages.SUCCESS)
                return None
        else:
            form = FundingForm()
        return render(
            request,
            "admin/accounts/deposit.html",
            {
                "form": form,
                "accounts": queryset,
                "opts": self.model._meta,
                "title": "Deposit",
                **self.admin_site.each_context(request),
            },
        )


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin, HistoryAdmin):
    """Creating a key shows it once (the library's save_model); only its hash is stored."""

    list_display = ("prefix", "name", "user", "scopes", "created", "last_used_at", "revoked")
    list_filter = ("revoked", "created")
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    fields = ("user", "name", "scopes", "expiry_date", "revoked", "prefix", "last_used_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "last_used_at")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any = None, change: bool = False) -> None:
        unknown = set(obj.scopes or []) - set(Scope.values)
        if unknown or not obj.scopes:
            self.message_user(request, f"Scopes must be a list of {Scope.values}.", messages.ERROR)
            obj.scopes = [Scope.READ]
        obj._history_user = request.user  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

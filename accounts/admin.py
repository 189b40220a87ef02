"""Operator screens for accounts and API keys. Money moves only through services (never by editing a row):
balances are read-only here; every action is a form, a confirmation page and a service call carrying an
idempotency key (exchange/admin_actions.py); history is kept and cannot be reverted from the admin."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html_join
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey
from simple_history.admin import SimpleHistoryAdmin

from accounts import services
from accounts.models import Account, AccountStatus, ApiKey, Balance, Scope
from exchange import errors
from exchange.admin_actions import ALREADY, DONE, ActionForm, ObjectAction, action_links, action_urls
from exchange.api import money_text
from ledger.models import JournalEntry
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
    fields = ("asset", "available", "locked", "total", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Balances"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="available")
    def available(self, obj: Balance) -> str:
        return money_text(obj.available, obj.asset_id)

    @admin.display(description="locked (reserved)")
    def locked(self, obj: Balance) -> str:
        return money_text(obj.locked, obj.asset_id)

    @admin.display(description="total")
    def total(self, obj: Balance) -> str:
        return money_text(obj.total, obj.asset_id)


# --- actions on one account ----------------------------------------------------------------------------------
ASSET_CHOICES = [(a["code"], a["code"]) for a in ASSETS]


class FundingForm(ActionForm):
    asset = forms.ChoiceField(choices=ASSET_CHOICES)
    amount = forms.CharField(
        max_length=40, help_text="A decimal at the asset's precision (BTC and ETH 8, USD 2, USDT 6 decimals)."
    )
    reason = forms.CharField(max_length=500, help_text="Kept with the journal entry, e.g. the wire reference.")


class AdjustmentForm(FundingForm):
    amount = forms.CharField(max_length=40, help_text="Signed: positive credits the account, negative debits it.")


class ReasonForm(ActionForm):
    reason = forms.CharField(max_length=100, required=False, help_text="Kept in the account's history.")


def _funding(service: Any, verb: str) -> Any:
    def perform(request: HttpRequest, account: Account, data: dict[str, Any]) -> tuple[int, str]:
        key = data["idempotency_key"]
        replay = JournalEntry.objects.filter(idempotency_key=key).exists()
        entry = service(
            account=account,
            asset=data["asset"],
            amount=data["amount"].strip(),
            actor=request.user,
            reason=data["reason"],
            idempotency_key=key,
        )
        amount = money_text(abs(Decimal(entry.metadata["amount"])), entry.metadata["asset"])
        if replay:
            message = f"Already done: this form was submitted before, and the {verb} of {amount} was recorded once"
            return ALREADY, f"{message} (journal entry {entry.entry_id})."
        return DONE, f"{verb.capitalize()} of {amount} recorded (journal entry {entry.entry_id})."

    return perform


def _suspend(**kwargs: Any) -> Any:
    """Suspending cancels the account's resting orders too (orders.services.account_suspend)."""
    from orders.services import account_suspend

    return account_suspend(**kwargs)


def _transition(service: Any, target: str, verb: str) -> Any:
    def perform(request: HttpRequest, account: Account, data: dict[str, Any]) -> tuple[int, str]:
        account.refresh_from_db(fields=["status"])
        if account.status == target:
            return ALREADY, f"The account is already {target}."
        service(account=account, actor=request.user, reason=data.get("reason") or f"admin: {verb}")
        return DONE, f"Account {account.account_id} {target}."

    return perform


def _cancel_open_orders(request: HttpRequest, account: Account, data: dict[str, Any]) -> tuple[int, str]:
    from orders.services import order_cancel_all

    cancelled = order_cancel_all(account=account, actor=request.user)
    if not cancelled:
        return ALREADY, "The account has no open orders."
    return DONE, f"{len(cancelled)} open order(s) cancelled, their reservations released."


ACCOUNT_ACTIONS = [
    ObjectAction(
        "deposit",
        "Deposit",
        FundingForm,
        _funding(services.deposit_create, "deposit"),
        help="Credit the account from custody (an incoming wire or transfer).",
    ),
    ObjectAction(
        "withdraw",
        "Withdraw",
        FundingForm,
        _funding(services.withdrawal_create, "withdrawal"),
        help="Debit the account to custody; refused beyond the available balance.",
    ),
    ObjectAction(
        "adjust",
        "Adjust",
        AdjustmentForm,
        _funding(services.adjustment_create, "adjustment"),
        help="A signed correction against custody, with a reason.",
    ),
    ObjectAction(
        "suspend",
        "Suspend",
        ReasonForm,
        _transition(_suspend, AccountStatus.SUSPENDED, "suspend"),
        help="No trading and no withdrawals until reactivated; deposits still arrive.",
        danger=True,
    ),
    ObjectAction(
        "reactivate",
        "Reactivate",
        ReasonForm,
        _transition(services.account_reactivate, AccountStatus.ACTIVE, "reactivate"),
    ),
    ObjectAction(
        "close",
        "Close",
        ReasonForm,
        _transition(services.account_close, AccountStatus.CLOSED, "close"),
        help="Only an account whose balances are all zero can be closed; nothing moves afterwards.",
        danger=True,
    ),
    ObjectAction(
        "cancel-orders",
        "Cancel open orders",
        ActionForm,
        _cancel_open_orders,
        help="Cancel every order of this account that is still open.",
        danger=True,
    ),
]


@admin.register(Account)
class AccountAdmin(HistoryAdmin):
    list_display = ("account_id", "label", "owner", "status", "holdings", "created_at")
    list_filter = ("status", "account_type", "created_at")
    search_fields = ("account_id", "label", "owner__username")
    list_select_related = ("owner",)
    readonly_fields = ("account_id", "account_type", "status", "activity", "created_at", "updated_at")
    fields = ("account_id", "owner", "label", "account_type", "status", "activity", "created_at", "updated_at")
    inlines = [BalanceInline]
    actions = ["suspend", "reactivate"]
    change_form_template = "admin/exchange/change_form_with_actions.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The owner is chosen when the account is opened; moving an account (and its money) to another user is
        # not an edit.
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "owner") if obj is not None else fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        return fields if obj is not None else [f for f in fields if f in ("owner", "label")]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        # One prefetch for every row's balances keeps the list page at a fixed number of queries.
        return super().get_queryset(request).prefetch_related("balances")

    def get_urls(self) -> list[Any]:
        return action_urls(self, ACCOUNT_ACTIONS) + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        account = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if account is not None:
            extra["title"] = f"Account {account.account_id}"
            extra["subtitle"] = f"{account.label or 'account'} of {account.owner} · {account.status}"
            extra["object_actions"] = action_links(self, account, ACCOUNT_ACTIONS)
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="holdings")
    def holdings(self, obj: Account) -> str:
        held = [
            money_text(b.total, b.asset_id) for b in sorted(obj.balances.all(), key=lambda b: b.asset_id) if b.total
        ]
        return ", ".join(held) or "-"

    @admin.display(description="orders, trades and journal lines")
    def activity(self, obj: Account) -> str:
        from orders.models import RESTING_STATUSES

        open_statuses = ",".join(RESTING_STATUSES)
        links = [
            (
                "Open orders",
                reverse("admin:orders_order_changelist") + f"?account__id__exact={obj.pk}&status__in={open_statuses}",
            ),
            ("All orders", reverse("admin:orders_order_changelist") + f"?account__id__exact={obj.pk}"),
            ("Trades", reverse("admin:orders_fill_changelist") + f"?account__id__exact={obj.pk}"),
            ("Journal lines", reverse("admin:ledger_posting_changelist") + f"?account__id__exact={obj.pk}"),
            ("History", reverse("admin:accounts_account_history", args=[obj.pk])),
        ]
        return format_html_join(
            " · ", '<a href="{}" class="account-link">{}</a>', ((url, label) for label, url in links)
        )

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
        self._each(request, queryset, _suspend, "suspended")

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


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin, HistoryAdmin):
    """Creating a key shows it once (the library's save_model) with its signing secret for the Binance-compatible
    API; only the key's hash and the secret encrypted (accounts/signing.py) are stored."""

    list_display = ("prefix", "name", "user", "scopes", "created", "last_used_at", "revoked")
    list_filter = ("revoked", "created")
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    fields = ("user", "name", "scopes", "account", "expiry_date", "revoked", "prefix", "last_used_at")
    raw_id_fields = ("account",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*super().get_readonly_fields(request, obj), "last_used_at")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any = None, change: bool = False) -> None:
        unknown = set(obj.scopes or []) - set(Scope.values)
        if unknown or not obj.scopes:
            self.message_user(request, f"Scopes must be a list of {Scope.values}.", messages.ERROR)
            obj.scopes = [Scope.READ]
        if obj.account_id is not None and obj.account.owner_id != obj.user_id:
            self.message_user(request, "The key's account must be one of its user's; none was set.", messages.ERROR)
            obj.account = None
        obj._history_user = request.user  # type: ignore[attr-defined]
        secret = None
        if not obj.pk:
            from accounts.signing import signing_secret_new

            secret, obj.signing_secret_encrypted = signing_secret_new()
        super().save_model(request, obj, form, change)
        if secret is not None:
            self.message_user(
                request,
                f"Its signing secret (Binance-compatible API, /api/v3) is: {secret}. It cannot be shown again.",
                messages.WARNING,
            )

"""Operator actions in the admin: one object, a form, a confirmation page, and the service that does it.

Flow: GET shows the form with a fresh idempotency key in a hidden field; POST checks the form and shows the
confirmation page (the values carried as hidden fields, the key unchanged); POST with ``confirm`` calls the service
with that key and redirects to the object. Submitting the confirmation again (Back and submit, a double click)
sends the same key, and the money services return the entry they already made instead of moving money again.
A refused action (the service raises an ExchangeError) shows the form again with that error only and the values
as typed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from exchange import errors


class ActionForm(forms.Form):
    """Every action form carries its idempotency key (new each time the form is opened)."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=128)

    def summary(self) -> list[tuple[str, Any]]:
        """(label, value) pairs for the confirmation page."""
        return [
            (str(field.label), self.cleaned_data.get(name))
            for name, field in self.fields.items()
            if name != "idempotency_key"
        ]


def new_idempotency_key() -> str:
    return f"admin:{uuid.uuid4()}"


@dataclass(frozen=True)
class ObjectAction:
    """``perform(request, obj, data) -> (level, message)`` does the action through a service; ``form`` asks for
    what it needs; ``verb`` names it on buttons and pages ("Deposit")."""

    name: str
    verb: str
    form: type[ActionForm]
    perform: Callable[[HttpRequest, Any, dict[str, Any]], tuple[int, str]]
    help: str = ""
    danger: bool = False


def run_action(model_admin: admin.ModelAdmin, request: HttpRequest, obj: Any, action: ObjectAction) -> HttpResponse:
    if not model_admin.has_change_permission(request, obj):
        raise PermissionDenied
    opts = model_admin.model._meta
    back = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    confirming = False
    if request.method == "POST":
        form = action.form(request.POST)
        if form.is_valid():
            if "confirm" in request.POST:
                try:
                    level, message = action.perform(request, obj, form.cleaned_data)
                except errors.ExchangeError as exc:
                    form.add_error(None, exc.message)
                else:
                    model_admin.message_user(request, message, level)
                    return HttpResponseRedirect(back)
            else:
                confirming = True
    else:
        form = action.form(initial={"idempotency_key": new_idempotency_key()})
    if confirming:
        for field in form.fields.values():
            field.widget = forms.HiddenInput()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.verb}: {obj}",
        "action": action,
        "object": obj,
        "form": form,
        "confirming": confirming,
        "summary": form.summary() if confirming else [],
        "opts": opts,
        "back_url": back,
    }
    return TemplateResponse(request, "admin/exchange/object_action.html", context)


def action_urls(model_admin: admin.ModelAdmin, actions: list[ObjectAction]) -> list[Any]:
    """URL patterns ``<pk>/<action>/`` for a ModelAdmin's get_urls."""
    from django.urls import path

    opts = model_admin.model._meta

    def view_for(action: ObjectAction) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            obj = model_admin.get_object(request, object_id)
            if obj is None:
                return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
            return run_action(model_admin, request, obj, action)

        return model_admin.admin_site.admin_view(view)

    return [
        path(f"<path:object_id>/{a.name}/", view_for(a), name=f"{opts.app_label}_{opts.model_name}_{a.name}")
        for a in actions
    ]


def action_links(model_admin: admin.ModelAdmin, obj: Any, actions: list[ObjectAction]) -> list[dict[str, Any]]:
    opts = model_admin.model._meta
    return [
        {
            "url": reverse(f"admin:{opts.app_label}_{opts.model_name}_{a.name}", args=[obj.pk]),
            "verb": a.verb,
            "danger": a.danger,
        }
        for a in actions
    ]


DONE = messages.SUCCESS
ALREADY = messages.INFO

"""Scope checks. ``trade`` includes ``read``; ``monitor`` reads everything and moves nothing; ``operator``
includes ``monitor`` and the operator actions (accounts.models.SCOPE_GRANTS)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import ApiKey, Scope


class _ScopePermission(BasePermission):
    scope = Scope.READ
    message = "This API key lacks the required scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        self.message = f"This API key lacks the '{self.scope}' scope."
        return key.has_scope(self.scope)


class ReadScope(_ScopePermission):
    scope = Scope.READ


class TradeScope(_ScopePermission):
    scope = Scope.TRADE


class OperatorScope(_ScopePermission):
    """Moves money or changes the books: operators only."""

    scope = Scope.OPERATOR


class MonitorScope(_ScopePermission):
    """Exchange-wide reads (risk, reconciliation): read-only monitors and operators."""

    scope = Scope.MONITOR


class TradeOrOperatorScope(_ScopePermission):
    """Writes that move no money but are not reads (opening an account): trade or operator keys."""

    scope = Scope.TRADE

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        self.message = "This API key lacks the 'trade' or 'operator' scope."
        return key.has_scope(Scope.TRADE) or key.has_scope(Scope.OPERATOR)

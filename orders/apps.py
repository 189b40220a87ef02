from __future__ import annotations

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders and trades"

    def ready(self) -> None:
        # Registers the settlement checks with ledger.reconciliation (manage.py reconcile, /api/v1/reconciliation).
        from orders import settlement  # noqa: F401

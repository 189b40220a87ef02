from __future__ import annotations

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders and trades"

    def ready(self) -> None:
        # Registers the settlement checks with ledger.reconciliation (manage.py reconcile, /api/v1/reconciliation).
        from django.db.models.signals import post_migrate

        from orders import settlement  # noqa: F401
        from orders.pg_store import install

        # The order path's PostgreSQL functions follow the models: recreated after every migrate.
        post_migrate.connect(install, sender=self, dispatch_uid="orders.pg_store.install")

from __future__ import annotations

from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"
    verbose_name = "Live streams (outbox and server-sent events)"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from streams.outbox import install

        # The outbox triggers follow the tables they watch: recreated after every migrate (cheap, idempotent).
        post_migrate.connect(install, sender=self, dispatch_uid="streams.outbox.install")

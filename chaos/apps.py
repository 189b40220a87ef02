from django.apps import AppConfig


class ChaosConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chaos"
    verbose_name = "Chaos control"

    def ready(self) -> None:
        from chaos import metrics

        metrics.register()

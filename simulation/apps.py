from __future__ import annotations

from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "simulation"
    verbose_name = "Simulation"

    def ready(self) -> None:
        from exchange.health import SECTIONS
        from simulation.leadership import engine_status

        SECTIONS["price_engine"] = engine_status

from __future__ import annotations

from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "simulation"
    verbose_name = "Simulation"

    def ready(self) -> None:
        from exchange.health import SECTIONS
        from markets import market_data
        from simulation.leadership import engine_status
        from simulation.selectors import market_path_driven

        SECTIONS["price_engine"] = engine_status
        market_data.path_driven = market_path_driven

"""Compute the risk gauges and alerts every RISK_MONITOR_INTERVAL until SIGTERM (``serve`` runs it as a child).

The loop's shape is healthchecks' ``sendalerts``: a flag set by SIGTERM/SIGINT ends it between rounds, so a round in
progress finishes and the process exits 0. A failed round (the database away) is logged once, and once more when a
round succeeds again; the loop carries on.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from risk.monitoring import AlertLog, risk_summary

logger = structlog.get_logger("exchange.risk")


class Command(BaseCommand):
    help = "Compute risk gauges and alerts every RISK_MONITOR_INTERVAL; log each alert once when it starts and ends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=settings.RISK_MONITOR_INTERVAL, help="seconds")
        parser.add_argument("--rounds", type=int, default=0, help="stop after this many rounds (0: until SIGTERM)")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            logger.info("risk_monitor_stopping", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        interval = max(0.1, options["interval"])
        logger.info("risk_monitor_started", interval_s=interval)
        alerts, failing, rounds = AlertLog(), False, 0
        while not stop.is_set():
            # A connection the database dropped between rounds is replaced, not reused.
            close_old_connections()
            try:
                alerts.update(risk_summary()["alerts"])
            except Exception as exc:
                if not failing:
                    logger.warning("risk_monitor_round_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                failing = True
            else:
                if failing:
                    logger.info("risk_monitor_recovered")
                failing = False
            rounds += 1
            if options["rounds"] and rounds >= options["rounds"]:
                break
            stop.wait(interval)
        close_old_connections()
        logger.info("risk_monitor_stopped", rounds=rounds)

"""Move the simulated markets' prices until SIGTERM (``serve`` runs it as a child; docs/simulation.md).

Of all the instances sharing a database exactly one moves prices: the holder of the ``price_engine`` advisory lock
(simulation/leadership.py). The others wait and take over within about ``--check-interval`` seconds of the leader's
connection ending. The loop's shape is healthchecks' ``sendalerts``: SIGTERM/SIGINT set a flag, the round in
progress finishes, the lock is released and the process exits 0.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import structlog
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from simulation.engine import LEADER, PriceEngine
from simulation.leadership import EngineLeadership

logger = structlog.get_logger("exchange.simulation")


class Command(BaseCommand):
    help = "Run the price engine (and a scenario's agents) while this instance leads; until SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check-interval", type=float, default=1.0, help="seconds between leadership checks")
        parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until SIGTERM)")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            logger.info("price_engine_stopping", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        until = time.monotonic() + options["seconds"] if options["seconds"] else None
        engine = PriceEngine()
        gauge = LEADER.labels(instance=settings.SERVICE_INSTANCE_NAME)
        gauge.set(0)
        leading, failing = False, False
        logger.info("price_engine_started")
        with EngineLeadership(check_interval=options["check_interval"]) as leadership:
            while not stop.is_set() and (until is None or time.monotonic() < until):
                close_old_connections()
                wait = 0.5
                try:
                    now_leading = leadership.is_leader()
                    if now_leading and not leading:
                        engine.reload()
                    elif now_leading:
                        engine.reload_if_changed()
                    leading = now_leading
                    gauge.set(1 if leading else 0)
                    if leading:
                        wait = engine.round()
                except Exception as exc:
                    if not failing:
                        logger.warning("price_engine_round_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                    failing = True
                    wait = 1.0
                else:
                    if failing:
                        logger.info("price_engine_recovered")
                    failing = False
                if wait > 0:
                    stop.wait(min(wait, options["check_interval"]))
            gauge.set(0)
        close_old_connections()
        logger.info("price_engine_stopped", ticks=engine.ticks)

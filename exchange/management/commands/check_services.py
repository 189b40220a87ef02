"""``manage.py check_services``: every sibling in discovery, its gRPC health, and its circuit breaker state.

Runs the same client manager the service uses (exchange/grpc_clients.py), so what it prints is what a call would
see. ``--rounds`` repeats the checks, which shows a breaker opening against a dead sibling.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange.discovery import DiscoveryUnavailable, discover, discover_all
from exchange.grpc_clients import SiblingClients
from exchange.management.commands.discover import render_table


class Command(BaseCommand):
    help = "Check gRPC health of every discovered sibling (excluding this instance) and show its breaker state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service", nargs="?", help="only this service")
        parser.add_argument("--timeout", type=float, default=None, help="seconds per health check")
        parser.add_argument("--rounds", type=int, default=1, help="check this many times (breaker state evolves)")
        parser.add_argument("--interval", type=float, default=0.0, help="seconds between rounds")

    def handle(self, *args: Any, **options: Any) -> None:
        timeout = options["timeout"] if options["timeout"] is not None else min(settings.REQUEST_TIMEOUT, 3.0)
        try:
            found = discover(options["service"]) if options["service"] else discover_all()
        except DiscoveryUnavailable as exc:
            raise CommandError(str(exc)) from exc
        siblings = [
            i
            for i in found
            if not (i.service_name == settings.SERVICE_NAME and i.instance_id == settings.SERVICE_INSTANCE_NAME)
        ]
        if not siblings:
            self.stdout.write("no siblings discovered")
            return
        clients = SiblingClients()
        try:
            for round_number in range(max(1, options["rounds"])):
                if round_number:
                    time.sleep(options["interval"])
                reports = [clients.check_instance(i, timeout=timeout) for i in siblings]
            self.stdout.write(
                render_table(
                    ["SERVICE", "INSTANCE", "TARGET", "HEALTH", "BREAKER", "LATENCY_MS", "ERROR"],
                    [[r.service, r.instance, r.target, r.status, r.breaker, r.latency_ms, r.error] for r in reports],
                )
            )
        finally:
            clients.close()

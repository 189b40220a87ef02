"""``manage.py discover [service]``: what service discovery lists right now (every service when none is given)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange.discovery import DiscoveryUnavailable, discover, discover_all


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)


class Command(BaseCommand):
    help = "List live service instances registered in Redis (services:{name}:*), for one service or all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service", nargs="?", help="service name (default: every service)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def handle(self, *args: Any, **options: Any) -> None:
        service = options["service"]
        try:
            instances = discover(service) if service else discover_all()
        except DiscoveryUnavailable as exc:
            raise CommandError(str(exc)) from exc
        now = datetime.now(UTC)
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    [
                        {
                            "service": i.service_name,
                            "instance": i.instance_id,
                            "host": i.host,
                            "grpc_port": i.grpc_port,
                            "http_port": i.http_port,
                            "version": i.version,
                            "environment": i.environment,
                            "status": i.status,
                            "health": i.health,
                            "age_s": round(i.age_seconds(now), 1),
                        }
                        for i in instances
                    ]
                )
            )
            return
        if not instances:
            self.stdout.write(f"no live instances of {service}" if service else "no live instances registered")
            return
        self.stdout.write(
            render_table(
                ["SERVICE", "INSTANCE", "HOST", "GRPC", "HTTP", "VERSION", "ENV", "STATUS", "HEALTH", "AGE_S"],
                [
                    [
                        i.service_name,
                        i.instance_id,
                        i.host,
                        i.grpc_port,
                        i.http_port,
                        i.version,
                        i.environment,
                        i.status,
                        i.health,
                        f"{i.age_seconds(now):.1f}",
                    ]
                    for i in instances
                ],
            )
        )

"""Load a scenario file (YAML; docs/simulation.md): markets' models, accounts and API keys, agents, schedule.

Replay files are looked up next to the scenario file. New API keys go to SCENARIO_KEYS_FILE (or ``--keys-file``),
mode 0600, never to the output. Loading the same file twice creates no second account or key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange import errors
from simulation.apis import yaml_load
from simulation.services import keys_file_write, scenario_load


class Command(BaseCommand):
    help = "Load a scenario file: the current scenario becomes this one (idempotent for accounts and keys)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the scenario's YAML file (see simulation/examples/)")
        parser.add_argument("--keys-file", default=settings.SCENARIO_KEYS_FILE, help="where new API keys go (0600)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            spec = yaml_load(path.read_text(encoding="utf-8"))
            loaded = scenario_load(spec=spec, actor=None, base_dir=path.resolve().parent, confined=False)
        except errors.ExchangeError as exc:
            raise CommandError(f"{exc.code}: {exc.message} {exc.details}") from exc
        if loaded.new_keys:
            keys_file_write(path=options["keys_file"], keys=loaded.new_keys)
            self.stdout.write(f"{len(loaded.new_keys)} new API key(s) written to {options['keys_file']} (mode 0600)")
        scenario = loaded.scenario
        self.stdout.write(
            f"scenario {scenario.name} loaded (seed {scenario.seed}, digest {scenario.digest[:12]}): "
            f"{len(scenario.spec['markets'])} markets, {len(loaded.accounts)} accounts "
            f"({len(loaded.created_accounts)} new), {len(scenario.spec['agents'])} agents, "
            f"{len(scenario.spec['schedule'])} scheduled events"
        )

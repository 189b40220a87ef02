"""Create users, accounts, opening deposits and API keys from a YAML/JSON file or the defaults. Idempotent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.seeding import DEFAULT_SEED, seed
from exchange import errors


class Command(BaseCommand):
    help = "Seed users, accounts and opening deposits (see seed/accounts.example.yaml); safe to run twice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", help="YAML or JSON seed file; defaults to a small demo set")
        parser.add_argument("--keys-file", help="write new API keys here (mode 0600) instead of printing them")

    def handle(self, *args: Any, **options: Any) -> None:
        spec = DEFAULT_SEED
        if options["file"]:
            path = Path(options["file"])
            if not path.is_file():
                raise CommandError(f"no such file: {path}")
            text = path.read_text()
            spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        try:
            keys = seed(spec)
            if spec.get("house"):
                # More house inventory deepens the house's derived ladder: resting orders it now crosses are filled.
                from markets.models import Market
                from orders.services import market_quotes_refresh

                for market in Market.objects.all():
                    market_quotes_refresh(market=market, actor=None, reason="house funded")
        except errors.ExchangeError as exc:
            raise CommandError(f"{exc.code}: {exc.message} {exc.details}") from exc
        lines = [f"{k['username']}\t{k['scopes']}\t{k['key']}" for k in keys]
        if options["keys_file"] and lines:
            fd = os.open(options["keys_file"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            # The mode above applies only to a new file; an existing one keeps its own, so tighten it before writing.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("\n".join(lines) + "\n")
            self.stdout.write(f"{len(lines)} new API key(s) written to {options['keys_file']} (mode 0600)")
        else:
            for line in lines:
                self.stdout.write(f"new API key (shown once): {line}")
        self.stdout.write(f"seeded: {len(spec.get('users') or [])} users; {len(keys)} new API keys")

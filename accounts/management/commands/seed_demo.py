"""Load the demo data set when the database has no accounts yet (run by `serve` on start)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from accounts.models import Account


class Command(BaseCommand):
    help = "Seed the demo data set if no account exists yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keys-file", default=settings.DEMO_API_KEYS_FILE, help="where new demo API keys are written (mode 0600)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if Account.objects.exists():
            self.stdout.write("demo data: database already has accounts; nothing to do")
            return
        call_command("seed_accounts", keys_file=options["keys_file"], stdout=self.stdout)

"""Prove the balance caches equal the ledger and the ledger balances; exit 1 with the discrepancies otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ledger.reconciliation import reconcile


class Command(BaseCommand):
    help = "Reconcile every balance with the journal; non-zero exit and the discrepancies when anything differs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the full report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            checked = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in report.checks.items())
            self.stdout.write(f"checked: {checked}")
            for asset, groups in report.totals.items():
                parts = "  ".join(f"{k}={v}" for k, v in groups.items())
                self.stdout.write(f"  {asset}: {parts}")
            for problem in report.discrepancies:
                self.stdout.write("DISCREPANCY " + " ".join(f"{k}={v}" for k, v in problem.items()))
            failed = f"reconciliation FAILED: {len(report.discrepancies)} discrepancies"
            self.stdout.write("reconciliation OK" if report.ok else failed)
        if not report.ok:
            sys.exit(1)

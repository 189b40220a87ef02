"""Set a market's reference price, or halt / resume it, from the command line (recorded in market history)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange import errors
from markets.models import MarketStatus
from markets.selectors import market_get
from orders.services import market_price_set, market_status_set


class Command(BaseCommand):
    help = "set_price BTC-USD 65000.00 [--reason ...] | set_price BTC-USD --halt | set_price BTC-USD --resume"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol")
        parser.add_argument("price", nargs="?")
        parser.add_argument("--halt", action="store_true")
        parser.add_argument("--resume", action="store_true")
        parser.add_argument("--reason", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["price"] and not options["halt"] and not options["resume"]:
            raise CommandError("give a price, --halt or --resume")
        try:
            market = market_get(symbol=options["symbol"])
            if options["price"]:
                market = market_price_set(
                    market=market, price=options["price"], actor=None, reason=options["reason"] or "set_price command"
                )
            if options["halt"] or options["resume"]:
                status = MarketStatus.HALTED if options["halt"] else MarketStatus.TRADING
                market = market_status_set(
                    market=market, status=status, actor=None, reason=options["reason"] or "set_price command"
                )
        except errors.ExchangeError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(
            f"{market.symbol}: price {market.reference_price.normalize():f} {market.quote_asset_id}, {market.status}"
        )

"""Create an API key for a user and print it once (it is stored hashed and cannot be shown again).

stdout has two lines: the API key, then its signing secret for the Binance-compatible API (``X-MBX-APIKEY`` and
the HMAC secret; stored encrypted, shown only here)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Scope
from accounts.selectors import account_get
from accounts.services import api_key_create
from exchange import errors


class Command(BaseCommand):
    help = (
        "Create an API key: create_api_key --user alice --scopes read,trade [--account ACCOUNT_ID] [--name bot-1] "
        "[--create-user]"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True)
        parser.add_argument("--scopes", default="read", help=f"comma-separated: {', '.join(Scope.values)}")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--account", default="", help="the account the key trades (default: the user's oldest open account)"
        )
        parser.add_argument("--create-user", action="store_true", help="create the user if it does not exist")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            if not options["create_user"]:
                raise CommandError(f"no user {options['user']!r} (use --create-user)")
            user = User.objects.create_user(username=options["user"])
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        account = None
        if options["account"]:
            try:
                account = account_get(account_id=options["account"], user=user, key=None)
            except errors.ExchangeError as exc:
                raise CommandError(f"{exc.message} {exc.details}") from exc
        try:
            key, plain = api_key_create(
                user=user, name=options["name"] or f"{user.username}-key", scopes=scopes, account=account
            )
        except errors.ExchangeError as exc:
            raise CommandError(f"{exc.message} {exc.details}") from exc
        self.stderr.write(
            f"API key {key.prefix} for {user.username} (scopes: {','.join(key.scopes)}); shown once: the key, then "
            "its signing secret"
        )
        self.stdout.write(plain)
        self.stdout.write(key.signing_secret)  # type: ignore[attr-defined]

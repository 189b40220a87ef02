"""CPU and wall time of the pieces of the order path, one at a time, in one process on a throw-away database.

    .venv/bin/python benchmarks/components.py

What each step of a market order costs on a warm process and an idle machine: the reads before the transaction
(API-key authentication, the account and the market: cached per process once seen), input checks, the two
database steps of the book store (``lock_book`` = ``exchange_book_lock``, ``settle`` = ``exchange_settle`` on
PostgreSQL, each timed inside real orders), matching on the locked book, the whole service call and the response
body. It calls a few private helpers of ``orders.services`` (``_liquidity``, ``_terms``) directly; if they are
renamed, adjust this diagnostic, not the service. CPU is this process's (Python, psycopg); wall time adds
PostgreSQL's work and the round trip. The three "inside order_place" rows time each call of the store's two
steps and of the transaction's exit during real orders.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from benchmarks.run import Bench  # noqa: E402


def measure(label: str, call: Callable[[], Any], repeat: int) -> dict[str, Any]:
    for _ in range(20):
        call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        call()
    row = {
        "step": label,
        "cpu_ms": round((time.process_time() - cpu) * 1000 / repeat, 3),
        "wall_ms": round((time.perf_counter() - wall) * 1000 / repeat, 3),
    }
    print(f"{row['cpu_ms']:8.3f} {row['wall_ms']:8.3f}  {label}", flush=True)
    return row


class _Timed:
    """Wraps a method of the book store to add up the CPU and wall time of its calls."""

    def __init__(self, cls: Any, name: str) -> None:
        self.cls, self.name, self.original = cls, name, getattr(cls, name)
        self.calls, self.cpu, self.wall = 0, 0.0, 0.0

    def __enter__(self) -> _Timed:
        timed = self

        def wrapper(store: Any, *args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return timed.original(store, *args, **kwargs)
            finally:
                timed.calls += 1
                timed.cpu += time.process_time() - cpu
                timed.wall += time.perf_counter() - wall

        setattr(self.cls, self.name, wrapper)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.cls, self.name, self.original)

    def row(self, label: str) -> dict[str, Any]:
        row = {
            "step": label,
            "cpu_ms": round(self.cpu * 1000 / self.calls, 3),
            "wall_ms": round(self.wall * 1000 / self.calls, 3),
        }
        print(f"{row['cpu_ms']:8.3f} {row['wall_ms']:8.3f}  {label}", flush=True)
        return row


def run(seeded: dict[str, Any], repeat: int) -> None:
    from django.db import connection, transaction
    from rest_framework.test import APIRequestFactory

    from accounts import selectors as account_selectors
    from accounts.authentication import ApiKeyAuthentication
    from accounts.models import Account
    from markets import selectors as market_selectors
    from orders import services
    from orders.matching import Incoming, match_incoming
    from orders.rendering import order_json
    from orders.store import book_store

    client = seeded["clients"][0]
    account = Account.objects.select_related("owner").get(account_id=client["account_id"])
    market = market_selectors.market_get(symbol="BTC-USD")
    store = book_store()
    rng = random.Random(3)

    def request(side: str | None = None) -> Any:
        return services.OrderRequest(
            account=account,
            market=market,
            side=side or rng.choice(["buy", "sell"]),
            order_type="market",
            quantity=Decimal("0.001"),
        )

    def place() -> Any:
        return services.order_place(request=request(), actor=account.owner)

    def lock_book() -> Any:
        with transaction.atomic():
            return store.lock_book(market_pk=market.pk, account_pk=account.pk, key_id=None, side="sell", limit=None)

    book = lock_book()
    incoming = Incoming(
        account_pk=account.pk,
        side="buy",
        order_type="market",
        price=None,
        quantity=Decimal("0.001"),
        quote_quantity=None,
        time_in_force="",
        post_only=False,
        self_trade_prevention="expire_taker",
        taker_fee_bps=Decimal(10),
        maker_fee_bps=Decimal(5),
    )
    auth = ApiKeyAuthentication()
    http_request = APIRequestFactory().post("/api/v1/orders", HTTP_AUTHORIZATION=f"Api-Key {client['key']}")
    placed, _ = place()

    print(f"{'cpu ms':>8} {'wall ms':>8}  step (average of {repeat})")
    steps = [
        ("API-key authentication (ApiKeyAuthentication.authenticate)", lambda: auth.authenticate(http_request)),
        (
            "account_for_trading (cached per process)",
            lambda: account_selectors.account_for_trading(account_id=client["account_id"], user=account.owner),
        ),
        ("market_for_trading (cached per process)", lambda: market_selectors.market_for_trading(symbol="BTC-USD")),
        ("order_request_validate (no query)", lambda: services.order_request_validate(request=request("buy"))),
        ("BEGIN + exchange_book_lock + COMMIT (lock_book alone)", lock_book),
        (
            "matching on the locked book: house ladder + match_incoming (no query)",
            lambda: match_incoming(
                incoming, services._liquidity(book, side="sell", limit=None), services._terms(book.market)
            ),
        ),
        ("BEGIN + SELECT 1 + COMMIT (an empty transaction)", lambda: _empty_transaction(connection, transaction)),
        ("order_place, the whole service call (no HTTP)", place),
        ("order_json(order, fills) (the response body)", lambda: order_json(placed.order, placed.fills)),
    ]
    for label, call in steps:
        measure(label, call, repeat)
    store_cls = type(store)
    with (
        _Timed(store_cls, "lock_book") as lock,
        _Timed(store_cls, "settle") as settle,
        _Timed(transaction.Atomic, "__exit__") as commit,
    ):
        for _ in range(repeat):
            place()
    lock.row(f"{store_cls.__name__}.lock_book inside order_place")
    settle.row(f"{store_cls.__name__}.settle inside order_place")
    commit.row("COMMIT inside order_place (Atomic.__exit__: the deferred balance and foreign-key checks)")


def _empty_transaction(connection: Any, transaction: Any) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    bench = Bench(
        argparse.Namespace(
            clients=1,
            sql_clients=1,
            postgres=args.postgres,
            keep_db=False,
            workers=None,
            threads=None,
        )
    )
    try:
        bench.create_database()
        seeded = bench.seed()
        os.environ.update(bench.env)
        import django

        django.setup()
        run(seeded, args.repeat)
    finally:
        bench.cleanup(keep_logs=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

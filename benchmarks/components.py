"""CPU and wall time of the pieces of the order path, one at a time, in one process on a throw-away database.

    .venv/bin/python benchmarks/components.py

The numbers behind the proposals in docs/benchmarks.md: what each step of an order costs in CPU on its own, on a
warm process and an idle machine. It calls a few private helpers of ``orders.services`` (``_price``,
``_customer_legs``, ``_house_legs``) directly; if they are renamed, adjust this diagnostic, not the service.
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


def run(seeded: dict[str, Any], repeat: int) -> None:
    import uuid

    from django.db import connection

    from accounts import selectors as account_selectors
    from accounts.models import Account, ApiKey
    from markets.models import Market
    from orders import selectors as order_selectors
    from orders import services
    from orders.models import Order, OrderStatus
    from orders.serializers import OrderOut

    client = seeded["clients"][0]
    account = Account.objects.select_related("owner").get(account_id=client["account_id"])
    market = Market.objects.get(symbol="BTC-USD")
    request = services.OrderRequest(
        account=account, market=market, side="buy", order_type="market", quantity=Decimal("0.001"), quote_quantity=None
    )
    fill, _, _ = services._price(request)
    prefix = client["key"].split(".")[0]
    rng = random.Random(3)
    order, _ = services.order_place(request=request, actor=account.owner)

    def place() -> None:
        services.order_place(
            request=services.OrderRequest(
                account=account,
                market=market,
                side=rng.choice(["buy", "sell"]),
                order_type="market",
                quantity=Decimal("0.001"),
                quote_quantity=None,
            ),
            actor=account.owner,
        )

    def order_save() -> None:
        # An order row as _place writes it; simple_history adds its history row in a post_save signal.
        Order(
            order_id=uuid.uuid4(),
            account=account,
            market=market,
            side="buy",
            order_type="market",
            status=OrderStatus.REJECTED,
            quantity=Decimal("0.001"),
            reject_reason="benchmark",
        ).save()

    print(f"{'cpu ms':>8} {'wall ms':>8}  step (average of {repeat})")
    steps = [
        (
            "API-key lookup (ApiKey + user, as the authentication does)",
            lambda: ApiKey.objects.select_related("user").filter(prefix=prefix, revoked=False).first(),
        ),
        (
            "account_get",
            lambda: account_selectors.account_get(account_id=client["account_id"], user=account.owner, key=None),
        ),
        ("market_get", lambda: order_selectors.market_get(symbol="BTC-USD")),
        ("_price (no query)", lambda: services._price(request)),
        (
            "_customer_legs (cached per process)",
            lambda: services._customer_legs(account=account, market=market, fill=fill),
        ),
        ("_house_legs (1 query, 32 rows)", lambda: services._house_legs(market=market, fill=fill)),
        ("Order(...).save() with its history row", order_save),
        ("SELECT 1 (the per-request connection health check)", lambda: connection.cursor().execute("SELECT 1")),
        ("order_place, whole service call (no HTTP)", place),
        ("OrderOut(order).data (the response body)", lambda: OrderOut(order).data),
    ]
    for label, call in steps:
        measure(label, call, repeat)


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

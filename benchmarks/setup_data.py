"""Seed the benchmark database through the services, and record what one order costs in SQL.

Run by ``benchmarks/run.py`` as a subprocess with ``DJANGO_SETTINGS_MODULE=benchmarks.bench_settings`` and the
benchmark's ``DATABASE_URL``; writes one JSON object to ``--out`` (stdout carries the service's log lines):

* ``clients``: one user, trade API key and funded account per HTTP client (no two clients share a balance row,
  so the load measures the service, not contention between customers);
* ``sql_accounts``: funded accounts for the plain-SQL baseline (separate, so ``reconcile`` checks its writes too);
* ``probe``: the SQL statements of one order and of one trivial request, and the CPU time each kind of request
  costs, measured in-process with Django's test client (see ``_probe``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Enough for thousands of small orders per client in either direction, and a house far deeper than any run needs.
CLIENT_DEPOSITS = {"USD": "1000000", "USDT": "1000000", "BTC": "20", "ETH": "400"}
HOUSE_LIQUIDITY = {"BTC": "2000", "ETH": "40000", "USD": "200000000", "USDT": "200000000"}


def _seed(*, clients: int, sql_accounts: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from accounts.services import account_create, api_key_create, deposit_create, house_fund

    User = get_user_model()
    for asset, amount in HOUSE_LIQUIDITY.items():
        house_fund(asset=asset, amount=amount, reason="benchmark: house liquidity")
    out: dict[str, Any] = {"clients": [], "sql_accounts": []}
    for role, count in (("client", clients), ("sql", sql_accounts)):
        for i in range(count):
            with transaction.atomic():
                user = User.objects.create(username=f"bench-{role}-{i}")
                account = account_create(owner=user, label="bench")
                for asset, amount in CLIENT_DEPOSITS.items():
                    deposit_create(
                        account=account, asset=asset, amount=amount, actor=None, reason="benchmark: opening deposit"
                    )
                if role == "client":
                    _key, plain = api_key_create(user=user, name="bench", scopes=["trade"])
                    out["clients"].append({"key": plain, "account_id": str(account.account_id)})
                else:
                    out["sql_accounts"].append(account.pk)
    return out


def _probe(client_spec: dict[str, str], repeat: int) -> dict[str, Any]:
    """Requests placed in-process with Django's test client, on a warm process and an idle machine:

    * the SQL of one order and of one trivial request (the second of each; the first warms per-process caches);
    * the CPU time per request (``time.process_time``, averaged over ``repeat`` requests) of the liveness check,
      the trivial authenticated view and an order: the budget that bounds throughput on two cores.
    """
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from benchmarks.workload import random_order

    http = Client(HTTP_AUTHORIZATION=f"Api-Key {client_spec['key']}")
    rng = random.Random(7)

    def order_body() -> dict[str, str]:
        symbol, side, quantity = random_order(rng)
        return {
            "account_id": client_spec["account_id"],
            "symbol": symbol,
            "side": side,
            "order_type": "market",
            "quantity": f"{quantity:f}",
        }

    result: dict[str, Any] = {}
    # A fixed order for the SQL listing (an ETH-BTC order adds one lookup: its notional is valued in USD).
    fixed = {**order_body(), "symbol": "BTC-USD", "side": "buy", "quantity": "0.0001"}
    for name, url in (("order", "/api/v1/orders"), ("trivial", "/bench/echo")):
        for _ in range(2):
            with CaptureQueriesContext(connection) as captured:
                response = http.post(url, fixed, content_type="application/json")
            if response.status_code != 201:
                raise SystemExit(f"probe {name}: HTTP {response.status_code} {response.content[:300]!r}")
        result[name] = {
            "queries": len(captured.captured_queries),
            "statements": [q["sql"][:160] for q in captured.captured_queries],
        }
    requests = {
        "health (GET, no auth, no query)": lambda: http.get("/api/v1/health"),
        "trivial (POST, API key, 1 query)": lambda: http.post(
            "/bench/echo", order_body(), content_type="application/json"
        ),
        "order (POST /api/v1/orders)": lambda: http.post(
            "/api/v1/orders", order_body(), content_type="application/json"
        ),
    }
    cpu: dict[str, float] = {}
    for name, call in requests.items():
        for _ in range(10):
            call()
        started = time.process_time()
        for _ in range(repeat):
            call()
        cpu[name] = round((time.process_time() - started) * 1000 / repeat, 2)
    result["cpu_ms_per_request"] = cpu
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--sql-accounts", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--probe-repeat", type=int, default=150)
    args = parser.parse_args()

    import django

    django.setup()
    seeded = _seed(clients=args.clients, sql_accounts=args.sql_accounts)
    seeded["probe"] = _probe(seeded["clients"][0], repeat=args.probe_repeat)
    args.out.write_text(json.dumps(seeded))


if __name__ == "__main__":
    main()

"""One client, one subscriber: how long after its order's HTTP answer does the ``order`` event arrive?

    KEY=$(awk '$1=="demo-trader"{print $3}' api-keys.txt)
    .venv/bin/python benchmarks/stream_latency.py --base-url http://127.0.0.1:8080 --key "$KEY"

Against a running service (``make run``: demo data, the demo trader's key). The answer comes after the commit, so
the figures are a lower bound of the latency after commit (run benchmarks/streams.py for the upper bound under load).
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx
from httpx_sse import connect_sse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--key", required=True)
    parser.add_argument("--orders", type=int, default=40)
    args = parser.parse_args()
    api = f"{args.base_url}/api/v1"
    arrived: dict[str, float] = {}

    def read() -> None:
        headers = {"Authorization": f"Api-Key {args.key}"}
        with (
            httpx.Client(timeout=None) as http,
            connect_sse(http, "GET", f"{api}/stream/orders", headers=headers) as es,
        ):
            for event in es.iter_sse():
                if event.event == "order":
                    arrived[json.loads(event.data)["order_id"]] = time.time()

    threading.Thread(target=read, daemon=True).start()
    time.sleep(1)
    answered: dict[str, float] = {}
    with httpx.Client(headers={"Authorization": f"Api-Key {args.key}"}, timeout=30) as http:
        account = http.get(f"{api}/accounts").json()["accounts"][0]["account_id"]
        for i in range(args.orders):
            body = {
                "account_id": account,
                "symbol": "BTC-USD",
                "side": "buy" if i % 2 else "sell",
                "order_type": "market",
                "quantity": "0.001",
            }
            answered[http.post(f"{api}/orders", json=body).json()["order_id"]] = time.time()
            time.sleep(0.05)
    time.sleep(1)
    delays = sorted((arrived[o] - t) * 1000 for o, t in answered.items() if o in arrived)
    print(
        json.dumps(
            {
                "orders": len(answered),
                "events": len(delays),
                "ms_after_answer": {
                    "p50": round(delays[len(delays) // 2], 1),
                    "p90": round(delays[int(len(delays) * 0.9)], 1),
                    "max": round(delays[-1], 1),
                }
                if delays
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Write btc-usd-sample.csv, the replay file shipped with the project: ten minutes of BTC-USD at one row per second
from the project's own seeded model (a calm GBM, then a dip and a partial recovery), with a made-up volume column.
Nothing in it is downloaded or recorded from a real venue.

    python simulation/examples/make_sample.py    # rewrites the file; the same seed gives the same bytes
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from simulation.paths import ModelParams, PricePath

OUT = Path(__file__).resolve().parent / "btc-usd-sample.csv"
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def main() -> None:
    path = PricePath(
        params=ModelParams(kind="gbm", volatility=0.9, jump_rate=20.0, jump_size=0.002),
        start=Decimal("65000.00"),
        tick=Decimal("0.01"),
        interval_s=1.0,
        seed="btc-usd-sample",
        shocks={240: -1.5, 300: 0.6},
    )
    volumes = random.Random("btc-usd-sample:volume")
    lines = ["timestamp,price,volume"]
    for second in range(600):
        price = path.price() if second == 0 else path.next()
        volume = Decimal(repr(round(volumes.lognormvariate(-2.5, 0.8), 5)))
        moment = (START + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")
        lines.append(f"{moment},{price},{volume}")
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""A bounded load test of the streams: the benchmark's phases (benchmarks/streams.py) with few clients and
subscribers for a few seconds, asserting only what does not depend on the machine's speed: every subscriber got
every event it was entitled to, none twice, in order. Rates and latencies are the benchmark's (docs/benchmarks.md),
never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.processes import ROOT
from tests.support.services import require_postgres

pytestmark = pytest.mark.slow


def test_every_subscriber_gets_every_event_it_is_entitled_to_once_while_clients_trade(tmp_path: Path) -> None:
    url = urlsplit(require_postgres())
    server = f"{url.scheme}://{url.netloc}"
    output = tmp_path / "streams.json"
    run = subprocess.run(
        [
            sys.executable,
            "benchmarks/streams.py",
            "--clients",
            "4",
            "--subscribers",
            "48",
            "--seconds",
            "4",
            "--warmup",
            "1",
            "--rounds",
            "1",
            "--postgres",
            server,
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(output.read_text())["streams"]
    assert result["opened"] == [48] and result["subscribers"] == 48
    assert result["events_delivered"] > 0
    assert result["subscribers_complete"] == "48 of 48", result["problems"]
    assert result["missing"] == 0 and result["duplicated"] == 0 and result["out_of_order_streams"] == 0

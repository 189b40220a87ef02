"""The risk monitor in the background: ``manage.py risk_monitor`` recomputes the gauges and alerts every interval
whether or not anyone reads the summary, logs each alert once when it starts and once when it ends, and stops
cleanly on SIGTERM; ``serve`` runs it as a supervised child."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from accounts.services import house_fund
from risk.monitoring import AlertLog
from tests.support.commands import child_env
from tests.support.processes import ROOT, ServiceProcess
from tests.support.services import database_url, require_postgres

LOW = {"alert": "house_inventory_low", "asset": "BTC", "value": "5200000.00", "threshold": "6000000"}
REJECTIONS = {"alert": "rejection_rate_high", "asset": None, "value": "3", "threshold": "2"}


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == name]


def test_an_alert_is_logged_once_when_it_starts_and_once_when_it_ends(caplog):
    caplog.set_level(logging.INFO)
    log = AlertLog()

    assert log.update([LOW]) == ([LOW], [])
    assert log.update([LOW]) == ([], [])
    assert log.update([LOW, REJECTIONS]) == ([REJECTIONS], [])
    assert log.update([REJECTIONS]) == ([], [LOW])
    assert log.update([]) == ([], [REJECTIONS])
    assert log.update([]) == ([], [])

    started = events(caplog, "risk_alert_started")
    assert [(e["alert"], e["asset"]) for e in started] == [
        ("house_inventory_low", "BTC"),
        ("rejection_rate_high", None),
    ]
    assert started[0]["value"] == "5200000.00" and started[0]["threshold"] == "6000000"
    ended = events(caplog, "risk_alert_ended")
    assert [(e["alert"], e["asset"]) for e in ended] == [("house_inventory_low", "BTC"), ("rejection_rate_high", None)]
    assert {r.levelname for r in caplog.records if r.msg in started} == {"WARNING"}


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _wait_for(path: Path, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _lines(path)
        if predicate(lines):
            return lines
        time.sleep(0.1)
    raise AssertionError(f"timed out; output:\n{path.read_text(errors='replace')[-3000:]}")


def _named(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("message") == name]


def test_risk_monitor_logs_transitions_once_across_rounds_and_stops_on_sigterm(transactional_db, tmp_path):
    """The command runs against this test's own database (committed data: transactional_db), every 0.2 s."""
    require_postgres()
    house_fund(asset="BTC", amount="80", actor=None)  # 80 x 65,000 = 5,200,000 USD: below 6,000,000
    for asset, amount in {"ETH": "2000", "USD": "8000000", "USDT": "8000000"}.items():
        house_fund(asset=asset, amount=amount, actor=None)
    name = connection.settings_dict["NAME"]
    out = tmp_path / "risk_monitor.log"
    env = child_env(
        {
            "DATABASE_URL": database_url().rsplit("/", 1)[0] + f"/{name}",
            "RISK_HOUSE_INVENTORY_LOW_USD": "6000000",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        },
        settings_module="exchange.settings.local",
    )
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "risk_monitor", "--interval", "0.2"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            # Several rounds with the alert holding: logged once.
            _wait_for(out, lambda lines: len(_named(lines, "risk_alert_started")) >= 1)
            time.sleep(1.0)
            [started] = _named(_lines(out), "risk_alert_started")
            assert (started["alert"], started["asset"], started["level"]) == ("house_inventory_low", "BTC", "warning")
            assert started["value"] == "5200000.00"

            house_fund(asset="BTC", amount="20", actor=None)  # 100 BTC = 6,500,000: the alert ends
            _wait_for(out, lambda lines: len(_named(lines, "risk_alert_ended")) >= 1)
            time.sleep(1.0)
            lines = _lines(out)
            assert len(_named(lines, "risk_alert_ended")) == 1
            assert len(_named(lines, "risk_alert_started")) == 1

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert _named(_lines(out), "risk_monitor_stopped")


@pytest.mark.slow
def test_serve_runs_the_risk_monitor_so_gauges_are_fresh_without_a_reader(migrated_service_database_url, tmp_path):
    service = ServiceProcess(
        database_url=migrated_service_database_url,
        log_dir=tmp_path,
        env={"RISK_MONITOR_INTERVAL": "0.5s", "RISK_HOUSE_INVENTORY_LOW_USD": "10000000", "CONFIG_SERVICE_URL": ""},
    )
    try:
        service.start()
        # The demo data funds the house with 100 BTC (6.5 M USD), below the 10 M threshold: the monitor alerts.
        _wait_for(service.log_path, lambda lines: _named(lines, "risk_alert_started"), timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            metrics = httpx.get(f"{service.base_url}/metrics").text
            if 'exchange_risk_alert{alert="house_inventory_low",asset="BTC"} 1.0' in metrics:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(metrics[-3000:])
        assert 'exchange_house_inventory{asset="BTC"} 100.0' in metrics
        assert service.terminate() == 0
    finally:
        service.stop()
    lines = _lines(service.log_path)
    assert _named(lines, "risk_monitor_started") and _named(lines, "risk_monitor_stopped")
    assert not _named(lines, "child_process_exited")

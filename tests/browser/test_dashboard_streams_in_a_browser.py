"""The dashboard's browser code path, in a real browser (Debian's headless Chromium through Selenium): a page served
from another origin gets a stream token (a preflighted POST with an API key), opens an ``EventSource`` on
``/api/v1/stream/orders`` with it and the number format, fetches ``/api/v1/positions`` with ``Content-Type:
application/json`` (preflighted, as the dashboard sends it) and the number format, and sees an order placed
meanwhile arrive as an ``order`` event whose amounts are JavaScript numbers.

Skipped with the reason when chromium or chromedriver is missing; failed instead in CI (REQUIRE_SERVICES).
"""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_admin_in_a_browser import CHROME_FLAGS, CHROMEDRIVER, CHROMIUM
from tests.support.processes import ServiceProcess, free_port
from tests.support.services import scratch_database_url, service_missing

pytestmark = pytest.mark.slow

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dashboard</title></head><body><pre id="log"></pre>
<script>
const base = "%(base)s/api/v1";
const key = "%(key)s";
const json = {"Authorization": "Api-Key " + key, "Content-Type": "application/json"};
window.seen = {orders: null, order: [], positions: null, errors: [], open: false};
fetch(base + "/stream/token", {method: "POST", headers: json})
  .then(r => r.json())
  .then(t => {
    const es = new EventSource(base + "/stream/orders?amounts=number&token=" + encodeURIComponent(t.token));
    es.onopen = () => { window.seen.open = true; };
    es.addEventListener("orders", e => { window.seen.orders = JSON.parse(e.data); });
    es.addEventListener("order", e => {
      const order = JSON.parse(e.data);
      window.seen.order.push(order);
      document.getElementById("log").textContent += order.order_id + " " + order.quantity.toFixed(4) + "\\n";
    });
    return fetch(base + "/positions?amounts=number", {headers: json});
  })
  .then(r => r.json())
  .then(p => { window.seen.positions = p; })
  .catch(e => window.seen.errors.push(String(e)));
</script></body></html>
"""


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static web server on another port: another origin, as the dashboard's is."""
    root = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, page_server: tuple[str, Path]) -> Iterator[ServiceProcess]:
    origin, _root = page_server
    log_dir = tmp_path_factory.mktemp("dashboard-service")
    with scratch_database_url(tmp_path_factory, migrated=True) as database_url:
        process = ServiceProcess(
            database_url=database_url,
            log_dir=log_dir,
            workers=2,
            env={"CONFIG_SERVICE_URL": "", "RISK_MONITOR_INTERVAL": "0", "CORS_ALLOWED_ORIGINS": origin},
        )
        try:
            process.start(timeout=180)  # a fresh database is migrated first; slow on a busy machine
            yield process
        finally:
            process.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        service_missing(
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _keys(service: ServiceProcess) -> dict[str, str]:
    lines = Path(service.env["DEMO_API_KEYS_FILE"]).read_text().splitlines()
    return {line.split("\t")[0]: line.split("\t")[2] for line in lines}


def _until(browser: Any, script: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {script!r}: {browser.execute_script('return window.seen')}")


# The service before the browser: fixtures end in reverse order, so the browser (whose EventSource would reconnect
# to a stopping service and hold its graceful shutdown up for gunicorn's whole timeout) quits first.
def test_a_page_from_another_origin_streams_orders_and_reads_positions_as_numbers(service, browser, page_server):
    origin, root = page_server
    key = _keys(service)["demo-trader"]
    (root / "index.html").write_text(PAGE % {"base": service.base_url, "key": key})
    browser.get(f"{origin}/index.html")
    _until(browser, "return window.seen.open && window.seen.orders !== null && window.seen.positions !== null")
    seen = browser.execute_script("return window.seen")
    assert seen["errors"] == []
    assert "orders" in seen["orders"]
    positions = seen["positions"]["positions"]
    assert positions, seen["positions"]  # the demo trader holds BTC and ETH
    assert browser.execute_script(
        "return window.seen.positions.positions.every(p => typeof p.quantity === 'number' "
        "&& typeof p.entry_price === 'number' && typeof p.position_id === 'string')"
    )

    with httpx.Client(base_url=f"{service.base_url}/api/v1", headers={"Authorization": f"Api-Key {key}"}) as api:
        [account, *_] = api.get("/accounts").json()["accounts"]
        placed = api.post(
            "/orders",
            json={
                "account_id": account["account_id"],
                "symbol": "BTC-USD",
                "side": "buy",
                "order_type": "market",
                "quantity": "0.01",
            },
        )
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["order_id"]
    _until(browser, f"return window.seen.order.some(o => o.order_id === '{order_id}')")
    assert browser.execute_script(
        f"const o = window.seen.order.find(o => o.order_id === '{order_id}');"
        "return typeof o.quantity === 'number' && o.quantity === 0.01 && typeof o.average_price === 'number'"
        " && o.status === 'filled'"
    )
    assert f"{order_id} 0.0100" in browser.find_element("id", "log").text  # Number.toFixed, as the dashboard does

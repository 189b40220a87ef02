"""The admin in a real browser (Debian's headless Chromium driven by Selenium through chromium-driver), against the
real service (``manage.py serve``: gunicorn, WhiteNoise) on a fresh database with the demo data:

an operator logs in, deposits into the demo trader's account through the account page, submits the confirmation
again (Back and submit, and a double click) and the deposit is recorded once; the dashboard shows the figures the
API reports after a trade; the docs pages load nothing from anywhere but the service. Screenshots of the account
page and the dashboard go to SCREENSHOT_DIR (default ``artifacts/screenshots``, git-ignored).

Skipped with the reason when chromium or chromedriver is missing; failed instead in CI (REQUIRE_SERVICES).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ROOT, ServiceProcess
from tests.support.services import service_missing

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "artifacts" / "screenshots"))
OPERATOR = ("ops-admin", "a-long-test-password-42")
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    from tests.support.services import scratch_database_url

    log_dir = tmp_path_factory.mktemp("browser-service")
    with scratch_database_url(tmp_path_factory, migrated=True) as database_url:
        process = ServiceProcess(
            database_url=database_url,
            log_dir=log_dir,
            workers=2,
            env={"CONFIG_SERVICE_URL": "", "RISK_MONITOR_INTERVAL": "0"},
        )
        try:
            process.start()
            created = subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "createsuperuser",
                    "--noinput",
                    "--username",
                    OPERATOR[0],
                    "--email",
                    "ops@example.test",
                ],
                cwd=ROOT,
                env={**process.env, "DJANGO_SUPERUSER_PASSWORD": OPERATOR[1], "LOG_LEVEL": "WARNING"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert created.returncode == 0, created.stdout + created.stderr
            yield process
        finally:
            process.stop()


def _keys(service: ServiceProcess) -> dict[str, str]:
    lines = Path(service.env["DEMO_API_KEYS_FILE"]).read_text().splitlines()
    return {line.split("\t")[0]: line.split("\t")[2] for line in lines}


def _api(service: ServiceProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{service.base_url}/api/v1", headers={"Authorization": f"Api-Key {key}"})


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
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def _click(driver: Any, element: Any) -> None:
    """Click and wait for the next page (a click returns before the browser has navigated)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element("tag name", "html")
    element.click()
    WebDriverWait(driver, 20).until(expected_conditions.staleness_of(page))


def _screenshot(driver: Any, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    # The whole page, not only the window.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(1000, min(int(height) + 100, 4000)))
    assert driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def _log_in(driver: Any, service: ServiceProcess) -> None:
    driver.get(f"{service.base_url}/admin/login/")
    _by_id(driver, "id_username").send_keys(OPERATOR[0])
    _by_id(driver, "id_password").send_keys(OPERATOR[1])
    _click(driver, driver.find_element("css selector", "input[type=submit]"))
    assert "Run the exchange" in driver.page_source


def _deposits_of(api: httpx.Client, account_id: str, amount: str) -> int:
    lines = api.get(f"/accounts/{account_id}/transactions", params={"kind": "deposit"}).json()["transactions"]
    return sum(1 for line in lines if line["amount"] == amount)


def test_an_operator_deposits_once_however_often_the_form_is_sent_and_sees_it_on_the_dashboard(service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    keys = _keys(service)
    ops, trader = _api(service, keys["operator"]), _api(service, keys["demo-trader"])
    account_id = trader.get("/accounts").json()["accounts"][0]["account_id"]
    _log_in(browser, service)

    # The account page, found by its public id.
    browser.get(f"{service.base_url}/admin/accounts/account/?q={account_id}")
    _click(browser, browser.find_element(By.LINK_TEXT, account_id))
    assert f"Account {account_id}" in browser.page_source
    # The admin is styled: its stylesheet came from the service (WhiteNoise under gunicorn).
    assert browser.execute_script(
        "return [...document.styleSheets].some("
        "s => (s.href || '').endsWith('/static/admin/css/base.css') && s.cssRules.length > 0)"
    )

    _click(browser, browser.find_element(By.CSS_SELECTOR, "a.exchange-action-link[href$='/deposit/']"))
    Select(_by_id(browser, "id_asset")).select_by_value("USD")
    _by_id(browser, "id_amount").send_keys("1234.56")
    _by_id(browser, "id_reason").send_keys("wire 4711")
    _click(browser, _by_id(browser, "review-button"))
    assert "Please confirm: deposit" in browser.page_source
    confirmation_url = browser.current_url
    # A double click on the confirmation: two submissions of the same form at once.
    statuses = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const form = document.getElementById('action-form');
        const send = () => {
            const data = new FormData(form);
            data.append('confirm', '1');
            return fetch(form.action || location.href, {method: 'POST', body: data, redirect: 'manual'});
        };
        Promise.all([send(), send()]).then(rs => done(rs.map(r => r.type + ':' + r.status)));
        """
    )
    assert len(statuses) == 2, statuses
    _click(browser, _by_id(browser, "confirm-button"))  # and the button itself
    assert "Already done" in browser.page_source, browser.find_element(By.ID, "content").text
    # Back to the confirmation page and submit it again.
    browser.back()
    if "confirm-button" not in browser.page_source:  # Chromium keeps no POST's page: it sends the POST again
        browser.refresh()
    assert browser.current_url == confirmation_url, browser.page_source[:500]
    _click(browser, _by_id(browser, "confirm-button"))
    assert "Already done" in browser.page_source
    assert _deposits_of(ops, account_id, "1234.56") == 1

    balances = {b["asset"]: b for b in trader.get(f"/accounts/{account_id}/balances").json()["balances"]}
    assert balances["USD"]["available"] == "101234.56"  # the demo trader's 100,000 + 1,234.56
    browser.get(f"{service.base_url}/admin/accounts/account/?q={account_id}")
    _click(browser, browser.find_element(By.LINK_TEXT, account_id))
    assert "101,234.56 USD" in browser.page_source
    assert _screenshot(browser, "account").stat().st_size > 10_000

    # A trade, then the dashboard shows the same figures as the API.
    order = trader.post(
        "/orders",
        json={"account_id": account_id, "symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "0.1"},
    )
    assert order.status_code == 201, order.text
    rejected = trader.post(
        "/orders",
        json={"account_id": account_id, "symbol": "BTC-USD", "side": "buy", "order_type": "market", "quantity": "10"},
    )
    assert rejected.status_code == 422
    summary = ops.get("/risk/summary").json()
    browser.get(f"{service.base_url}/admin/dashboard/")
    for cell, total in (
        ("total-liabilities", "customer_liabilities_usd"),
        ("total-fees", "fees_earned_usd"),
        ("total-inventory", "house_inventory_usd"),
    ):
        assert _by_id(browser, cell).text == summary["totals"][total], cell
    assert Decimal(summary["totals"]["fees_earned_usd"]) > 0
    assert "2 orders in the last hour, 1 rejected" in _by_id(browser, "flow-totals").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#order-flow-chart rect.orders")) == 1
    assert "insufficient_balance 1" in _by_id(browser, "rejections").text
    _click(browser, _by_id(browser, "run-reconciliation"))
    assert "the books reconcile" in _by_id(browser, "reconciliation").text
    assert _screenshot(browser, "dashboard").stat().st_size > 10_000


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_everything_from_the_service(service, browser, page):
    browser.get_log("performance")  # drop what earlier pages requested
    browser.get(f"{service.base_url}{page}")
    deadline = time.monotonic() + 15
    rendered = False
    while time.monotonic() < deadline and not rendered:
        rendered = browser.execute_script(
            "return !!document.querySelector('.swagger-ui .info, .api-info, [data-role=\"redoc-description\"], h1')"
        )
        time.sleep(0.2)
    assert rendered, browser.page_source[:2000]
    requested, blocked = {}, set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            requested[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked.add(params["requestId"])  # stopped in the browser (the page's Content-Security-Policy)
    assert requested, "no request was seen"
    sent = {url for request_id, url in requested.items() if request_id not in blocked}
    assert {url for url in sent if not url.startswith((service.base_url, "data:", "blob:"))} == set()
    assert f"{service.base_url}/api/schema/" in sent

"""Scenario files set the venue up, idempotently for accounts and keys; the schedule halts, resumes and shocks; the
API loads them and says what runs; a reset brings an account back to known balances through the journal."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import Account, ApiKey
from ledger.models import EntryKind, JournalEntry
from ledger.reconciliation import reconcile
from markets.models import Market
from orders.models import Order
from orders.services import OrderRequest, order_place
from simulation.engine import PriceEngine
from simulation.models import MarketSimulation, Scenario
from simulation.replay import EXAMPLES_DIR
from tests.factories import make_account
from tests.helpers import balances_of

pytestmark = pytest.mark.django_db

CALM = EXAMPLES_DIR / "calm-market.yaml"
CRASH = EXAMPLES_DIR / "flash-crash.yaml"


def load(path, keys_file) -> None:
    call_command("load_scenario", str(path), keys_file=str(keys_file), stdout=open(os.devnull, "w"))


def test_loading_a_scenario_twice_creates_its_accounts_and_keys_once(tmp_path, house):
    keys = tmp_path / "keys.txt"
    load(CALM, keys)
    account = Account.objects.get(label="strategy-arbitrage", owner__username="strategy-arbitrage")
    assert {a: b[0] for a, b in balances_of(account).items() if b[0]} == {
        "USD": D("100000"),
        "USDT": D("100000"),
        "BTC": D("1"),
        "ETH": D("10"),
    }
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    [line] = keys.read_text().splitlines()
    username, name, account_id, scopes, key = line.split("\t")
    assert (username, name, account_id, scopes) == (
        "strategy-arbitrage",
        "strategy-arbitrage",
        str(account.account_id),
        "read,trade",
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get(f"/api/v1/accounts/{account_id}").json()["label"] == "strategy-arbitrage"  # the key works
    entries = JournalEntry.objects.count()

    keys.unlink()
    load(CALM, keys)
    assert Account.objects.filter(label="strategy-arbitrage").count() == 1
    assert ApiKey.objects.filter(user__username="strategy-arbitrage", revoked=False).count() == 1
    assert JournalEntry.objects.count() == entries  # no second deposit
    assert not keys.exists()  # no new key, nothing written
    assert Scenario.objects.filter(current=True).count() == 1
    sims = dict(MarketSimulation.objects.values_list("market__symbol", "kind"))
    assert sims == {
        "BTC-USD": "gbm",
        "ETH-USD": "ou",
        "BTC-USDT": "derived",
        "ETH-USDT": "derived",
        "ETH-BTC": "derived",
    }
    btc = MarketSimulation.objects.get(market__symbol="BTC-USD")
    assert (btc.interval_ms, btc.seed, btc.params, btc.lower_bound) == (
        500,
        "42:BTC-USD",
        {"drift": "0", "volatility": "0.4"},
        D("30000"),
    )
    assert Market.objects.get(symbol="BTC-USD").spread_bps == D("10")
    assert reconcile().ok


def test_the_flash_crash_schedule_shocks_halts_and_resumes(tmp_path, house):
    load(CRASH, tmp_path / "keys.txt")
    scenario = Scenario.objects.get(current=True)
    btc = MarketSimulation.objects.get(market__symbol="BTC-USD")
    assert btc.shocks == [{"at": "30.0", "percent": "-20"}]
    assert MarketSimulation.objects.get(market__symbol="ETH-USDT").kind == "fixed"  # not named: fixed

    class Clock:
        now = scenario.loaded_at

        def __call__(self):
            return self.now

    clock = Clock()
    engine = PriceEngine(clock=clock)
    engine.reload()
    prices = {}
    for second in (29.75, 30.0, 46.0, 61.0):
        clock.now = scenario.loaded_at + timedelta(seconds=second)
        for driver in engine.drivers:
            driver.next_due = 0.0
        engine.round()
        market = Market.objects.get(symbol="BTC-USD")
        prices[second] = (market.reference_price, market.status)
    assert prices[30.0][0] / prices[29.75][0] == pytest.approx(D("0.8"), abs=D("0.02"))  # the shock, one tick
    assert prices[46.0][1] == "halted" and prices[61.0][1] == "trading"
    assert Scenario.objects.get(pk=scenario.pk).events_done == [1, 2]


def test_the_api_loads_a_scenario_and_says_what_runs(operator_client, alice_reader, house):
    assert alice_reader.get("/api/v1/scenarios/current").status_code == 404
    response = operator_client.post("/api/v1/scenarios", {"example": "flash-crash"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["scenario"]["name"] == "flash-crash"
    assert [k["account"] for k in body["api_keys"]] == ["strategy-arbitrage"]
    assert {a["name"]: a["created"] for a in body["accounts"]} == {"strategy-arbitrage": True, "agent-noise": True}
    again = operator_client.post("/api/v1/scenarios", {"example": "flash-crash"}, format="json").json()
    assert again["api_keys"] == [] and not any(a["created"] for a in again["accounts"])
    assert again["scenario"]["digest"] == body["scenario"]["digest"]

    current = alice_reader.get("/api/v1/scenarios/current").json()
    assert current["name"] == "flash-crash"
    assert [(e["at"], e["action"], e["done"]) for e in current["schedule"]] == [
        (30.0, "shock", False),
        (45.0, "halt", False),
        (60.0, "resume", False),
    ]
    assert current["price_engine"]["enabled"] is False  # test settings


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"scenario": {"name": "x", "markets": {"DOGE-USD": {}}}}, "markets.DOGE-USD"),
        ({"scenario": {"name": "x", "markets": {"BTC-USD": {"tick": "10ms"}}}}, "markets.BTC-USD.tick"),
        (
            {"scenario": {"name": "x", "markets": {"BTC-USD": {"model": {"kind": "gbm", "volatility": -1}}}}},
            "markets.BTC-USD.model",
        ),
        (
            {"scenario": {"name": "x", "markets": {"BTC-USD": {"replay": {"file": "../../etc/passwd"}}}}},
            "markets.BTC-USD.replay.file",
        ),
        (
            {
                "scenario": {
                    "name": "x",
                    "agents": [{"name": "a", "kind": "noise_taker", "market": "BTC-USD", "account": "nobody"}],
                }
            },
            "agents[0].account",
        ),
        (
            {
                "scenario": {
                    "name": "x",
                    "schedule": [{"at": "5s", "market": "BTC-USD", "action": "shock", "percent": 5}],
                }
            },
            "schedule[0].market",
        ),
        ({"scenario": {"name": "bad name!"}}, "name"),
        ({"yaml": "name: x\nmarkets: {BTC-USD: &a {tick: 1s}, ETH-USD: *a}\n"}, "yaml"),
        ({"yaml": "name: [unclosed"}, "yaml"),
    ],
)
def test_a_scenario_that_cannot_be_loaded_is_422_naming_the_field_and_changes_nothing(operator_client, body, where):
    response = operator_client.post("/api/v1/scenarios", body, format="json")
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "scenario_invalid"
    assert where in error["details"]["errors"], error
    assert not Scenario.objects.exists() and not MarketSimulation.objects.exists()


def test_only_operators_load_scenarios(alice_client):
    assert alice_client.post("/api/v1/scenarios", {"example": "calm-market"}, format="json").status_code == 403


def test_a_reset_cancels_open_orders_and_brings_balances_to_their_targets(operator_client, alice, house):
    account = make_account(owner=alice, label="t", funds={"USD": "10000", "BTC": "1", "ETH": "3"})
    market = Market.objects.get(symbol="BTC-USD")
    placed, _ = order_place(
        request=OrderRequest(
            account=account, market=market, side="buy", order_type="limit", quantity=D("0.1"), price=D("60000.00")
        ),
        actor=alice,
    )
    assert balances_of(account)["USD"][1] > 0
    entries = JournalEntry.objects.count()

    response = operator_client.post(
        f"/api/v1/accounts/{account.account_id}/reset",
        {"balances": {"USD": "500.00", "BTC": "0"}, "reason": "test isolation"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["cancelled_orders"] == 1
    assert [(a["asset"], a["amount"], a["kind"]) for a in body["adjustments"]] == [
        ("BTC", "-1.00000000", "adjustment"),
        ("USD", "-9500.00", "adjustment"),
    ]
    assert Order.objects.get(pk=placed.order.pk).status == "cancelled"
    assert balances_of(account) == {
        **balances_of(account),
        "USD": (D("500.00"), D("0")),
        "BTC": (D("0"), D("0")),
        "ETH": (D("3"), D("0")),  # not named: kept
    }
    # nothing deleted: the deposits, the order's reservation and release, and the two adjustments are all there
    assert JournalEntry.objects.count() == entries + 3
    assert JournalEntry.objects.filter(kind=EntryKind.ADJUSTMENT).count() == 2
    assert reconcile().ok

    again = operator_client.post(
        f"/api/v1/accounts/{account.account_id}/reset", {"balances": {"USD": "500.00"}}, format="json"
    ).json()
    assert (again["cancelled_orders"], again["adjustments"]) == (0, [])  # already there: nothing moves


@pytest.mark.parametrize(
    ("balances", "status", "code"),
    [
        ({"XRP": "1"}, 400, "validation_error"),
        ({"USD": "1.001"}, 400, "invalid_amount"),
        ({"USD": "-1"}, 400, "validation_error"),
        ({"USD": 5}, 400, "validation_error"),
    ],
)
def test_a_bad_reset_is_refused_and_moves_nothing(operator_client, alice, balances, status, code):
    account = make_account(owner=alice, label="t", funds={"USD": "100"})
    response = operator_client.post(
        f"/api/v1/accounts/{account.account_id}/reset", {"balances": balances}, format="json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert balances_of(account)["USD"] == (D("100"), D("0"))


def test_only_operators_reset_accounts(alice_client, alice):
    account = make_account(owner=alice, label="t", funds={"USD": "100"})
    response = alice_client.post(f"/api/v1/accounts/{account.account_id}/reset", {"balances": {}}, format="json")
    assert response.status_code == 403


def test_a_scenario_sent_as_json_with_numbers_loads_like_its_yaml(operator_client, house):
    scenario = {
        "name": "json",
        "seed": 5,
        "markets": {"BTC/USD": {"initial_price": 64000.5, "tick": 0.25, "model": {"kind": "gbm", "volatility": 0.4}}},
        "schedule": [{"at": 2.5, "market": "BTC-USD", "action": "shock", "percent": -1.5}],
    }
    response = operator_client.post("/api/v1/scenarios", {"scenario": scenario}, format="json")
    assert response.status_code == 201, response.content
    sim = MarketSimulation.objects.get(market__symbol="BTC-USD")
    assert (sim.interval_ms, sim.params, sim.shocks, sim.anchor_price) == (
        250,
        {"volatility": "0.4"},
        [{"at": "2.5", "percent": "-1.5"}],
        D("64000.50"),
    )

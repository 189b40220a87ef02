"""The Binance WebSocket API (``/ws-api/v3``) in process, spoken over ASGI as gunicorn's worker would: its
``apiKey`` is checked as ``/api/v3`` checks ``X-MBX-APIKEY``, failures counting against the same budget of the
caller's address (tests/accounts/test_brute_force.py is the same story for /api/v1). The real service with ccxt's
watch_orders over this API is in test_clients.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.test import Client

from accounts.services import api_key_create
from binance_api import ws
from exchange.ratelimit import scope_client_address
from tests.binance_api.test_signed_requests import signed
from tests.factories import make_account

LIMIT = 5
ADDRESS = "203.0.113.7"


@pytest.fixture
def low_limit(settings: Any) -> None:
    settings.AUTH_FAILURE_LIMIT = LIMIT
    settings.AUTH_FAILURE_WINDOW = 60


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The accounts whose user data stream a subscription opened. These tests are about the key check, so the
    stream hub is not started and a subscription's pump only records its account."""
    import streams.hub

    monkeypatch.setattr(streams.hub, "hub", lambda: SimpleNamespace(running=True))
    accounts: list[int] = []

    async def pump_user(self: Any, account_pk: int, wrap: Any) -> None:
        accounts.append(account_pk)
        await asyncio.Event().wait()

    monkeypatch.setattr(ws.Connection, "pump_user", pump_user)
    return accounts


def subscribe(api_key: str, secret: str, *, address: str = ADDRESS) -> dict[str, Any]:
    """The answer to one signed ``userDataStream.subscribe.signature`` on a new connection from ``address``."""
    params: dict[str, Any] = {"apiKey": api_key, "timestamp": int(time.time() * 1000)}
    payload = "&".join(f"{name}={params[name]}" for name in sorted(params))
    params["signature"] = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    request = {"id": "1", "method": "userDataStream.subscribe.signature", "params": params}
    scope = {"type": "websocket", "path": "/ws-api/v3", "query_string": b"", "headers": [], "client": (address, 50123)}

    async def converse() -> dict[str, Any]:
        socket = ApplicationCommunicator(ws.app, scope)
        await socket.send_input({"type": "websocket.connect"})
        assert (await socket.receive_output(10))["type"] == "websocket.accept"
        await socket.send_input({"type": "websocket.receive", "text": json.dumps(request)})
        answer = json.loads((await socket.receive_output(10))["text"])
        await socket.send_input({"type": "websocket.disconnect", "code": 1000})
        await socket.wait(10)
        return answer

    return asyncio.run(converse())


# transactional: the WebSocket API reads the key in a worker thread, on a connection of its own.
@pytest.mark.django_db(transaction=True)
def test_wrong_keys_over_the_websocket_api_are_throttled_like_api_v3_then_even_a_right_key_waits(
    low_limit, opened, alice
):
    account = make_account(owner=alice, label="bot")
    key, good = api_key_create(user=alice, name="bot", scopes=["read"], account=account)
    wrong = good.split(".")[0] + ".wrong-secret-wrong-secret-wrong-se"

    answers = [subscribe(wrong, key.signing_secret) for _ in range(LIMIT)]
    over = subscribe(wrong, key.signing_secret)

    assert [(a["status"], a["error"]["code"]) for a in answers] == [(401, -2015)] * LIMIT
    assert answers[0]["error"]["msg"] == "Invalid API-key, IP, or permissions for action."
    assert over["status"] == 429 and over["error"]["code"] == -1003
    data = over["error"]["data"]
    assert 0 < data["retryAfter"] - data["serverTime"] <= 60_000
    # A right guess now would still be refused: the attacker learns nothing. And it is one budget with /api/v3.
    assert subscribe(good, key.signing_secret)["error"]["code"] == -1003
    rest = Client(REMOTE_ADDR=ADDRESS, HTTP_X_MBX_APIKEY=good).get(f"/api/v3/account?{signed(key.signing_secret, {})}")
    assert rest.status_code == 429 and rest.json()["code"] == -1003
    assert opened == []
    # Another address is not affected: there the key subscribes to the user data of its account.
    fine = subscribe(good, key.signing_secret, address="198.51.100.9")
    assert fine == {"id": "1", "status": 200, "result": {"subscriptionId": 0}, "rateLimits": []}
    assert opened == [account.pk]


@pytest.mark.django_db(transaction=True)
def test_wrong_keys_over_api_v3_count_against_the_websocket_api_too(low_limit, opened, alice):
    account = make_account(owner=alice, label="bot")
    key, good = api_key_create(user=alice, name="bot", scopes=["read"], account=account)
    query = signed(key.signing_secret, {})
    refused = [
        Client(REMOTE_ADDR=ADDRESS, HTTP_X_MBX_APIKEY="nope.nope").get(f"/api/v3/account?{query}").status_code
        for _ in range(LIMIT)
    ]

    assert refused == [401] * LIMIT
    assert subscribe(good, key.signing_secret)["error"]["code"] == -1003
    assert subscribe(good, key.signing_secret, address="198.51.100.9")["status"] == 200


def test_the_websocket_callers_address_is_read_as_for_http(settings):
    """The connection's peer, as a2wsgi hands it to Django as REMOTE_ADDR; X-Forwarded-For's last entry only when
    a proxy of ours sets it."""
    scope = {"client": ("10.0.0.1", 40000), "headers": [(b"x-forwarded-for", b"192.0.2.1, 10.1.1.1")]}
    assert scope_client_address(scope) == "10.0.0.1"
    settings.TRUST_X_FORWARDED_FOR = True
    assert scope_client_address(scope) == "10.1.1.1"
    assert scope_client_address({"client": None, "headers": []}) == "unknown"

"""Leadership of a role across processes: one holder at a time, handed over when the holder goes away."""

from __future__ import annotations

import time

import pytest

from exchange.leader import Leadership, role_key, roles


def test_role_keys_are_stable_and_distinct():
    assert role_key("market_engine") == role_key("market_engine")
    assert role_key("market_engine") != role_key("event_relay")
    assert 0 <= role_key("market_engine") < 2**63


@pytest.mark.postgres
def test_one_holder_at_a_time_and_a_hand_over_when_it_goes(postgres):
    first = Leadership("test-role", check_interval=0.05)
    second = Leadership("test-role", check_interval=0.05)
    try:
        assert first.is_leader()
        time.sleep(0.06)
        assert not second.is_leader()
        assert roles()["test-role"] in (True, False)

        first._conn.close()  # as when the leader's process dies: the server drops its lock with its connection
        deadline = time.monotonic() + 5
        while not second.is_leader():
            assert time.monotonic() < deadline, "no hand-over"
            time.sleep(0.06)
        time.sleep(0.06)
        assert not first.is_leader()  # it noticed, and the role is taken
    finally:
        first.release()
        second.release()

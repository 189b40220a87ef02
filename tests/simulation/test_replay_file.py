"""The replay format: parsing, schedule at a speed factor, looping."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from simulation.replay import EXAMPLES_DIR, ReplayCursor, ReplayError, parse_replay, parse_speed

CSV = """timestamp,price,volume
# a comment
2026-01-05T12:00:00Z,65000.00,1.5
2026-01-05T12:00:01Z,65010.50,
2026-01-05T12:00:03Z,64990.25,0.2
"""


def test_rows_are_read_exactly_with_times_since_the_first():
    rows = parse_replay(CSV)
    assert [(r.seconds, r.price, r.volume) for r in rows] == [
        (0.0, D("65000.00"), D("1.5")),
        (1.0, D("65010.50"), None),
        (3.0, D("64990.25"), D("0.2")),
    ]
    assert parse_replay("1767614400,10\n1767614400.5,11\n")[1].seconds == 0.5


@pytest.mark.parametrize(
    "text",
    ["", "timestamp,price\n", "x,1\n", "1,abc\n", "1,-5\n", "2,1\n1,1\n", "1,2,3,4\n", "1,1,-1\n", "1,NaN\n"],
)
def test_bad_files_are_refused(text: str):
    with pytest.raises(ReplayError):
        parse_replay(text)


def test_speed_factors():
    assert parse_speed("1x") == 1.0 and parse_speed("10x") == 10.0 and parse_speed(10) == 10.0
    assert parse_speed("max") is None
    for bad in ("0", "-1x", "fast", "1e9"):
        with pytest.raises(ReplayError):
            parse_speed(bad)


def test_rows_are_due_at_their_time_divided_by_the_speed():
    cursor = ReplayCursor(parse_replay(CSV), speed=10.0, loop=False)
    assert [cursor.index_at(t) for t in (0.0, 0.09, 0.1, 0.29, 0.3, 100.0)] == [0, 0, 1, 1, 2, 2]
    assert cursor.finished(2)


def test_a_loop_starts_again_one_median_gap_after_the_last_row():
    cursor = ReplayCursor(parse_replay(CSV), speed=1.0, loop=True)  # gaps 1 s and 2 s: period 3 + 1.5 = 4.5 s
    assert [cursor.index_at(t) for t in (3.0, 4.4, 4.5, 5.5, 9.0)] == [2, 2, 3, 4, 6]
    assert cursor.row(4).price == D("65010.50") and not cursor.finished(4)


def test_max_speed_takes_one_row_per_round_and_stops_at_the_end():
    cursor = ReplayCursor(parse_replay(CSV), speed=None, loop=False)
    assert [cursor.advance() for _ in range(5)] == [0, 1, 2, 2, 2]


def test_the_shipped_sample_is_a_valid_replay():
    rows = parse_replay((EXAMPLES_DIR / "btc-usd-sample.csv").read_text())
    assert len(rows) >= 100
    assert all(r.price == r.price.quantize(D("0.01")) for r in rows)

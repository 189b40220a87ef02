"""Replay of a recorded price history from a CSV file (docs/simulation.md, "Replay files").

Format: UTF-8 text, one row per tick, comma-separated: ``timestamp,price[,volume]``. An optional first line names
the columns (``timestamp,price,volume``). ``timestamp`` is RFC 3339 (``2026-01-05T12:00:00Z``) or Unix seconds
(``1767614400.5``) and must increase strictly; ``price`` is a positive decimal (kept exactly, then put on the market's
tick); ``volume`` (base quantity, >= 0) is optional and informative. Lines starting with ``#`` and blank lines are
skipped.

A replay is driven by time like the models: at speed ``s`` row ``k`` is due ``(t_k - t_0) / s`` seconds after the
replay started; ``max`` emits one row per engine round, as fast as the database takes them. Looping starts again
after the last row, one median gap later; otherwise the market stays at the last price.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

MAX_ROWS = 1_000_000
# The example scenarios and replay files shipped with the project.
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


class ReplayError(ValueError):
    pass


@dataclass(frozen=True)
class ReplayRow:
    seconds: float  # since the first row
    price: Decimal
    volume: Decimal | None


def _timestamp(text: str) -> float:
    text = text.strip()
    try:
        return float(Decimal(text))
    except InvalidOperation:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ReplayError(f"not a timestamp: {text[:40]!r}") from None


def parse_replay(text: str) -> list[ReplayRow]:
    rows: list[ReplayRow] = []
    first: float | None = None
    previous: float | None = None
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        if not rows and fields[0].strip().lower() == "timestamp":
            continue
        if len(fields) not in (2, 3):
            raise ReplayError(f"line {number}: expected timestamp,price[,volume]")
        moment = _timestamp(fields[0])
        try:
            price = Decimal(fields[1].strip())
            volume = Decimal(fields[2].strip()) if len(fields) == 3 and fields[2].strip() else None
        except InvalidOperation:
            raise ReplayError(f"line {number}: not a number") from None
        if not price.is_finite() or price <= 0:
            raise ReplayError(f"line {number}: the price must be positive")
        if volume is not None and (not volume.is_finite() or volume < 0):
            raise ReplayError(f"line {number}: the volume must be >= 0")
        if previous is not None and moment <= previous:
            raise ReplayError(f"line {number}: timestamps must increase")
        if first is None:
            first = moment
        previous = moment
        rows.append(ReplayRow(moment - first, price, volume))
        if len(rows) > MAX_ROWS:
            raise ReplayError(f"more than {MAX_ROWS} rows")
    if not rows:
        raise ReplayError("no rows")
    return rows


def load_replay(path: str | Path) -> list[ReplayRow]:
    return parse_replay(Path(path).read_text(encoding="utf-8"))


def parse_speed(value: object) -> float | None:
    """``1x``, ``10``, ``0.5x`` -> the factor; ``max`` -> None (as fast as possible)."""
    text = str(value).strip().lower()
    if text in ("max", "fastest", "inf"):
        return None
    try:
        speed = float(Decimal(text.removesuffix("x")))
    except InvalidOperation:
        raise ReplayError("speed: a factor such as 1x or 10x, or max") from None
    if not 0 < speed <= 1_000_000:
        raise ReplayError("speed: a factor > 0")
    return speed


@dataclass
class ReplayCursor:
    """Which row of a replay is due: ``index_at(elapsed)`` for a timed replay, ``advance()`` for ``max``."""

    rows: list[ReplayRow]
    speed: float | None
    loop: bool

    def __post_init__(self) -> None:
        gaps = [b.seconds - a.seconds for a, b in zip(self.rows, self.rows[1:], strict=False)]
        self.period = self.rows[-1].seconds + (statistics.median(gaps) if gaps else 1.0)
        self.position = -1

    def index_at(self, elapsed_s: float) -> int:
        """The index (counting loops: row ``i % len(rows)``) of the last row due ``elapsed_s`` after the start."""
        if self.speed is None:
            return self.position
        replay_s = elapsed_s * self.speed
        laps = 0
        if self.loop and replay_s >= self.period:
            laps = int(replay_s // self.period)
            replay_s -= laps * self.period
        # the last row whose time has come (binary search)
        lo, hi = 0, len(self.rows) - 1
        if replay_s < self.rows[0].seconds:
            return laps * len(self.rows) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.rows[mid].seconds <= replay_s:
                lo = mid
            else:
                hi = mid - 1
        return laps * len(self.rows) + lo

    def advance(self) -> int:
        """``max`` speed: the next row's index (or the last one again when not looping)."""
        if self.loop or self.position < len(self.rows) - 1:
            self.position += 1
        return self.position

    def finished(self, index: int) -> bool:
        return not self.loop and index >= len(self.rows) - 1

    def row(self, index: int) -> ReplayRow:
        return self.rows[index % len(self.rows)]

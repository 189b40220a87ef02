"""What is in force, read cheaply: a per-process snapshot of the injections, refreshed every ``CHAOS_CACHE_TTL``.

The order path and every request ask ``in_force()``; it answers from memory and reads the table again (one indexed
query) only when the snapshot is older than the TTL (500 ms by default), so a fault injected or cleared in one
process acts in every other within that time, and ends at its ``expires_at`` to the millisecond (each read drops
what has expired since the snapshot was taken). A process that injects or clears drops its own snapshot at once.

Decisions are deterministic: ``draw(injection, key)`` is a number in [0, 1) derived from the injection's seed and
the key (an order's ``client_order_id`` when it has one), so the same injection and the same orders make the same
decisions in a replay.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone

logger = structlog.get_logger("exchange.chaos")

# Operations a fault can be scoped to (what a request does, chaos/operations.py maps requests to them).
OPERATIONS = (
    "place_order",
    "cancel_order",
    "get_order",
    "get_trades",
    "market_data",
    "get_balance",
    "account",
    "other",
)


@dataclass(frozen=True)
class Active:
    """One injection in force, as the effects read it."""

    pk: int
    chaos_id: str
    type: str
    params: dict[str, Any]
    operations: frozenset[str]
    accounts: frozenset[str]
    markets: frozenset[str]
    seed: int
    expires_at: datetime

    def remaining_s(self, now: datetime | None = None) -> float:
        return max(0.0, (self.expires_at - (now or timezone.now())).total_seconds())

    def covers(
        self,
        *,
        operation: str | None = None,
        account_keys: frozenset[str] | set[str] | None = None,
        symbol: str | None = None,
    ) -> bool:
        """Whether the injection's scope includes this request: each scope list is empty (everything) or names it.
        ``account_keys``: the account's id and label (and its owner's username)."""
        if self.operations and operation is not None and operation not in self.operations:
            return False
        if self.accounts and not (self.accounts & set(account_keys or ())):
            return False
        return not (self.markets and symbol not in self.markets)


_counter = itertools.count()


def draw(injection: Active, key: str | None = None) -> float:
    """A number in [0, 1) from the injection's seed and ``key`` (a process-wide sequence when ``key`` is None)."""
    if key is None:
        key = f"#{next(_counter)}"
    digest = hashlib.sha256(f"{injection.seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class _Snapshot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = -1e18
        self.items: tuple[Active, ...] = ()
        self.failed_at = 0.0

    def invalidate(self) -> None:
        with self.lock:
            self.taken = -1e18

    def fresh(self) -> bool:
        return time.monotonic() - self.taken < settings.CHAOS_CACHE_TTL

    def refresh(self) -> tuple[Active, ...]:
        from chaos.models import Injection

        now = timezone.now()
        try:
            rows = list(
                Injection.objects.filter(cleared_at__isnull=True, expires_at__gt=now)
                .order_by("id")
                .values_list(
                    "pk", "chaos_id", "type", "params", "operations", "accounts", "markets", "seed", "expires_at"
                )
            )
        except Exception as exc:  # the database is down: no fault is read, trading answers its own errors
            if time.monotonic() - self.failed_at > 10:
                logger.warning("chaos_state_unreadable", error=f"{type(exc).__name__}: {exc}"[:200])
            self.failed_at = time.monotonic()
            return ()
        items = tuple(
            Active(
                pk=pk,
                chaos_id=chaos_id,
                type=kind,
                params=params or {},
                operations=frozenset(operations or ()),
                accounts=frozenset(str(a) for a in accounts or ()),
                markets=frozenset(markets or ()),
                seed=seed,
                expires_at=expires_at,
            )
            for pk, chaos_id, kind, params, operations, accounts, markets, seed, expires_at in rows
        )
        with self.lock:
            before, self.items, self.taken = self.items, items, time.monotonic()
        _ladder_faults_ended(before, items)
        from chaos.services import affected_flush

        affected_flush()
        return items


def _ladder_faults_ended(before: tuple[Active, ...], now: tuple[Active, ...]) -> None:
    """A spread or liquidity fault that ended since the last snapshot (expired, or cleared elsewhere): the house's
    quotes narrow or deepen again, so the markets it named are re-quoted (resting orders the quotes now cross are
    filled), in a thread of its own. Each process that notices does it; a second time changes nothing."""
    if settings.CHAOS_CACHE_TTL <= 0:  # tests: transactions never commit, nothing expires between two reads
        return
    current = {i.pk for i in now}
    ended = [i for i in before if i.type in ("spreads", "liquidity") and i.pk not in current]
    if not ended:
        return
    symbols = sorted({s for i in ended for s in i.markets}) if all(i.markets for i in ended) else []

    def run() -> None:
        from django.db import connection

        from chaos.services import _ladder_refresh

        try:
            _ladder_refresh(symbols)
        finally:
            connection.close()

    threading.Thread(target=run, name="chaos-ladder", daemon=True).start()


_snapshot = _Snapshot()


def in_force(kind: str | None = None) -> list[Active]:
    """The injections in force now (of ``kind``), oldest first. Empty when chaos is disabled."""
    if not settings.CHAOS_ENABLED:
        return []
    items = _snapshot.items if _snapshot.fresh() else _snapshot.refresh()
    if not items:
        return []
    now = timezone.now()
    return [i for i in items if i.expires_at > now and (kind is None or i.type == kind)]


def snapshot_fresh() -> bool:
    """Whether ``in_force`` would answer without a query (the ASGI layer refreshes in a thread otherwise)."""
    return not settings.CHAOS_ENABLED or _snapshot.fresh()


def refresh() -> None:
    _snapshot.refresh()


def invalidate() -> None:
    """Forget the snapshot (after an injection or a clear in this process)."""
    _snapshot.invalidate()

"""Leadership across instances: of the processes that share one database, exactly one holds a named role (the
market engine that moves prices, the relay that orders events ...), and another takes over within seconds when it
dies.

A role is a PostgreSQL session-level advisory lock on a dedicated connection: the server releases it the moment
that connection ends, whether the leader exited, was killed or lost the network, so there is no lease to expire and
no clock to trust. The holder checks its connection every ``check_interval`` and steps down (stops leading) as soon
as it breaks; a candidate polls with ``pg_try_advisory_lock`` every ``check_interval`` and leads once it gets it.
On SQLite (one process, no advisory locks) the caller simply leads.

    with Leadership("market_engine") as leader:
        while not stop.is_set():
            if leader.is_leader():
                tick()
            stop.wait(0.1)
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import structlog
from django.db import connection

logger = structlog.get_logger("exchange.leader")

# Leadership of every role, as seen by this process (for readiness and metrics): role -> leading?
_roles: dict[str, bool] = {}


def role_key(role: str) -> int:
    """A stable 63-bit advisory lock key for ``role`` (namespaced, so other users of advisory locks do not clash)."""
    digest = hashlib.sha256(f"exchange-simulator:{role}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def roles() -> dict[str, bool]:
    return dict(_roles)


class Leadership:
    def __init__(self, role: str, *, check_interval: float = 1.0) -> None:
        self.role, self.check_interval = role, check_interval
        self.key = role_key(role)
        self._conn: Any = None
        self._leading = False
        self._last_check = 0.0
        self._lock = threading.Lock()

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _connect(self) -> Any:
        import psycopg

        params = {
            k: v
            for k, v in connection.get_connection_params().items()
            if k not in ("cursor_factory", "context", "prepare_threshold")
        }
        return psycopg.connect(**params, autocommit=True)

    def is_leader(self) -> bool:
        """Whether this process leads now (checked at most every ``check_interval``)."""
        if connection.vendor != "postgresql":
            self._set(True)
            return True
        now = time.monotonic()
        if now - self._last_check < self.check_interval:
            return self._leading
        self._last_check = now
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    if self._leading:  # the lock went with the old connection
                        logger.warning("leadership_lost", role=self.role, error="connection closed")
                        self._set(False)
                    self._conn = self._connect()
                if self._leading:
                    self._conn.execute("SELECT 1")  # the lock lives as long as this connection answers
                else:
                    self._set(bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()[0]))
            except Exception as exc:  # the connection broke: whatever we held is released by the server
                if self._leading:
                    logger.warning("leadership_lost", role=self.role, error=f"{type(exc).__name__}: {exc}"[:200])
                self._set(False)
                self._close()
        return self._leading

    def _set(self, leading: bool) -> None:
        if leading != self._leading:
            logger.info("leadership_taken" if leading else "leadership_released", role=self.role)
        self._leading = leading
        _roles[self.role] = leading

    def _close(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:  # noqa: S110 - closing a broken connection may fail too
            pass
        self._conn = None

    def release(self) -> None:
        """Stop leading (closing the connection releases the lock at once)."""
        with self._lock:
            self._close()
            self._set(False)

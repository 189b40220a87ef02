"""Which instance moves prices: the price engine's leadership (exchange/leader.py), named so others can tell.

The leader's advisory-lock connection carries ``application_name`` = ``<SERVICE_INSTANCE_NAME>@<host>:<pid>``, so
any instance's readiness can say who leads by asking PostgreSQL who holds the lock (``pg_locks``), with no lease
table and no heartbeat to trust.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

from exchange.leader import Leadership, role_key
from simulation.engine import ROLE, leader_identity


class EngineLeadership(Leadership):
    def __init__(self, *, check_interval: float = 1.0) -> None:
        super().__init__(ROLE, check_interval=check_interval)

    def _connect(self) -> Any:
        conn = super()._connect()
        conn.execute("SELECT set_config('application_name', %s, false)", [leader_identity()])
        return conn


def engine_leader() -> str | None:
    """The identity of the process that moves prices now (None: none does). On SQLite, no one can tell."""
    if connection.vendor != "postgresql":
        return None
    key = role_key(ROLE)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s "
            "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [key >> 32, key & 0xFFFF_FFFF],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def engine_status() -> dict[str, Any]:
    """For readiness: whether the engine is on here, who leads, and whether that is this instance."""
    status: dict[str, Any] = {
        "enabled": settings.PRICE_ENGINE_ENABLED,
        "leader": None,
        "leader_is_this_instance": False,
    }
    try:
        leader = engine_leader()
    except Exception as exc:  # the database away: readiness says so in its database check
        status["error"] = f"{type(exc).__name__}"
        return status
    status["leader"] = leader
    status["leader_is_this_instance"] = bool(leader) and leader.split("@", 1)[0] == settings.SERVICE_INSTANCE_NAME
    return status

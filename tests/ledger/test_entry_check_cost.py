"""The deferred check that an entry balances costs the same whatever the history: its queries find the entry's
postings through an index on ``entry_id``, even on a table the planner has no statistics for (autovacuum is off on
this machine, and a fresh production database has none either until it is analyzed)."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection

pytestmark = pytest.mark.postgres

HISTORY = 60_000  # postings in the copy: enough that walking the wrong index would cost milliseconds


def _trigger_queries() -> list[str]:
    """The statements of the installed trigger function that read ledger_posting, as the database runs them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'ledger_entry_balanced'")
        (source,) = cursor.fetchone()
    statements = re.findall(r"SELECT[^;]*?FROM ledger_posting[^;]*;", source, flags=re.S)
    assert len(statements) == 2, source
    # PL/pgSQL's "INTO" targets are not SQL.
    return [re.sub(r"\bINTO\s+\w+\s+", "", s).rstrip(";") for s in statements]


def _scans(node: dict) -> list[dict]:
    found = [node] if "Scan" in node["Node Type"] else []
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


def test_the_balance_check_reads_only_the_entrys_postings_without_planner_statistics(postgres):
    with connection.cursor() as cursor:
        # A copy of ledger_posting with the same indexes (so the real index set is what is tested), filled with
        # a long history over four assets, and never analyzed.
        cursor.execute("CREATE TEMP TABLE history_posting (LIKE ledger_posting INCLUDING ALL)")
        cursor.execute(
            """
            INSERT INTO history_posting (id, entry_id, ledger_account_id, asset_id, account_id, amount, created_at)
            SELECT g, g / 2, 1, (ARRAY['BTC','ETH','USD','USDT'])[1 + g %% 4], NULL,
                   CASE WHEN g %% 2 = 0 THEN 1 ELSE -1 END, now()
              FROM generate_series(1, %s) AS g
            """,
            [HISTORY],
        )
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'history_posting'")
        assert cursor.fetchone()[0] <= 0, "the copy must have no statistics"
        for query in _trigger_queries():
            sql = query.replace("ledger_posting", "history_posting").replace("eid", str(HISTORY // 4))
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            plan = cursor.fetchone()[0]
            plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
            scans = _scans(plan)
            assert scans, plan
            for scan in scans:
                # An index scan finds the rows by entry_id (a bitmap heap scan rechecks the same condition);
                # a scan that finds them with a Filter walks the whole history.
                condition = scan.get("Index Cond", "") + scan.get("Recheck Cond", "")
                assert "entry_id" in condition, f"{sql}\n{json.dumps(plan, indent=1)}"
        cursor.execute("DROP TABLE history_posting")

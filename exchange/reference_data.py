"""Every app's reference data (assets, house books, markets) in one idempotent call, for tests and tools."""

from __future__ import annotations


def ensure_all_reference_data() -> None:
    from ledger.reference_data import ensure_reference_data

    ensure_reference_data()
    from markets.reference_data import ensure_reference_data as ensure_markets

    ensure_markets()
    # Rows may have been recreated (a flushed test database): forget per-process caches of their ids.
    from orders.services import clear_caches

    clear_caches()

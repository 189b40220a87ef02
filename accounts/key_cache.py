"""A per-process cache of API keys, invalidated by the database within milliseconds of a change.

Reading a key and its user on every request costs a query (most of an authenticated request's CPU). This cache
keeps each key's row and its user's, by prefix. A database trigger (accounts migration 0004) NOTIFYs the channel
``exchange_api_keys`` whenever a key or a user changes (revoked, scopes, expiry, deactivated, deleted), in the same
transaction, so the notification arrives the moment the change commits; a listener thread in each process evicts
what it names. The cache answers only while that listener is connected: it is emptied when the connection is lost
and refilled once it is back, so a notification missed while disconnected can never keep a revoked key alive.

Money never depends on it: an order re-checks its key in its own transaction, under its locks (orders/store.py),
so a revoked key places nothing from the moment the revocation commits; reads stop within the notification's delay.
Off on SQLite (no LISTEN/NOTIFY) and in the test settings (their transactions never commit, so they never notify).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from django.conf import settings
from django.db import connection

logger = structlog.get_logger("exchange.api_keys")

CHANNEL = "exchange_api_keys"
MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[Any, Any]] = {}  # prefix -> (ApiKey, User), never handed out themselves
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0  # bumped on every eviction: a read that raced one is not stored
        self._stopping = threading.Event()

    # -- the listener ---------------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                params = connection.get_connection_params()
                self._thread = threading.Thread(target=self._listen, args=(params,), daemon=True, name="key-cache")
                self._thread.start()

    def _listen(self, params: dict[str, Any]) -> None:
        import psycopg

        params = {k: v for k, v in params.items() if k not in ("cursor_factory", "context", "prepare_threshold")}
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.clear()  # whatever was cached before this connection may have missed notifications
                    self._listening.set()
                    backoff = 0.5
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self._evict(notify.payload)
                self._listening.clear()
            except Exception as exc:  # the database went away: stop answering from memory until it is back
                if self._listening.is_set():
                    logger.warning("api_key_cache_disconnected", error=f"{type(exc).__name__}: {exc}"[:200])
                self._listening.clear()
                self.clear()
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    # -- the cache ------------------------------------------------------------------------------------------
    def _evict(self, payload: str) -> None:
        kind, _, ident = payload.partition(":")
        with self._lock:
            self._generation += 1
            if kind == "key":
                self._entries.pop(ident, None)
            elif kind == "user":
                for prefix in [p for p, (_, user) in self._entries.items() if str(user.pk) == ident]:
                    del self._entries[prefix]
            else:
                self._entries.clear()

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    @property
    def enabled(self) -> bool:
        return bool(getattr(settings, "API_KEY_CACHE", True)) and connection.vendor == "postgresql"

    def get(self, prefix: str, load: Any) -> tuple[Any, Any] | None:
        """The (key, user) of ``prefix`` as fresh model instances: from memory while the listener is connected,
        else from ``load()`` (which returns them or None)."""
        if not self.enabled:
            return load()
        if not self._listening.is_set():
            self._start()
            return load()
        cached = self._entries.get(prefix)
        if cached is None:
            generation = self._generation
            loaded = load()
            if loaded is None:
                return None
            with self._lock:
                if generation == self._generation and self._listening.is_set():
                    if len(self._entries) >= MAX_ENTRIES:
                        self._entries.pop(next(iter(self._entries)))
                    self._entries[prefix] = loaded
            cached = loaded
        key, user = _copy(cached[0]), _copy(cached[1])
        key._state.fields_cache["user"] = user
        if "account" in cached[0]._state.fields_cache:  # loaded with the key (accounts.authentication._load)
            account = cached[0]._state.fields_cache["account"]
            key._state.fields_cache["account"] = None if account is None else _copy(account)
        return key, user

    def holds(self, prefix: str) -> bool:
        """Whether ``prefix`` would be answered from memory now."""
        return self.enabled and self._listening.is_set() and prefix in self._entries

    def touch(self, prefix: str, when: Any) -> None:
        """Record a write of ``last_used_at`` (the trigger does not notify for that column alone)."""
        cached = self._entries.get(prefix)
        if cached is not None:
            cached[0].last_used_at = when

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the listener and close its connection (tests; a process that exits needs nothing)."""
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        self._listening.clear()
        self.clear()
        self._stopping.clear()

    def wait_until_listening(self, timeout: float) -> bool:
        """For tests and start-up: start the listener and wait until it answers from memory."""
        self._start()
        return self._listening.wait(timeout)


def _copy(instance: Any) -> Any:
    """A fresh instance per request, so one request's changes to its key or user never reach another's."""
    clone = type(instance).__new__(type(instance))
    clone.__dict__ = {k: v for k, v in instance.__dict__.items() if k != "_state"}
    clone._state = type(instance._state)()
    clone._state.adding, clone._state.db = False, instance._state.db
    return clone


key_cache = KeyCache()

"""Delivering the outbox after commit: the relay that stamps delivery sequences, and the in-process event hub.

**Ordering.** Outbox ids come from a sequence allocated at insert, not at commit: a transaction that inserted id 10
may commit after one that inserted id 11, so a reader of "id > last" could pass 10 before it is visible and never
see it. Rows therefore get a second number, ``seq``, stamped after they committed: one stamper at a time (a
transaction-level advisory lock, ``pg_try_advisory_xact_lock``, so there is no leader to elect or lose) takes every
row it can see without a ``seq`` (that is: every committed row; uncommitted ones are invisible to it) and numbers
them on from the highest ``seq`` there is, in id order. A row committed later is stamped by a later stamping, with
a higher number. So ``seq`` is strictly increasing in the order changes became visible, it never has a gap a
reader could skip, and "``seq`` > last" is a safe, resumable cursor: the ``id:`` of every server-sent event and the
``Last-Event-ID`` a client resumes from. Within one stamping, rows are numbered in id order; changes of one order,
one balance or one market are made under that row's lock, each event inserted after the lock was taken, so their
ids, and their ``seq``, follow their commit order.

**Wake-ups.** The triggers notify ``exchange_events`` (PostgreSQL delivers it on commit only); each hub LISTENs,
stamps (or finds that another process just did), reads what is new and hands it to its subscribers; a stamper
notifies ``exchange_events_stamped`` so the hubs of other processes read at once too. Every ``poll`` seconds a hub
looks anyway, so a lost notification delays, never loses, an event. On SQLite (one process) the hub polls.

Why LISTEN/NOTIFY and not Redis pub/sub: the event must exist exactly when the change commits, which only the
database can say (a publish to Redis after commit is lost if the process dies in between; before commit, it
announces a change that may roll back). NOTIFY is transactional, needs nothing besides the database we already
depend on, and is only a wake-up: the rows are the truth, so nothing is lost when a listener is down.

**The hub** (one per process, started by ``hub().start()``; the ASGI application starts it in every worker) keeps
the subscriptions of this process and renders each event once, however many subscribers want it
(streams/rendering.py), in two lanes (threads): rows (orders, fills, balances) and views computed at delivery
(positions, books, tickers, with the markets' trades), so a slow view never delays a fill. The Python API, used by
the SSE endpoints (streams/sse.py) and meant for any other transport (WebSocket streams of a Binance-style
facade)::

    from streams.hub import Filter, hub

    async for event in hub().events(Filter(topics={"order"}, accounts={account.pk}), after=(1234, 0)):
        event.id, event.name, event.payload        # committed changes, in order, none twice

    stream = await hub().open(Filter(topics={"position"}, accounts={account.pk})).start()
    stream.cursor                                  # show the current state as of this id, then
    async for event in stream: ...                 # every change after it

``Filter``: ``topics`` (streams/rendering.py: order, fill, balance, position, trade, book, ticker), ``accounts``
(internal pks; None: every account), ``markets`` (pks; None: every market). ``after``: resume after this event
id: the events since are read from the outbox first (``Replay``), then live ones follow without a gap or a
repeat. A subscriber that falls more than ``STREAM_QUEUE_SIZE`` events behind is dropped: its iterator raises
``SlowConsumer`` (it may resume from the last id it got).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from exchange.leader import role_key
from risk.positions import PositionTracker
from streams import rendering
from streams.outbox import CHANNEL, STAMPED_CHANNEL
from streams.rendering import Published

logger = structlog.get_logger("exchange.streams")

STAMP_LOCK = role_key("stream_relay")
STAMP_BATCH = 5000


class SlowConsumer(Exception):
    """The subscriber fell too far behind and was dropped."""


class HubStopped(Exception):
    """The hub is shutting down (the process is stopping)."""


@dataclass(frozen=True)
class Filter:
    topics: frozenset[str] | set[str]
    accounts: frozenset[int] | set[int] | None = None
    markets: frozenset[int] | set[int] | None = None

    def wants(self, topic: str, account_pk: int | None, market_pk: int | None) -> bool:
        if topic not in self.topics:
            return False
        if self.accounts is not None and account_pk not in self.accounts:
            return False
        return self.markets is None or market_pk in self.markets

    def sql(self) -> tuple[str, list[Any]]:
        """The outbox rows that can give events this filter wants (for reading history)."""
        sources = {
            rendering.ORDER: "order",
            rendering.FILL: "fill",
            rendering.TRADE: "trade",
            rendering.BALANCE: "balance",
            rendering.POSITION: "balance",
            rendering.BOOK: "market",
            rendering.TICKER: "market",
        }
        topics = sorted({sources[t] for t in self.topics})
        where, params = [f"topic IN ({', '.join(['%s'] * len(topics))})"], list(topics)
        if self.accounts is not None:
            accounts = sorted(self.accounts) or [-1]
            where.append(f"(account_id IS NULL OR account_id IN ({', '.join(['%s'] * len(accounts))}))")
            params += accounts
        if self.markets is not None:
            markets = sorted(self.markets) or [-1]
            where.append(f"(market_id IS NULL OR market_id IN ({', '.join(['%s'] * len(markets))}))")
            params += markets
        return " AND ".join(where), params


# --- stamping (the relay) ----------------------------------------------------------------------------------------
def stamp() -> int:
    """Number the committed, unstamped rows (if no other process is doing it now). Returns how many."""
    from exchange.db.postgresql import statements

    total = 0
    while True:
        if connection.vendor == "postgresql":
            # One statement (streams/outbox.py, streams_stamp): the lock, the numbering and the notification.
            [(count,)] = statements.rows("SELECT streams_stamp(%s, %s)", [STAMP_LOCK, STAMP_BATCH])
            if count < 0:
                return total  # another process stamps right now; its notification will wake us
        else:
            with transaction.atomic(), connection.cursor() as cursor, _sqlite_stamp_lock:
                cursor.execute("SELECT coalesce(max(seq), 0) FROM streams_event")
                top = cursor.fetchone()[0]
                cursor.execute("SELECT id FROM streams_event WHERE seq IS NULL ORDER BY id LIMIT %s", [STAMP_BATCH])
                ids = [row[0] for row in cursor.fetchall()]
                for n, pk in enumerate(ids, start=1):
                    cursor.execute("UPDATE streams_event SET seq = %s WHERE id = %s", [top + n, pk])
                count = len(ids)
        total += count
        if count < STAMP_BATCH:
            return total


_sqlite_stamp_lock = threading.Lock()


def last_seq() -> int:
    from exchange.db.postgresql import statements

    return int(statements.rows("SELECT coalesce(max(seq), 0) FROM streams_event")[0][0])


def first_seq() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(seq) FROM streams_event")
        value = cursor.fetchone()[0]
        return None if value is None else int(value)


def prune(*, older_than_seconds: float) -> int:
    """Delete events older than the retention (streams resume from what is left)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "DELETE FROM streams_event WHERE created_at < now() - make_interval(secs => %s) AND seq IS NOT NULL",
                [older_than_seconds],
            )
        else:
            from datetime import timedelta

            from django.utils import timezone

            cutoff = (timezone.now() - timedelta(seconds=older_than_seconds)).strftime("%Y-%m-%d %H:%M:%f")
            cursor.execute("DELETE FROM streams_event WHERE created_at < %s AND seq IS NOT NULL", [cutoff])
        return cursor.rowcount


# --- subscriptions -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gap:
    """Events the subscriber joined too late to be handed live: it reads them from the outbox."""

    after: int
    until: int


class Subscription:
    def __init__(self, hub: Hub, flt: Filter, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.hub, self.filter, self.loop = hub, flt, loop
        self.queue: asyncio.Queue[Published | Gap | BaseException] = asyncio.Queue()
        self.maxsize = maxsize
        self.cursor = 0  # live events start after this seq
        self.dropped = False

    def offer(self, events: list[Published | Gap]) -> None:
        """On the subscriber's loop: queue what it wants; drop it when it is too far behind."""
        if self.dropped:
            return
        if self.queue.qsize() + len(events) > self.maxsize:
            self.dropped = True
            self.queue.put_nowait(SlowConsumer())
            self.hub.unsubscribe(self)
            return
        for event in events:
            self.queue.put_nowait(event)

    def fail(self, exc: BaseException) -> None:
        self.queue.put_nowait(exc)


class Hub:
    """One delivery lane: reads the outbox rows of ``sources`` (topics of ``streams_event``) in ``seq`` order and
    hands the events they give to its subscriptions."""

    def __init__(
        self,
        *,
        name: str = "hub",
        sources: tuple[str, ...] | None = None,
        poll: float | None = None,
        window: float | None = None,
    ) -> None:
        self.name, self.sources = name, sources
        self.poll = poll if poll is not None else settings.STREAM_POLL_INTERVAL
        self.window = window if window is not None else settings.STREAM_BATCH_WINDOW
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._wake = threading.Event()
        self.delivered = 0  # the highest seq handed to subscribers
        self.books = rendering.BookState()
        self.positions = PositionTracker()
        self._listen_conn: Any = None
        self._last_prune = 0.0
        self._last_look = 0.0
        self._stats = {"batches": 0, "rows": 0, "events": 0, "fetch_s": 0.0, "render_s": 0.0, "offer_s": 0.0}
        self._stats_at = time.monotonic()
        self.forwarder: Any = None  # the audit hand-off (streams/audit.py), when configured
        # The lane of this process that stamps (None: this one). Another lane then only reads: it is woken by the
        # stamper's notification, and one process's lanes do not take turns stamping the same commits.
        self.stamper: Hub | None = None

    # lifecycle
    def start(self) -> Hub:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name=f"stream-{self.name}", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            subs = list(self._subs)
            self._subs.clear()
        for sub in subs:
            _call(sub, sub.fail, HubStopped())
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return self._ready.wait(timeout)

    # subscriptions
    def subscribe(self, flt: Filter, loop: asyncio.AbstractEventLoop) -> Subscription:
        sub = Subscription(self, flt, loop, settings.STREAM_QUEUE_SIZE)
        with self._lock:
            if self._stop.is_set():
                raise HubStopped()
            sub.cursor = self.delivered
            self._subs.add(sub)
        self._wake.set()  # an idle lane sleeps a poll interval: serve the first subscriber at once
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def open(self, flt: Filter, *, after: tuple[int, int] | None = None) -> Stream:
        """A stream of committed events ``flt`` wants (``await stream.start()``, then ``async for``)."""
        return Stream(self, flt, after)

    async def events(self, flt: Filter, *, after: tuple[int, int] | None = None) -> AsyncIterator[Published]:
        """Committed events ``flt`` wants, in order: after ``after`` (from the outbox, then live), or from now."""
        stream = self.open(flt, after=after)
        await stream.start()
        try:
            async for event in stream:
                yield event
        finally:
            stream.close()

    # the thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._loop()
                except Exception as exc:  # the database went away: keep trying, every event is still in the outbox
                    logger.warning("stream_hub_error", error=f"{type(exc).__name__}: {exc}"[:300])
                    self._close_listen()
                    with contextlib.suppress(Exception):
                        connection.close()
                    self._stop.wait(1.0)
        finally:
            self._close_listen()
            with contextlib.suppress(Exception):
                connection.close()

    def _loop(self) -> None:
        close_old_connections()
        if connection.vendor == "postgresql" and self._listen_conn is None:
            self._listen_conn = _listen()
        if not self._ready.is_set():
            stamp()
            self.delivered = last_seq()
            self._ready.set()
            logger.info("stream_hub_started", lane=self.name, seq=self.delivered)
        new_rows = True
        while not self._stop.is_set():
            busy = self._busy()
            if new_rows and not self._stamped_elsewhere():
                stamp()
            self._last_look = time.monotonic()
            self._deliver()
            self._housekeeping()
            new_rows = self._wait() if busy else self._idle_wait()

    def _stamped_elsewhere(self) -> bool:
        """Whether this process's stamping lane stamps what woke this one (it does while it delivers; idle, it
        only looks once per poll interval)."""
        return self.stamper is not None and self.stamper.running and self.stamper._busy()

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._subs) or self.forwarder is not None

    def _idle_wait(self) -> bool:
        """With nobody to deliver to, this lane stamps and looks once per poll interval instead of at every
        commit's notification: woken by each commit, every lane of every worker would stamp and read per order
        (measured: a quarter of the order rate gone with no stream open). A new subscriber wakes it at once."""
        self._wake.wait(self.poll)
        self._wake.clear()
        if self._listen_conn is not None:  # what arrived meanwhile is covered by the look that follows
            for _ in self._listen_conn.notifies(timeout=0, stop_after=100000):
                pass
        return True

    def _deliver(self) -> None:
        with self._lock:
            idle = not self._subs and self.forwarder is None
        if idle:  # nobody to deliver to: move on to the end, so a first subscriber does not wait for a backlog
            top = last_seq()
            with self._lock:
                start, self.delivered = self.delivered, max(self.delivered, top)
                late = [s for s in self._subs if s.cursor == start and start < top]
            for sub in late:
                _call(sub, sub.offer, [Gap(start, top)])
            return
        while True:
            t0 = time.perf_counter()
            if self.sources:
                where = f"topic IN ({', '.join(['%s'] * len(self.sources))})"
                raws = rendering.fetch(after=self.delivered, limit=2000, where=where, params=self.sources)
            else:
                raws = rendering.fetch(after=self.delivered, limit=2000)
            t1 = time.perf_counter()
            self._stats["fetch_s"] += t1 - t0
            if not raws:
                return
            events: list[Published] = []
            with self._lock:
                subs = list(self._subs)
                start = self.delivered
            if subs:
                memo: dict[tuple[str, int | None, int | None], bool] = {}

                def wanted(
                    topic: str,
                    account_pk: int | None,
                    market_pk: int | None,
                    subs: list[Subscription] = subs,
                    memo: dict[tuple[str, int | None, int | None], bool] = memo,
                ) -> bool:
                    key = (topic, account_pk, market_pk)
                    if key not in memo:
                        memo[key] = any(s.filter.wants(topic, account_pk, market_pk) for s in subs)
                    return memo[key]

                events = rendering.render(raws, wanted=wanted, books=self.books, positions=self.positions)
                t2 = time.perf_counter()
                self._stats["render_s"] += t2 - t1
                _hand_out(subs, events)
                self._stats["offer_s"] += time.perf_counter() - t2
            if self.forwarder is not None:
                self.forwarder.offer(raws)
            self._stats["batches"] += 1
            self._stats["rows"] += len(raws)
            self._stats["events"] += len(events)
            with self._lock:
                self.delivered = raws[-1].seq
                late = [s for s in self._subs if s not in subs and s.cursor == start]
            for sub in late:  # joined while this batch was rendered: it was not in it
                _call(sub, sub.offer, [Gap(start, raws[-1].seq)])
            if len(raws) < 2000:
                return

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._stats_at >= 10 and self._stats["batches"]:
            # Where the lane's time went (it renders each event once for every subscriber of the process).
            logger.info(
                "stream_hub_stats",
                lane=self.name,
                seconds=round(now - self._stats_at, 1),
                subscribers=len(self._subs),
                **{k: round(v, 3) if isinstance(v, float) else v for k, v in self._stats.items()},
                render_parts={
                    part: round(rendering.TIMINGS.pop((thread, part)), 3)
                    for thread, part in list(rendering.TIMINGS)
                    if thread == threading.current_thread().name
                },
            )
            self._stats = dict.fromkeys(self._stats, 0)
            self._stats["fetch_s"] = self._stats["render_s"] = self._stats["offer_s"] = 0.0
            self._stats_at = now
        if now - self._last_prune > 60:
            self._last_prune = now
            prune(older_than_seconds=settings.STREAM_RETENTION)

    def _wait(self) -> bool:
        """Until a notification or the poll interval. Returns whether there may be unstamped rows: a commit
        notified (or nothing did: look anyway); a wake-up from another process's stamping needs only a read."""
        if self._listen_conn is None:
            self._wake.wait(self.poll)
            self._wake.clear()
            return True
        channels = {n.channel for n in self._listen_conn.notifies(timeout=self.poll, stop_after=1)}
        # Under load: let the commits of one window gather, so one look covers them (a bounded delay).
        pause = self._last_look + self.window - time.monotonic()
        if channels and pause > 0:
            self._stop.wait(pause)
        # Drain what else arrived meanwhile: one look at the outbox covers them all.
        channels |= {n.channel for n in self._listen_conn.notifies(timeout=0, stop_after=1000)}
        return not channels or CHANNEL in channels

    def _close_listen(self) -> None:
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                self._listen_conn.close()
            self._listen_conn = None

    def wake(self) -> None:
        self._wake.set()


def _hand_out(subs: list[Subscription], events: list[Published]) -> None:
    """Each subscriber's share of a batch, handed to its event loop: events indexed by account first (most
    subscriptions are of a few accounts), and one wake-up per event loop for the whole batch."""
    by_account: dict[int | None, list[Published]] = {}
    for event in events:
        by_account.setdefault(event.account_pk, []).append(event)
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[Subscription, list[Published]]]] = {}
    for sub in subs:
        accounts = sub.filter.accounts
        if accounts is None:
            candidates = events
        elif len(accounts) == 1:
            candidates = by_account.get(next(iter(accounts)), [])
        else:
            candidates = sorted((e for a in accounts for e in by_account.get(a, ())), key=lambda e: e.position)
        mine = [e for e in candidates if e.seq > sub.cursor and sub.filter.wants(e.topic, e.account_pk, e.market_pk)]
        if mine:
            per_loop.setdefault(sub.loop, []).append((sub, mine))
    for loop, deliveries in per_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: its subscribers are gone
            loop.call_soon_threadsafe(_offer_all, deliveries)


def _offer_all(deliveries: list[tuple[Subscription, list[Published]]]) -> None:
    for sub, events in deliveries:
        sub.offer(events)


def _call(sub: Subscription, fn: Any, *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # its event loop is closed: the subscriber is gone
        sub.loop.call_soon_threadsafe(fn, *args)


def _listen() -> Any:
    import psycopg

    params = {
        k: v
        for k, v in connection.get_connection_params().items()
        if k not in ("cursor_factory", "context", "prepare_threshold")
    }
    conn = psycopg.connect(**params, autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")
    conn.execute(f"LISTEN {STAMPED_CHANNEL}")
    return conn


LAST_SUB = 1 << 30  # above every sub-index of one change's events


def _last_seq_closing() -> int:
    try:
        return last_seq()
    finally:
        connection.close()


def replay(flt: Filter, *, after: tuple[int, int], until: int) -> list[Published]:
    """The events ``flt`` wants with ``after`` < id <= ``until``, from the outbox (in a worker thread)."""
    where, params = flt.sql()
    out: list[Published] = []
    cursor = after[0] - 1 if after[1] else after[0]  # a sub-event id: its change may have more events to give
    try:
        while True:
            raws = rendering.fetch(after=cursor, until=until, limit=2000, where=where, params=params)
            if not raws:
                return out
            # A fresh book state: a market stream that resumes gets the whole book (``snapshot``) at its last change.
            books = rendering.BookState()
            out += [e for e in rendering.render(raws, wanted=flt.wants, books=books) if e.position > after]
            cursor = raws[-1].seq
    finally:
        connection.close()


class Stream:
    """One subscription as an async iterator. ``cursor``: the last event id before its live events (known once
    started), what a caller that shows the current state first should take that state after."""

    def __init__(self, hub: Hub, flt: Filter, after: tuple[int, int] | None) -> None:
        self.hub, self.filter, self.after = hub, flt, after
        self.sub: Subscription | None = None
        self.cursor = 0
        self._replayed = False
        self._failure: BaseException | None = None

    async def start(self) -> Stream:
        if not self.hub._ready.is_set():
            ready = await asyncio.to_thread(self.hub.wait_ready)
            if not ready:
                raise HubStopped()
        self.sub = self.hub.subscribe(self.filter, asyncio.get_running_loop())
        self.cursor = self.sub.cursor
        if self.after is None:
            # Live from now: the lane may not have delivered everything stamped yet (an idle lane looks once per
            # poll interval), and what was stamped before this subscription is not news to it.
            top = await asyncio.to_thread(_last_seq_closing)
            if top > self.cursor:
                self.cursor, self.after = top, (top, LAST_SUB)
        return self

    def close(self) -> None:
        if self.sub is not None:
            self.hub.unsubscribe(self.sub)

    def __aiter__(self) -> AsyncIterator[Published]:
        return self._events()

    async def _events(self) -> AsyncIterator[Published]:
        try:
            while True:
                for event in await self.batch():
                    yield event
        finally:
            self.close()

    async def batch(self) -> list[Published]:
        """The next events, in order: at least one (waiting for it), and every other one already queued, so a
        sender writes them together. Raises ``SlowConsumer`` / ``HubStopped`` (after the events before it)."""
        assert self.sub is not None, "start() the stream first"
        sub, flt = self.sub, self.filter
        if self._failure is not None:
            raise self._failure
        out: list[Published] = []
        if not self._replayed:
            self._replayed = True
            if self.after is not None and self.after[0] < sub.cursor:
                out += await asyncio.to_thread(replay, flt, after=self.after, until=sub.cursor)
        while not out:
            items = [await sub.queue.get()]
            while not sub.queue.empty():
                items.append(sub.queue.get_nowait())
            for item in items:
                if isinstance(item, BaseException):
                    self._failure = item
                    break
                if isinstance(item, Gap):
                    start = (item.after, 0)
                    if self.after is not None:
                        start = max(self.after, start)
                    out += await asyncio.to_thread(replay, flt, after=start, until=item.until)
                elif self.after is None or item.position > self.after:
                    out.append(item)
            if self._failure is not None and not out:
                raise self._failure
        return out

    def interrupt(self, exc: BaseException) -> None:
        """End the stream from its own event loop (its client left): ``batch`` raises ``exc``."""
        if self.sub is not None:
            self.sub.queue.put_nowait(exc)


ROW_TOPICS = frozenset({rendering.ORDER, rendering.FILL, rendering.BALANCE})
VIEW_TOPICS = frozenset({rendering.POSITION, rendering.TRADE, rendering.BOOK, rendering.TICKER})


class Hubs:
    """This process's two delivery lanes, so slow derived views never hold up the rows: ``rows`` delivers orders,
    fills and balances as the changes wrote them; ``views`` delivers what is computed at delivery (positions,
    books, tickers) and the markets' trades that share their streams. A subscription belongs to one lane (its
    topics are all of one), so each of its streams keeps one strictly increasing sequence."""

    def __init__(self) -> None:
        self.rows = Hub(name="rows", sources=("order", "fill", "balance"))
        self.views = Hub(
            name="views", sources=("trade", "market", "balance"), window=settings.STREAM_VIEWS_BATCH_WINDOW
        )
        self.views.stamper = self.rows
        self.lanes = (self.rows, self.views)

    @property
    def books(self) -> rendering.BookState:
        return self.views.books

    @property
    def forwarder(self) -> Any:
        return self.rows.forwarder

    @forwarder.setter
    def forwarder(self, value: Any) -> None:
        self.rows.forwarder = value  # order rows: what the audit hand-off reports

    def lane(self, flt: Filter) -> Hub:
        topics = frozenset(flt.topics)
        if topics <= ROW_TOPICS:
            return self.rows
        if topics <= VIEW_TOPICS:
            return self.views
        raise ValueError(f"Topics {sorted(topics)} mix {sorted(ROW_TOPICS)} with {sorted(VIEW_TOPICS)}.")

    def open(self, flt: Filter, *, after: tuple[int, int] | None = None) -> Stream:
        return self.lane(flt).open(flt, after=after)

    def events(self, flt: Filter, *, after: tuple[int, int] | None = None) -> AsyncIterator[Published]:
        return self.lane(flt).events(flt, after=after)

    def start(self) -> Hubs:
        for lane in self.lanes:
            lane.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        for lane in self.lanes:
            lane.stop(timeout)

    @property
    def running(self) -> bool:
        return all(lane.running for lane in self.lanes)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        return all(lane.wait_ready(timeout) for lane in self.lanes)

    @property
    def subscriber_count(self) -> int:
        return sum(lane.subscriber_count for lane in self.lanes)


_hub: Hubs | None = None
_hub_lock = threading.Lock()


def hub() -> Hubs:
    """This process's hub (created on first use; ``start()`` it to deliver)."""
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = Hubs()
        return _hub


def reset_hub() -> None:
    """Stop and forget this process's hub (tests)."""
    global _hub
    with _hub_lock:
        if _hub is not None:
            _hub.stop()
        _hub = None

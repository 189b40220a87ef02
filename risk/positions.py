"""Positions: what each account holds of each non-cash asset, what it cost, and what it has made.

A position is one (account, asset) for an asset that is not cash: BTC and ETH. USD and USDT are cash (USDT is
valued 1:1 with USD, as in ``orders.selectors.usd_prices``) and have no position. Everything is in USD.

* ``quantity``: the account's total balance of the asset (available + locked), as the ledger says.
* ``entry_price``: the average cost of one unit held, by the weighted average cost method: an acquisition adds
  its USD cost to the cost basis; a disposal removes the sold share of the cost basis (``cost x sold / held``),
  so it leaves the average unchanged. Fees are not part of the cost basis (the entry price is the average fill
  price); they are charged to realized PnL when paid.
* ``realized_pnl``: for every disposal, proceeds minus the cost basis of the units disposed, minus every fee
  paid on the asset's trades (buy fees included, when paid).
* ``current_price``: the reference price of the asset's USD market now; ``unrealized_pnl`` is
  ``(current_price - entry_price) x quantity``.
* ``side``: ``long`` while the account holds the asset, ``flat`` once it holds none but has realized PnL (a spot
  exchange has no shorts). A position that never realized anything and holds nothing is not listed.

What counts as an acquisition or a disposal, and at which USD value:

* A trade with the asset as base: a buy acquires ``quantity`` at ``quote_amount`` (the fill's cost), a sell
  disposes of ``quantity`` for ``quote_amount``; the fee is charged to realized PnL.
* A trade with the asset as quote (BTC in ETH-BTC): buying ETH disposes of ``quote_amount + fee`` BTC, selling
  ETH acquires ``quote_amount - fee`` BTC, both at BTC's USD value at that moment. (The fee itself is charged to
  the ETH position, at the same value.)
* Quote amounts in USDT count 1:1 as USD; in BTC they are valued at the BTC-USD reference price in force when the
  fill happened, read from the market's history (``Market.history``).
* Deposits (and positive adjustments) enter at the asset's USD reference price in force at the time, like a buy
  without a fee; withdrawals (and negative adjustments) take units out at the average cost. Neither realizes
  any PnL.

Positions are computed from the ledger and trades on every read, in a fixed number of queries however many
accounts are asked for. Values are exact ``Decimal`` until they are formatted for the response.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Q

from accounts.models import Account, ApiKey, Balance
from accounts.selectors import account_get, account_list, actor_sees_all
from exchange import errors
from ledger.models import Posting
from ledger.selectors import asset_map
from markets.models import Market
from markets.selectors import usd_prices
from orders.models import Fill, Side

ZERO = Decimal(0)
USD = "USD"
CASH_ASSETS = frozenset({"USD", "USDT"})


def position_assets() -> list[str]:
    """The assets positions are kept for: every listed asset that is not cash."""
    return sorted(set(asset_map()) - CASH_ASSETS)


@dataclass
class Position:
    account_id: uuid.UUID
    asset: str
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO  # USD cost of the units held
    realized_pnl: Decimal = ZERO
    current_price: Decimal | None = None
    # Units according to the walk over fills and transfers; equals ``quantity`` whenever the books reconcile.
    units: Decimal = ZERO

    @property
    def position_id(self) -> str:
        return f"{self.account_id}:{self.asset}"

    @property
    def side(self) -> str:
        return "long" if self.quantity > 0 else "flat"

    @property
    def entry_price(self) -> Decimal | None:
        return self.cost_basis / self.units if self.units > 0 else None

    @property
    def unrealized_pnl(self) -> Decimal:
        entry = self.entry_price
        if self.quantity == 0 or entry is None or self.current_price is None:
            return ZERO
        return (self.current_price - entry) * self.quantity

    # --- the weighted-average-cost book --------------------------------------------------------------------
    def acquire(self, units: Decimal, cost: Decimal) -> None:
        self.units += units
        self.cost_basis += cost

    def dispose(self, units: Decimal, proceeds: Decimal | None) -> None:
        """Take ``units`` out; with ``proceeds`` (a sale) the gain or loss is realized, without (a withdrawal)
        the units leave at their average cost."""
        share = self.cost_basis * units / self.units if self.units > 0 else ZERO
        share = min(share, self.cost_basis)
        self.units -= units
        self.cost_basis = self.cost_basis - share if self.units > 0 else ZERO
        if proceeds is not None:
            self.realized_pnl += proceeds - share

    def charge(self, fee_usd: Decimal) -> None:
        self.realized_pnl -= fee_usd


# UsdPriceHistory's reads on PostgreSQL, every asset's in one statement: per USD market of the assets, its last
# version before ``since`` and its versions up to ``until``, in time order (what the ORM's two queries per asset read).
_PRICE_HISTORY_SQL = """
    SELECT m.base_asset_id, h.history_date, h.reference_price
      FROM markets_market m
     CROSS JOIN LATERAL (
           (SELECT history_date, reference_price, history_id FROM markets_historicalmarket
             WHERE id = m.id AND history_date < %(since)s ORDER BY history_date DESC, history_id DESC LIMIT 1)
           UNION ALL
           (SELECT history_date, reference_price, history_id FROM markets_historicalmarket
             WHERE id = m.id AND history_date >= %(since)s AND history_date <= %(until)s)) h
     WHERE m.base_asset_id = ANY(%(assets)s) AND m.quote_asset_id = 'USD'
     ORDER BY m.base_asset_id, h.history_date, h.history_id
"""


class UsdPriceHistory:
    """USD value of one unit of an asset at a moment, from the reference-price history of its USD market.

    Loads, per asset, the versions inside the period asked for and the last one before it (two queries), then
    answers each lookup by bisection. Before the first known version the earliest one is used; an asset without
    a USD market or history is valued at its current reference price.
    """

    def __init__(
        self, *, assets: Iterable[str], since: datetime, until: datetime, current: dict[str, Decimal] | None = None
    ) -> None:
        self._dates: dict[str, list[datetime]] = {}
        self._prices: dict[str, list[Decimal]] = {}
        self._current = current if current is not None else usd_prices() or {}
        assets = list(assets)
        if connection.vendor == "postgresql":
            from exchange.db.postgresql import statements

            if not assets:
                return
            found = statements.rows(_PRICE_HISTORY_SQL, {"assets": assets, "since": since, "until": until})
            for asset, moment, price in found:
                self._dates.setdefault(asset, []).append(moment)
                self._prices.setdefault(asset, []).append(price)
            return
        markets = dict(
            Market.objects.filter(base_asset_id__in=list(assets), quote_asset_id=USD).values_list("base_asset_id", "pk")
        )
        history = Market.history.model.objects  # type: ignore[attr-defined]
        for asset, market_pk in markets.items():
            rows = list(
                history.filter(id=market_pk, history_date__gte=since, history_date__lte=until)
                .order_by("history_date", "history_id")
                .values_list("history_date", "reference_price")
            )
            before = (
                history.filter(id=market_pk, history_date__lt=since)
                .order_by("-history_date", "-history_id")
                .values_list("history_date", "reference_price")
                .first()
            )
            if before is not None:
                rows.insert(0, before)
            self._dates[asset] = [row[0] for row in rows]
            self._prices[asset] = [row[1] for row in rows]

    def at(self, asset: str, moment: datetime) -> Decimal | None:
        if asset in CASH_ASSETS:
            return Decimal(1)
        prices = self._prices.get(asset)
        if not prices:
            return self._current.get(asset)
        index = bisect.bisect_right(self._dates[asset], moment) - 1
        return prices[max(index, 0)]


@dataclass(order=True)
class _Event:
    entry_pk: int
    account_pk: int = field(compare=False)
    created_at: datetime = field(compare=False)
    # A fill: (base, quote, side, quantity, quote_amount, fee); a transfer: (asset, signed amount)
    trade: tuple[str, str, str, Decimal, Decimal, Decimal] | None = field(compare=False, default=None)
    transfer: tuple[str, Decimal] | None = field(compare=False, default=None)


# What a fill gives a position: read by ``_events`` and by ``PositionTracker`` alike.
_FILL_VALUES = (
    "trade__journal_entry_id",
    "account_id",
    "created_at",
    "market__base_asset_id",
    "market__quote_asset_id",
    "side",
    "quantity",
    "quote_amount",
    "fee",
)


def _fill_event(
    entry_pk: int,
    account_pk: int,
    created_at: datetime,
    base: str,
    quote: str,
    side: str,
    quantity: Decimal,
    quote_amount: Decimal,
    fee: Decimal,
) -> _Event:
    return _Event(entry_pk, account_pk, created_at, trade=(base, quote, side, quantity, quote_amount, fee))


def _transfer_events(postings: Iterable[tuple[int, int, str, Decimal, datetime]]) -> list[_Event]:
    """Transfers from non-trade postings (entry, account, asset, amount, entry's time). Available and locked lines
    of one entry are netted: moving funds between them changes no position."""
    net: dict[tuple[int, int, str], list[Any]] = {}
    for entry_pk, account_pk, asset, amount, created_at in postings:
        key = (entry_pk, account_pk, asset)
        if key in net:
            net[key][0] += amount
        else:
            net[key] = [amount, created_at]
    return [
        _Event(entry_pk, account_pk, created_at, transfer=(asset, amount))
        for (entry_pk, account_pk, asset), (amount, created_at) in net.items()
        if amount != 0
    ]


def _events(account_pks: list[int] | None, assets: list[str]) -> list[_Event]:
    """Fills and non-trade ledger movements of the accounts (None: every account), in ledger order. One account's
    entries are serialized by its balance row locks, so their ids (and its fills' and postings' ids) are in the
    order they happened."""
    trades = Fill.objects.all()
    postings = Posting.objects.filter(asset_id__in=assets, account__isnull=False, entry__trade__isnull=True)
    if account_pks is not None:
        trades = trades.filter(account_id__in=account_pks)
        postings = postings.filter(account_id__in=account_pks)
    events = [_fill_event(*row) for row in trades.values_list(*_FILL_VALUES).iterator(chunk_size=5000)]
    events += _transfer_events(
        postings.values_list("entry_id", "account_id", "asset_id", "amount", "entry__created_at").iterator(
            chunk_size=5000
        )
    )
    events.sort()
    return events


def positions_for(*, accounts: list[Account] | None, asset: str | None = None) -> list[Position]:
    """Positions of the given accounts (None: every account), by account then asset."""
    assets = position_assets() if asset is None else [asset]
    account_pks = None if accounts is None else [a.pk for a in accounts]
    if account_pks == []:
        return []
    events = _events(account_pks, assets)
    balances = (
        Balance.objects.filter(asset_id__in=assets)
        .select_related("account")
        .only("account__account_id", "asset_id", "available", "locked")
    )
    if account_pks is not None:
        balances = balances.filter(account_id__in=account_pks)
    uuids = {a.pk: a.account_id for a in accounts} if accounts is not None else {}
    books: dict[tuple[int, str], Position] = {}

    def book(account_pk: int, code: str) -> Position:
        key = (account_pk, code)
        if key not in books:
            books[key] = Position(account_id=uuids.get(account_pk, uuid.UUID(int=0)), asset=code)
        return books[key]

    for balance in balances:
        uuids[balance.account_id] = balance.account.account_id
        book(balance.account_id, balance.asset_id).quantity = balance.total
    if events:
        needs_rates = {e.trade[1] for e in events if e.trade} | {e.transfer[0] for e in events if e.transfer}
        history = UsdPriceHistory(
            assets=needs_rates - CASH_ASSETS,
            since=min(e.created_at for e in events),
            until=max(e.created_at for e in events),
        )
        for event in events:
            _apply(event, book, history, set(assets))
    current = usd_prices() or {}
    result = []
    for (account_pk, code), position in books.items():
        position.account_id = uuids.get(account_pk, position.account_id)
        position.current_price = current.get(code)
        if position.quantity != 0 or position.realized_pnl != 0:
            result.append(position)
    result.sort(key=lambda p: (str(p.account_id), p.asset))
    return result


def _apply(event: _Event, book: Any, history: UsdPriceHistory, assets: set[str]) -> None:
    if event.transfer is not None:
        code, amount = event.transfer
        position = book(event.account_pk, code)
        if amount > 0:
            rate = history.at(code, event.created_at)
            position.acquire(amount, amount * rate if rate is not None else ZERO)
        else:
            position.dispose(-amount, None)
        return
    assert event.trade is not None
    base, quote, side, quantity, quote_amount, fee = event.trade
    rate = history.at(quote, event.created_at)
    if rate is None:  # a quote asset without any USD price: nothing to value the fill with
        rate = ZERO
    if base in assets:
        position = book(event.account_pk, base)
        if side == Side.BUY:
            position.acquire(quantity, quote_amount * rate)
        else:
            position.dispose(quantity, quote_amount * rate)
        position.charge(fee * rate)
    if quote in assets:
        position = book(event.account_pk, quote)
        if side == Side.BUY:
            position.dispose(quote_amount + fee, (quote_amount + fee) * rate)
        else:
            position.acquire(quote_amount - fee, (quote_amount - fee) * rate)


NEAR = 50_000  # ids: accounts whose marks are this close to the newest one are read with one range together


def _mark_ranges(marks: dict[int, int], pks: list[int]) -> list[tuple[list[int], int]]:
    """Where to read the accounts' rows after their marks, as (accounts, after id) ranges: the accounts read
    recently in one range (cheap to build and to run: the newest rows of the table), each of the others from its
    own mark on through its (account, id) index. The caller drops the rows at or below an account's own mark."""
    top = max(marks[pk] for pk in pks)
    near = [pk for pk in pks if top - marks[pk] <= NEAR]
    return [(near, min(marks[pk] for pk in near)), *(([pk], marks[pk]) for pk in pks if top - marks[pk] > NEAR)]


def _after_marks(marks: dict[int, int], pks: list[int]) -> Q:
    """``_mark_ranges`` as one ORM condition."""
    condition = Q()
    for accounts, after in _mark_ranges(marks, pks):
        condition |= Q(account_id__in=accounts, id__gt=after)
    return condition


# The tracker's reads on PostgreSQL, prepared: what ``_after_marks`` reads with the ORM, as fixed statements. The
# accounts read recently share one range (``account = ANY(...) AND id > the lowest of their marks``: the newest
# rows of the table, through either index); an account whose mark is further back than NEAR is read alone from its
# mark through its (account, id) index. The trade and journal entry of each row are looked up by key (scalar
# subqueries), never joined: a generic plan cannot know that a read finds a handful of rows, and planned as a join
# (tried: one LATERAL statement for every account) it hashed them against a sequential scan of the trades or the
# postings, 5-30 ms a read and growing with the tables.
_FILLS_AFTER_SQL = """
    SELECT f.id, (SELECT t.journal_entry_id FROM orders_trade t WHERE t.id = f.trade_id), f.account_id,
           f.created_at, m.base_asset_id, m.quote_asset_id, f.side, f.quantity, f.quote_amount, f.fee
      FROM orders_fill f JOIN markets_market m ON m.id = f.market_id
     WHERE f.account_id = ANY(%s) AND f.id > %s
"""
_POSTINGS_AFTER_SQL = """
    SELECT p.id, p.entry_id, p.account_id, p.asset_id, p.amount,
           (SELECT j.created_at FROM ledger_journalentry j WHERE j.id = p.entry_id),
           (SELECT tr.id FROM orders_trade tr WHERE tr.journal_entry_id = p.entry_id)
      FROM ledger_posting p
     WHERE p.account_id = ANY(%s) AND p.id > %s
"""


def _pg_after_marks(sql: str, marks: dict[int, int], pks: list[int]) -> list[tuple[Any, ...]]:
    """``_after_marks``' rows on PostgreSQL: one prepared statement per range of ``_mark_ranges``."""
    from exchange.db.postgresql import statements

    return [row for accounts, after in _mark_ranges(marks, pks) for row in statements.rows(sql, [accounts, after])]


_BALANCES_SQL = """
    SELECT account_id, asset_id, available, locked FROM accounts_balance
     WHERE account_id = ANY(%s) AND asset_id = ANY(%s)
"""


class PositionTracker:
    """Positions kept up to date between reads, for a reader that asks again and again (the stream hub): the first
    read of an account walks its whole history, like ``positions_for``; every later one applies only the fills and
    transfers committed since, in ledger order, to the cost books it kept. Sound because one account's entries are
    serialized by its balance row locks: a fill or posting of the account committed after a read has a higher id
    than every one of the account that read saw (``_events``). Quantities and current prices are read anew every time.
    ``tests/risk/test_position_tracker.py`` checks it against ``positions_for`` step by step."""

    def __init__(self) -> None:
        self._books: dict[int, dict[str, Position]] = {}
        self._fill_mark: dict[int, int] = {}  # account pk -> the highest fill id read
        self._posting_mark: dict[int, int] = {}  # account pk -> the highest posting id read
        self._uuids: dict[int, uuid.UUID] = {}

    def positions(self, account_pks: list[int]) -> dict[tuple[int, str], Position]:
        """(account pk, asset) -> position, for every position asset of the accounts (flat ones included)."""
        assets = position_assets()
        pks = sorted(set(account_pks))
        if not pks:
            return {}
        missing_uuids = [pk for pk in pks if pk not in self._uuids]
        if missing_uuids:
            self._uuids.update(Account.objects.filter(pk__in=missing_uuids).values_list("pk", "account_id"))
        for pk in pks:
            if pk not in self._books:  # first read: from the beginning of its history
                self._books[pk], self._fill_mark[pk], self._posting_mark[pk] = {}, 0, 0
        events = self._later_events(pks, assets)
        current = usd_prices() or {}
        if events:
            events.sort()
            needs_rates = {e.trade[1] for e in events if e.trade} | {e.transfer[0] for e in events if e.transfer}
            history = UsdPriceHistory(
                assets=needs_rates - CASH_ASSETS,
                since=min(e.created_at for e in events),
                until=max(e.created_at for e in events),
                current=current,
            )
            for event in events:
                _apply(event, self._book, history, set(assets))
        if connection.vendor == "postgresql":
            from exchange.db.postgresql import statements

            balances = statements.rows(_BALANCES_SQL, [pks, list(assets)])
        else:
            balances = Balance.objects.filter(account_id__in=pks, asset_id__in=assets).values_list(
                "account_id", "asset_id", "available", "locked"
            )
        totals = {(account_pk, asset): available + locked for account_pk, asset, available, locked in balances}
        out = {}
        for pk in pks:
            for asset in assets:
                position = self._book(pk, asset)
                position.quantity = totals.get((pk, asset), ZERO)
                position.current_price = current.get(asset)
                out[(pk, asset)] = position
        return out

    def _later_events(self, pks: list[int], assets: list[str]) -> list[_Event]:
        """The accounts' fills and transfers after their marks, which move on to what was read. Each account's
        rows are found through its (account, id) indexes from its own mark, so a read costs what is new (on
        PostgreSQL prepared statements, ``_pg_after_marks``; elsewhere the ORM)."""
        fills_from = {pk: self._fill_mark[pk] for pk in pks}  # rows come in any order: compare with the start
        postings_from = {pk: self._posting_mark[pk] for pk in pks}
        if connection.vendor == "postgresql":
            fill_rows: Iterable[Any] = _pg_after_marks(_FILLS_AFTER_SQL, self._fill_mark, pks)
            posting_rows: Iterable[Any] = _pg_after_marks(_POSTINGS_AFTER_SQL, self._posting_mark, pks)
        else:
            fills, postings = _after_marks(self._fill_mark, pks), _after_marks(self._posting_mark, pks)
            fill_rows = Fill.objects.filter(fills).values_list("id", *_FILL_VALUES).iterator(chunk_size=5000)
            posting_rows = (
                Posting.objects.filter(postings)
                .values_list("id", "entry_id", "account_id", "asset_id", "amount", "entry__created_at", "entry__trade")
                .iterator(chunk_size=5000)
            )
        events = []
        for pk, *row in fill_rows:
            event = _fill_event(*row)
            if pk <= fills_from[event.account_pk]:
                continue  # read before (the query's range was another account's)
            events.append(event)
            self._fill_mark[event.account_pk] = max(self._fill_mark[event.account_pk], pk)

        def transfers() -> Iterator[tuple[int, int, str, Decimal, datetime]]:
            # Every posting moves the mark on (those of trades too, which are the fills' concern).
            for pk, entry_pk, account_pk, asset, amount, created_at, trade_pk in posting_rows:
                if pk <= postings_from[account_pk]:
                    continue
                self._posting_mark[account_pk] = max(self._posting_mark[account_pk], pk)
                if trade_pk is None and asset in assets:
                    yield entry_pk, account_pk, asset, amount, created_at

        return events + _transfer_events(transfers())

    def _book(self, account_pk: int, code: str) -> Position:
        books = self._books[account_pk]
        if code not in books:
            books[code] = Position(account_id=self._uuids.get(account_pk, uuid.UUID(int=0)), asset=code)
        return books[code]


# --- selectors used by the API ------------------------------------------------------------------------------
def position_list(*, user: Any, key: ApiKey | None, account_id: Any = None) -> list[Position]:
    """Positions of one visible account, or of every account the key may see (operators: all)."""
    if account_id:
        return positions_for(accounts=[account_get(account_id=account_id, user=user, key=key)])
    if actor_sees_all(key=key):
        return positions_for(accounts=None)
    return positions_for(accounts=list(account_list(user=user, key=key)))


def position_get(*, position_id: str, user: Any, key: ApiKey | None) -> Position:
    """One position by its id ``<account_id>:<asset>``; 404 when the account is not visible or there is no such
    position."""
    account_part, _, asset = str(position_id).rpartition(":")
    asset = asset.upper()
    not_found = errors.NotFound("Position not found.", details={"position_id": str(position_id)[:80]})
    if not account_part or asset not in position_assets():
        raise not_found
    try:
        account = account_get(account_id=account_part, user=user, key=key)
    except errors.NotFound:
        raise not_found from None
    found = positions_for(accounts=[account], asset=asset)
    if not found:
        raise not_found
    return found[0]

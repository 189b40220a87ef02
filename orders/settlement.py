"""Settlement validation: reconciliation checks proving that the book, the orders and the trades agree with the
ledger, exactly.

``ledger.reconciliation`` proves the ledger balances and the balance caches equal it; these checks (registered when
the orders app loads, so ``manage.py reconcile`` and ``GET /api/v1/reconciliation`` run them) prove:

* every trade is settled by exactly one journal entry of kind ``trade``, referencing it, whose postings are exactly
  both sides of the trade and both fees: the taker's available base and quote, the maker's locked (what it gives)
  and available (what it gets), the house mirroring whichever side it was, fee revenue the fees and the rounding;
* every trade is priced as orders/matching.py prices it: the taker's quote amount is ``price x quantity`` rounded up
  for a buyer and down for a seller, its fee rounded up; a resting order's amounts are rounded cumulatively over its
  fills as a maker, at its own price; a trade with the house is at or outside the house's spread;
* every order's fills (one per customer side of a trade, agreeing with the trade) add up to its filled quantity,
  quote and fee, and ``filled + remaining = quantity``; a resting order has something left;
* every reservation is accounted for: what an order reserved, less what its releases gave back and what it spent
  as a maker, is what it still holds, and each account's locked balance equals what its resting orders hold;
* no rejected order has a trade, a fill or an entry; every trade entry belongs to a trade;
* the book is not crossed: on each market the best resting bid is below the best resting ask, and (while the market
  trades) no resting order crosses the house's own quotes.

Everything is read in a handful of queries and compared in Python; nothing runs a query per order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q

from ledger.models import EntryKind, JournalEntry, LedgerAccountKind, Posting
from ledger.reconciliation import Report, register_check
from ledger.selectors import asset_map
from orders.matching import BPS, BUY, SELL, ceil_to, fee_of, floor_to
from orders.models import RESTING_STATUSES, Fill, Order, OrderStatus, Trade

ZERO = Decimal(0)
ORDER_ENTRY_KINDS = (EntryKind.RESERVATION, EntryKind.RELEASE)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}" if value else "0"
    return value


def _problem(report: Report, check: str, **details: Any) -> None:
    """Record a discrepancy; decimals are written plainly ("6.51", not "6.510000000000000000")."""
    report.problem(check, **{k: _plain(v) for k, v in details.items()})


@dataclass
class _Entry:
    pk: int
    entry_id: str
    kind: str
    reference_type: str
    reference_id: str
    metadata: dict[str, Any]
    # (party, kind, asset) -> sum; party is an account pk for customers, "house" or "fees"
    sums: dict[tuple[Any, str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def _load_entries() -> dict[int, _Entry]:
    """Trade, reservation and release entries, and any entry that says it belongs to an order or a trade."""
    related = JournalEntry.objects.filter(
        Q(kind__in=(EntryKind.TRADE, *ORDER_ENTRY_KINDS))
        | Q(trade__isnull=False)
        | Q(reference_type__in=("order", "trade"))
        | Q(metadata__has_key="order_id")
        | Q(metadata__has_key="trade_id")
    )
    entries = {
        pk: _Entry(pk, str(entry_id), kind, rtype, rid, meta if isinstance(meta, dict) else {})
        for pk, entry_id, kind, rtype, rid, meta in related.values_list(
            "pk", "entry_id", "kind", "reference_type", "reference_id", "metadata"
        ).iterator(chunk_size=5000)
    }
    postings = Posting.objects.filter(entry_id__in=related.values("pk")).values_list(
        "entry_id", "ledger_account__kind", "asset_id", "account_id", "amount"
    )
    for entry_pk, kind, asset, account_pk, amount in postings.iterator(chunk_size=5000):
        entry = entries.get(entry_pk)
        if entry is None:  # an entry created between the two reads
            continue
        if account_pk is not None:
            party: Any = account_pk
        elif kind == LedgerAccountKind.FEE_REVENUE:
            party, kind = "fees", ""
        else:
            party, kind = ("house" if kind == LedgerAccountKind.HOUSE_LIQUIDITY else "external"), ""
        entry.sums[(party, kind, asset)] += amount
    return entries


@dataclass
class _Order:
    pk: int
    order_id: str
    account: int
    market: int
    side: str
    order_type: str
    status: str
    quantity: Decimal | None
    price: Decimal | None
    remaining: Decimal | None
    rest_quantity: Decimal
    locked: Decimal
    maker_fee_bps: Decimal
    filled_quantity: Decimal
    filled_quote: Decimal
    fee: Decimal


ORDER_FIELDS = (
    "pk",
    "order_id",
    "account_id",
    "market_id",
    "side",
    "order_type",
    "status",
    "quantity",
    "price",
    "remaining_quantity",
    "rest_quantity",
    "locked",
    "maker_fee_bps",
    "filled_quantity",
    "filled_quote",
    "fee",
)


def _load_orders() -> dict[int, _Order]:
    """Orders that matter to settlement: anything that filled, rests, holds or was rejected."""
    qs = Order.objects.filter(
        Q(status__in=(*RESTING_STATUSES, OrderStatus.FILLED, OrderStatus.REJECTED))
        | Q(filled_quantity__gt=0)
        | Q(rest_quantity__gt=0)
        | Q(locked__gt=0)
    )
    orders = {}
    for row in qs.values_list(*ORDER_FIELDS).iterator(chunk_size=5000):
        values = list(row)
        values[1] = str(values[1])
        orders[values[0]] = _Order(*values)
    return orders


TRADE_FIELDS = (
    "pk",
    "trade_id",
    "market_id",
    "market__base_asset_id",
    "market__quote_asset_id",
    "price",
    "quantity",
    "taker_side",
    "taker_order_id",
    "taker_account_id",
    "taker_quote",
    "taker_fee",
    "taker_fee_bps",
    "maker_order_id",
    "maker_account_id",
    "maker_quote",
    "maker_fee",
    "fee_asset_id",
    "reference_price",
    "spread_bps",
    "journal_entry_id",
)


@dataclass
class _Trade:
    pk: int
    trade_id: str
    market: int
    base: str
    quote: str
    price: Decimal
    quantity: Decimal
    taker_side: str
    taker_order: int | None
    taker_account: int | None
    taker_quote: Decimal
    taker_fee: Decimal
    taker_fee_bps: Decimal
    maker_order: int | None
    maker_account: int | None
    maker_quote: Decimal
    maker_fee: Decimal
    fee_asset: str
    reference_price: Decimal
    spread_bps: Decimal
    entry_pk: int

    @property
    def maker_side(self) -> str:
        return SELL if self.taker_side == BUY else BUY

    @property
    def buyer_pays(self) -> Decimal:
        return self.taker_quote if self.taker_side == BUY else self.maker_quote

    @property
    def seller_gets(self) -> Decimal:
        return self.maker_quote if self.taker_side == BUY else self.taker_quote


def _load_trades() -> list[_Trade]:
    trades = []
    for row in Trade.objects.order_by("pk").values_list(*TRADE_FIELDS).iterator(chunk_size=5000):
        values = list(row)
        values[1] = str(values[1])
        trades.append(_Trade(*values))
    return trades


def _side_legs(account: str, side: str, trade: _Trade, *, quote: Decimal, fee: Decimal, maker: bool) -> dict:
    """The postings one customer side of a trade makes: a taker pays from available, a maker from locked."""
    pays = LedgerAccountKind.CUSTOMER_LOCKED if maker else LedgerAccountKind.CUSTOMER_AVAILABLE
    gets = LedgerAccountKind.CUSTOMER_AVAILABLE
    if side == BUY:
        return {(account, pays, trade.quote): -(quote + fee), (account, gets, trade.base): trade.quantity}
    return {(account, pays, trade.base): -trade.quantity, (account, gets, trade.quote): quote - fee}


def _expected_postings(trade: _Trade) -> dict[tuple[Any, str, str], Decimal]:
    expected: dict[tuple[Any, str, str], Decimal] = defaultdict(Decimal)
    if trade.taker_account is not None:
        for key, value in _side_legs(
            "taker", trade.taker_side, trade, quote=trade.taker_quote, fee=trade.taker_fee, maker=False
        ).items():
            expected[key] += value
    if trade.maker_account is not None:
        for key, value in _side_legs(
            "maker", trade.maker_side, trade, quote=trade.maker_quote, fee=trade.maker_fee, maker=True
        ).items():
            expected[key] += value
    rounding = trade.buyer_pays - trade.seller_gets
    fees = trade.taker_fee + trade.maker_fee + rounding
    expected[("fees", "", trade.quote)] += fees
    # The house takes whatever the customers and fees leave: it mirrors the side it was on.
    for asset in (trade.base, trade.quote):
        customers = sum(
            (v for (party, _k, a), v in expected.items() if a == asset and party in ("taker", "maker")), ZERO
        )
        fee_part = fees if asset == trade.quote else ZERO
        expected[("house", "", asset)] += -(customers + fee_part)
    return {key: value for key, value in expected.items() if value != 0}


def _check_trade_entry(report: Report, trade: _Trade, entry: _Entry | None, names: dict[str, str]) -> None:
    if entry is None:
        return
    if entry.kind != EntryKind.TRADE:
        _problem(report, "trade_entry_wrong_kind", **names, kind=entry.kind)
    if (entry.reference_type, entry.reference_id) != ("trade", trade.trade_id):
        _problem(
            report, "trade_entry_reference_mismatch", **names, reference=f"{entry.reference_type}:{entry.reference_id}"
        )
    if "trade_id" in entry.metadata and str(entry.metadata["trade_id"]) != trade.trade_id:
        _problem(report, "trade_metadata_mismatch", **names, field="trade_id", entry=entry.metadata["trade_id"])
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for (_party, _kind, asset), amount in entry.sums.items():
        totals[asset] += amount
    for asset, total in sorted(totals.items()):
        if total != 0:
            _problem(report, "trade_entry_unbalanced", **names, asset=asset, total=total)
    wanted = _expected_postings(trade)
    roles = {trade.taker_account: "taker", trade.maker_account: "maker"}
    posted: dict[tuple[Any, str, str], Decimal] = defaultdict(Decimal)
    for (party, kind, asset), value in entry.sums.items():
        party = roles.get(party, f"account {party}") if isinstance(party, int) else party
        posted[(party, kind, asset)] += value
    posted = {key: value for key, value in posted.items() if value != 0}
    for key in sorted(set(wanted) | set(posted), key=str):
        want, got = wanted.get(key, ZERO), posted.get(key, ZERO)
        if want != got:
            party, kind, asset = key
            _problem(
                report,
                "trade_postings_mismatch",
                **names,
                party=party,
                ledger_account=kind or party,
                asset=asset,
                expected=want,
                actual=got,
            )


def _check_pricing(report: Report, trade: _Trade, orders: dict[int, _Order], names: dict[str, str]) -> None:
    quantum = asset_map()[trade.quote].quantum
    rnd = ceil_to if trade.taker_side == BUY else floor_to
    expected = {
        "taker_quote": rnd(trade.price * trade.quantity, quantum),
        "taker_fee": fee_of(trade.taker_quote, trade.taker_fee_bps, quantum),
    }
    if trade.maker_order is None:  # the house's quote: the customer's amounts exactly, at or outside its spread
        expected |= {"maker_quote": trade.taker_quote, "maker_fee": ZERO}
        half = trade.reference_price * trade.spread_bps / BPS / 2
        outside = (
            trade.price >= trade.reference_price + half - quantum
            if trade.taker_side == BUY
            else trade.price <= trade.reference_price - half + quantum
        )
        if not outside:
            _problem(report, "trade_inside_house_spread", **names, price=trade.price, reference=trade.reference_price)
    if trade.taker_order is None:  # the house took a crossed order: the maker's amounts exactly, no taker fee
        expected = {"taker_quote": trade.maker_quote, "taker_fee": ZERO}
    for name, value in expected.items():
        if getattr(trade, name) != value:
            _problem(report, "trade_pricing_mismatch", **names, field=name, expected=value, actual=getattr(trade, name))
    if trade.fee_asset != trade.quote:
        _problem(
            report, "trade_pricing_mismatch", **names, field="fee_asset", expected=trade.quote, actual=trade.fee_asset
        )
    taker = orders.get(trade.taker_order) if trade.taker_order else None
    if taker is not None and taker.price is not None:
        worse = trade.price > taker.price if trade.taker_side == BUY else trade.price < taker.price
        if worse:
            _problem(report, "trade_beyond_limit", **names, price=trade.price, limit=taker.price)
    maker = orders.get(trade.maker_order) if trade.maker_order else None
    if maker is not None and maker.price != trade.price:
        _problem(report, "trade_not_at_maker_price", **names, price=trade.price, maker_price=maker.price)


def _check_maker_rounding(report: Report, order: _Order, maker_trades: list[_Trade]) -> None:
    """A resting order's maker amounts, added up fill by fill, equal its cumulative rounding."""
    if not maker_trades or order.price is None:
        return
    quantum = asset_map()[maker_trades[0].quote].quantum
    rnd = ceil_to if order.side == BUY else floor_to
    filled = quote_sum = fee_sum = ZERO
    for trade in maker_trades:
        filled += trade.quantity
        quote_sum += trade.maker_quote
        fee_sum += trade.maker_fee
        want_quote = rnd(order.price * filled, quantum)
        want_fee = fee_of(want_quote, order.maker_fee_bps, quantum)
        if (quote_sum, fee_sum) != (want_quote, want_fee):
            _problem(
                report,
                "maker_rounding_mismatch",
                order_id=order.order_id,
                trade_id=trade.trade_id,
                quote=quote_sum,
                expected_quote=want_quote,
                fee=fee_sum,
                expected_fee=want_fee,
            )
            return


def _check_order_fills(report: Report, order: _Order, fills: list[tuple[Any, ...]]) -> None:
    sums = {
        "filled_quantity": (order.filled_quantity, sum((f[2] for f in fills), ZERO)),
        "filled_quote": (order.filled_quote, sum((f[3] for f in fills), ZERO)),
        "fee": (order.fee, sum((f[4] for f in fills), ZERO)),
    }
    for name, (stored, from_fills) in sums.items():
        if stored != from_fills:
            _problem(
                report, "order_fills_mismatch", order_id=order.order_id, field=name, order=stored, fills=from_fills
            )
    if order.quantity is not None and order.remaining is not None:
        if order.filled_quantity + order.remaining != order.quantity:
            _problem(
                report,
                "order_quantity_mismatch",
                order_id=order.order_id,
                quantity=order.quantity,
                filled=order.filled_quantity,
                remaining=order.remaining,
            )
    if order.status in RESTING_STATUSES and not (order.remaining or ZERO) > 0:
        _problem(report, "resting_order_without_rest", order_id=order.order_id, status=order.status)
    if order.status == OrderStatus.FILLED and order.quantity is not None and order.remaining != 0:
        _problem(report, "filled_order_with_rest", order_id=order.order_id, remaining=order.remaining)
    if order.status not in RESTING_STATUSES and order.locked != 0:
        _problem(report, "final_order_holds_funds", order_id=order.order_id, status=order.status, locked=order.locked)


def _fill_matches_trade(report: Report, fill: tuple[Any, ...], trade: _Trade, order: _Order | None) -> None:
    _pk, order_pk, quantity, quote_amount, fee, side, liquidity, account, _trade_pk = fill
    taker = liquidity == "taker"
    want = (
        (trade.taker_order, trade.taker_account, trade.taker_side, trade.taker_quote, trade.taker_fee)
        if taker
        else (trade.maker_order, trade.maker_account, trade.maker_side, trade.maker_quote, trade.maker_fee)
    )
    got = (order_pk, account, side, quote_amount, fee)
    if want != got or quantity != trade.quantity:
        _problem(
            report,
            "fill_trade_mismatch",
            trade_id=trade.trade_id,
            order_id=order.order_id if order else order_pk,
            liquidity=liquidity,
            fill=",".join(str(_plain(v)) for v in (*got, quantity)),
            trade=",".join(str(_plain(v)) for v in (*want, trade.quantity)),
        )


def _check_reservations(
    report: Report, orders: dict[int, _Order], entries: dict[int, _Entry], trades: list[_Trade]
) -> None:
    """Per order: reserved - released - spent as a maker = what it holds. Per account: locked = what its resting
    orders hold."""
    from accounts.models import Balance
    from markets.models import Market

    by_uuid = {o.order_id: o for o in orders.values()}
    assets = dict(Market.objects.values_list("pk", "base_asset_id"))
    quotes = dict(Market.objects.values_list("pk", "quote_asset_id"))
    flows: dict[int, Decimal] = defaultdict(Decimal)
    for entry in entries.values():
        if entry.kind not in ORDER_ENTRY_KINDS:
            continue
        order = by_uuid.get(entry.reference_id) if entry.reference_type == "order" else None
        if order is None:
            _problem(report, "reservation_without_order", entry_id=entry.entry_id, kind=entry.kind)
            continue
        asset = quotes[order.market] if order.side == BUY else assets[order.market]
        locked_change = entry.sums.get((order.account, LedgerAccountKind.CUSTOMER_LOCKED, asset), ZERO)
        flows[order.pk] += locked_change
        if order.status == OrderStatus.REJECTED:
            _problem(
                report, "rejected_order_has_entry", order_id=order.order_id, entry_id=entry.entry_id, kind=entry.kind
            )
    for trade in trades:
        if trade.maker_order is not None:
            spent = trade.maker_quote + trade.maker_fee if trade.maker_side == BUY else trade.quantity
            flows[trade.maker_order] -= spent
    for order in orders.values():
        if flows.get(order.pk, ZERO) != order.locked:
            _problem(
                report,
                "order_reservation_mismatch",
                order_id=order.order_id,
                holds=order.locked,
                reserved_less_released_and_spent=flows.get(order.pk, ZERO),
            )
    held: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for order in orders.values():
        if order.status in RESTING_STATUSES:
            asset = quotes[order.market] if order.side == BUY else assets[order.market]
            held[(order.account, asset)] += order.locked
    locked_rows = {
        (a, asset): value
        for a, asset, value in Balance.objects.filter(Q(locked__gt=0) | Q(locked__lt=0)).values_list(
            "account_id", "asset_id", "locked"
        )
    }
    for key in sorted(set(held) | set(locked_rows)):
        if held.get(key, ZERO) != locked_rows.get(key, ZERO):
            _problem(
                report,
                "locked_balance_mismatch",
                account=key[0],
                asset=key[1],
                locked=locked_rows.get(key, ZERO),
                resting_orders_hold=held.get(key, ZERO),
            )


def _check_book_not_crossed(report: Report) -> None:
    from markets.ladder import house_ladder
    from markets.market_data import house_inventory
    from markets.models import Market, MarketStatus
    from markets.services import ladder_settings

    inventory = house_inventory(*asset_map())
    for market in Market.objects.all():
        resting = Order.objects.filter(market=market, status__in=RESTING_STATUSES)
        best_bid = resting.filter(side=BUY).order_by("-price").values_list("price", flat=True).first()
        best_ask = resting.filter(side=SELL).order_by("price").values_list("price", flat=True).first()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            _problem(report, "book_crossed", symbol=market.symbol, best_bid=best_bid, best_ask=best_ask)
        if market.status != MarketStatus.TRADING:
            continue
        bids, asks = house_ladder(
            ladder_settings(market),
            base_inventory=inventory.get(market.base_asset_id, ZERO),
            quote_inventory=inventory.get(market.quote_asset_id, ZERO),
        )
        if best_bid is not None and asks and best_bid >= asks[0][0]:
            _problem(report, "book_crossed_house", symbol=market.symbol, best_bid=best_bid, house_ask=asks[0][0])
        if best_ask is not None and bids and best_ask <= bids[0][0]:
            _problem(report, "book_crossed_house", symbol=market.symbol, best_ask=best_ask, house_bid=bids[0][0])


@register_check
def check_settlement(report: Report) -> None:
    orders = _load_orders()
    entries = _load_entries()
    trades = _load_trades()
    trade_by_pk = {t.pk: t for t in trades}
    fills = list(
        Fill.objects.order_by("pk")
        .values_list("pk", "order_id", "quantity", "quote_amount", "fee", "side", "liquidity", "account_id", "trade_id")
        .iterator(chunk_size=5000)
    )
    missing = {f[1] for f in fills if f[1] not in orders} | {
        pk for t in trades for pk in (t.taker_order, t.maker_order) if pk is not None and pk not in orders
    }
    if missing:  # orders with fills are always loaded; only a concurrent write can miss one
        for row in Order.objects.filter(pk__in=missing).values_list(*ORDER_FIELDS):
            values = list(row)
            values[1] = str(values[1])
            orders[values[0]] = _Order(*values)

    maker_trades: dict[int, list[_Trade]] = defaultdict(list)
    linked = set()
    for trade in trades:
        names = {"trade_id": trade.trade_id}
        for role, pk in (("taker_order_id", trade.taker_order), ("maker_order_id", trade.maker_order)):
            if pk is not None and pk in orders:
                names[role] = orders[pk].order_id
        entry = entries.get(trade.entry_pk)
        linked.add(trade.entry_pk)
        if entry is not None:
            names["entry_id"] = entry.entry_id
        for pk in (trade.taker_order, trade.maker_order):
            if pk is not None and orders.get(pk) and orders[pk].status == OrderStatus.REJECTED:
                _problem(report, "rejected_order_has_trade", order_id=orders[pk].order_id, **names)
        _check_pricing(report, trade, orders, names)
        _check_trade_entry(report, trade, entry, names)
        if trade.maker_order is not None:
            maker_trades[trade.maker_order].append(trade)

    fills_by_order: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    fills_by_trade: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for fill in fills:
        fills_by_order[fill[1]].append(fill)
        fills_by_trade[fill[8]].append(fill)
        trade = trade_by_pk.get(fill[8])
        if trade is not None:
            _fill_matches_trade(report, fill, trade, orders.get(fill[1]))
    for trade in trades:
        want = (trade.taker_order is not None) + (trade.maker_order is not None)
        if len(fills_by_trade.get(trade.pk, [])) != want:
            _problem(
                report,
                "trade_fill_count",
                trade_id=trade.trade_id,
                expected=want,
                actual=len(fills_by_trade.get(trade.pk, [])),
            )

    for order in orders.values():
        if order.status == OrderStatus.REJECTED:
            if fills_by_order.get(order.pk):
                _problem(report, "rejected_order_has_fill", order_id=order.order_id)
            continue
        _check_order_fills(report, order, fills_by_order.get(order.pk, []))
        _check_maker_rounding(report, order, maker_trades.get(order.pk, []))

    trade_ids = {t.trade_id for t in trades}
    for entry in entries.values():
        if entry.pk in linked or entry.kind in ORDER_ENTRY_KINDS:
            continue
        claimed = str(entry.metadata.get("trade_id") or (entry.reference_id if entry.reference_type == "trade" else ""))
        if claimed in trade_ids:
            _problem(report, "trade_settled_twice", trade_id=claimed, entry_id=entry.entry_id, kind=entry.kind)
        elif entry.kind == EntryKind.TRADE or claimed:
            _problem(report, "trade_entry_without_trade", entry_id=entry.entry_id, kind=entry.kind, trade_id=claimed)
        elif entry.reference_type == "order" or "order_id" in entry.metadata:
            _problem(report, "order_entry_unexpected", entry_id=entry.entry_id, kind=entry.kind)

    _check_reservations(report, orders, entries, trades)
    _check_book_not_crossed(report)

    report.checks["orders_settled"] = sum(1 for o in orders.values() if o.filled_quantity > 0)
    report.checks["resting_orders"] = sum(1 for o in orders.values() if o.status in RESTING_STATUSES)
    report.checks["rejected_orders"] = sum(1 for o in orders.values() if o.status == OrderStatus.REJECTED)
    report.checks["trades"] = len(trades)
    report.checks["fills"] = len(fills)
    report.checks["trade_entries"] = sum(1 for e in entries.values() if e.kind == EntryKind.TRADE)

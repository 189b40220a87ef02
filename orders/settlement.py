"""Settlement validation: reconciliation checks proving that every fill settled exactly once, exactly as priced.

``ledger.reconciliation`` proves the ledger balances and the balance caches equal it; these checks (registered
when the orders app loads, so ``manage.py reconcile`` and ``GET /api/v1/reconciliation`` run them) prove that the
orders and trades agree with the ledger:

* every filled order has its trades (a market order exactly one), and its ``filled_quantity``, ``filled_quote``,
  ``fee``, ``fee_asset`` and ``average_price`` equal what its trades add up to; the trades carry the order's
  account, market and side;
* every trade is priced as ``orders.pricing`` prices it: the price is the ask (buy) or bid (sell) of its recorded
  reference price and spread, ``quote_amount`` is ``quantity x price`` rounded up for a buy and down for a sell
  to the quote asset's unit, and the fee is ``quote_amount x fee_bps`` rounded up;
* every trade is settled by exactly one journal entry of kind ``trade`` that balances per asset, whose reference
  and metadata name that trade and its order, and whose postings are exactly the fill: the customer's base
  changes by +-quantity and quote by -(quote_amount + fee) for a buy / +(quote_amount - fee) for a sell, the
  house liquidity mirrors the trade (-+quantity, +-quote_amount), fee revenue receives the fee, and nothing else
  is touched;
* every trade entry belongs to an existing trade (no orphan or second settlement of one trade);
* no rejected order has a trade or a journal entry (found by ``metadata.order_id`` or an ``order`` reference).

The check reads everything in a handful of queries (trades, orders, order-related entries, their postings) and
compares in Python; it never runs a query per order.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q

from ledger.models import EntryKind, JournalEntry, LedgerAccountKind, Posting
from ledger.reconciliation import Report, register_check
from ledger.selectors import asset_map
from markets.pricing import BPS, ceil_to, price_fill, quote_prices
from orders.models import Order, OrderStatus, OrderType, Side, Trade

ZERO = Decimal(0)
FILLED_STATUSES = (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)
_PARTY: dict[str, str] = {
    LedgerAccountKind.CUSTOMER_AVAILABLE: "customer",
    LedgerAccountKind.CUSTOMER_LOCKED: "customer",
    LedgerAccountKind.HOUSE_LIQUIDITY: "house",
    LedgerAccountKind.FEE_REVENUE: "fees",
    LedgerAccountKind.EXTERNAL: "external",
}


@dataclass
class _Trade:
    pk: int
    trade_id: str
    order_pk: int
    order_id: str
    order_status: str
    order_account: int
    order_market: int
    order_side: str
    account: int
    market: int
    base: str
    quote: str
    side: str
    quantity: Decimal
    price: Decimal
    quote_amount: Decimal
    fee: Decimal
    fee_asset: str
    reference_price: Decimal
    spread_bps: Decimal
    fee_bps: Decimal
    entry_pk: int


@dataclass
class _Entry:
    pk: int
    entry_id: str
    kind: str
    reference_type: str
    reference_id: str
    metadata: dict[str, Any]
    # (party, asset) -> sum, and the customer accounts the entry touches
    sums: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    asset_totals: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    customers: set[int] = field(default_factory=set)


def _problem(report: Report, check: str, **details: Any) -> None:
    """Record a discrepancy; decimals are written plainly ("6.51", not "6.510000000000000000")."""
    plain = {k: (f"{v.normalize():f}" if v else "0") if isinstance(v, Decimal) else v for k, v in details.items()}
    report.problem(check, **plain)


def _load_trades() -> list[_Trade]:
    fields = (
        "pk",
        "trade_id",
        "order_id",
        "order__order_id",
        "order__status",
        "order__account_id",
        "order__market_id",
        "order__side",
        "account_id",
        "market_id",
        "market__base_asset_id",
        "market__quote_asset_id",
        "side",
        "quantity",
        "price",
        "quote_amount",
        "fee",
        "fee_asset_id",
        "reference_price",
        "spread_bps",
        "fee_bps",
        "journal_entry_id",
    )
    trades = []
    for row in Trade.objects.order_by("pk").values_list(*fields).iterator(chunk_size=5000):
        values = list(row)
        values[1], values[3] = str(values[1]), str(values[3])
        trades.append(_Trade(*values))
    return trades


def _order_related_entries() -> Any:
    """Entries that settle a trade or say they belong to an order or a trade, whatever their kind."""
    return JournalEntry.objects.filter(
        Q(kind=EntryKind.TRADE)
        | Q(trade__isnull=False)
        | Q(reference_type__in=("order", "trade"))
        | Q(metadata__has_key="order_id")
        | Q(metadata__has_key="trade_id")
    )


def _load_entries() -> dict[int, _Entry]:
    related = _order_related_entries()
    entries = {
        pk: _Entry(
            pk, str(entry_id), kind, reference_type, reference_id, metadata if isinstance(metadata, dict) else {}
        )
        for pk, entry_id, kind, reference_type, reference_id, metadata in related.values_list(
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
        entry.sums[(_PARTY[kind], asset)] += amount
        entry.asset_totals[asset] += amount
        if account_pk is not None:
            entry.customers.add(account_pk)
    return entries


def _referenced_order(entry: _Entry) -> str | None:
    value = entry.metadata.get("order_id")
    if value is None and entry.reference_type == "order":
        value = entry.reference_id
    return None if value in (None, "") else str(value)


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _expected_postings(trade: _Trade) -> dict[tuple[str, str], Decimal]:
    buy = trade.side == Side.BUY
    base_change = trade.quantity if buy else -trade.quantity
    customer_quote = -(trade.quote_amount + trade.fee) if buy else trade.quote_amount - trade.fee
    expected = {
        ("customer", trade.base): base_change,
        ("customer", trade.quote): customer_quote,
        ("house", trade.base): -base_change,
        ("house", trade.quote): trade.quote_amount if buy else -trade.quote_amount,
        ("fees", trade.quote): trade.fee,
    }
    return {key: value for key, value in expected.items() if value != 0}


def _check_pricing(report: Report, trade: _Trade, names: dict[str, str]) -> None:
    quantum = asset_map()[trade.quote].quantum
    bid, ask = quote_prices(reference=trade.reference_price, spread_bps=trade.spread_bps, quote_quantum=quantum)
    fill = price_fill(
        side=trade.side, quantity=trade.quantity, price=trade.price, fee_bps=trade.fee_bps, quote_quantum=quantum
    )
    # Each figure against its own inputs, so one wrong figure is one discrepancy: the price against the reference
    # and spread, the quote amount against quantity x price, the fee (as price_fill computes it) against the
    # quote amount.
    expected = {
        "price": ask if trade.side == Side.BUY else bid,
        "quote_amount": fill.quote_amount,
        "fee": ceil_to(trade.quote_amount * trade.fee_bps / BPS, quantum),
    }
    actual = {"price": trade.price, "quote_amount": trade.quote_amount, "fee": trade.fee}
    for name, value in expected.items():
        if actual[name] != value:
            _problem(report, "trade_pricing_mismatch", **names, field=name, expected=value, actual=actual[name])
    if trade.fee_asset != trade.quote:
        _problem(
            report, "trade_pricing_mismatch", **names, field="fee_asset", expected=trade.quote, actual=trade.fee_asset
        )


def _check_trade_entry(report: Report, trade: _Trade, entry: _Entry | None, names: dict[str, str]) -> None:
    if entry is None:  # the trade's own entry is always loaded; only a concurrent insert can miss it
        return
    if entry.kind != EntryKind.TRADE:
        _problem(report, "trade_entry_wrong_kind", **names, kind=entry.kind)
    if (entry.reference_type, entry.reference_id) != ("trade", trade.trade_id):
        _problem(
            report, "trade_entry_reference_mismatch", **names, reference=f"{entry.reference_type}:{entry.reference_id}"
        )
    meta = entry.metadata
    for key, expected in (("order_id", trade.order_id), ("trade_id", trade.trade_id)):
        if key in meta and str(meta[key]) != expected:
            _problem(report, "trade_metadata_mismatch", **names, field=key, trade=expected, entry=meta[key])
    for key in ("quantity", "price", "quote_amount", "fee"):
        if key in meta and _decimal(meta[key]) != getattr(trade, key):
            _problem(report, "trade_metadata_mismatch", **names, field=key, trade=getattr(trade, key), entry=meta[key])
    if "side" in meta and meta["side"] != trade.side:
        _problem(report, "trade_metadata_mismatch", **names, field="side", trade=trade.side, entry=meta["side"])
    for asset, total in sorted(entry.asset_totals.items()):
        if total != 0:
            _problem(report, "trade_entry_unbalanced", **names, asset=asset, total=total)
    if entry.customers - {trade.account}:
        _problem(
            report,
            "trade_postings_mismatch",
            **names,
            party="other_customer",
            accounts=sorted(entry.customers - {trade.account}),
        )
    wanted = _expected_postings(trade)
    posted = {key: value for key, value in entry.sums.items() if value != 0}
    for party, asset in sorted(set(wanted) | set(posted)):
        want, got = wanted.get((party, asset), ZERO), posted.get((party, asset), ZERO)
        if want != got:
            _problem(report, "trade_postings_mismatch", **names, party=party, asset=asset, expected=want, actual=got)


def _check_order(report: Report, order: tuple[Any, ...], fills: list[_Trade]) -> None:
    (
        _pk,
        order_id,
        status,
        order_type,
        _account,
        _market,
        _side,
        filled_quantity,
        filled_quote,
        fee,
        fee_asset,
        average_price,
    ) = order
    if status in FILLED_STATUSES and not fills:
        _problem(report, "filled_order_without_trade", order_id=order_id, status=status)
        return
    if status == OrderStatus.FILLED and order_type == OrderType.MARKET and len(fills) != 1:
        _problem(
            report,
            "order_trade_count",
            order_id=order_id,
            expected=1,
            actual=len(fills),
            trade_ids=",".join(t.trade_id for t in fills),
        )
    sums = {
        "filled_quantity": (filled_quantity, sum((t.quantity for t in fills), ZERO)),
        "filled_quote": (filled_quote, sum((t.quote_amount for t in fills), ZERO)),
        "fee": (fee, sum((t.fee for t in fills), ZERO)),
    }
    if len(fills) == 1:
        sums["average_price"] = (average_price, fills[0].price)
    for name, (stored, from_trades) in sums.items():
        if stored != from_trades:
            _problem(
                report,
                "order_fills_mismatch",
                order_id=order_id,
                field=name,
                order=stored,
                trades=from_trades,
                trade_ids=",".join(t.trade_id for t in fills),
            )
    fee_assets = {t.fee_asset for t in fills}
    if fills and fee_assets != {fee_asset}:
        _problem(
            report,
            "order_fills_mismatch",
            order_id=order_id,
            field="fee_asset",
            order=fee_asset,
            trades=",".join(sorted(fee_assets)),
        )


@register_check
def check_settlement(report: Report) -> None:
    trades = _load_trades()
    entries = _load_entries()
    orders: dict[int, tuple[Any, ...]] = {
        row[0]: (row[0], str(row[1]), *row[2:])
        for row in Order.objects.filter(
            Q(status__in=(*FILLED_STATUSES, OrderStatus.REJECTED)) | Q(filled_quantity__gt=0) | Q(fee__gt=0)
        )
        .values_list(
            "pk",
            "order_id",
            "status",
            "order_type",
            "account_id",
            "market_id",
            "side",
            "filled_quantity",
            "filled_quote",
            "fee",
            "fee_asset_id",
            "average_price",
        )
        .iterator(chunk_size=5000)
    }
    rejected = {order[1] for order in orders.values() if order[2] == OrderStatus.REJECTED}
    fills: dict[int, list[_Trade]] = defaultdict(list)
    trade_by_id = {trade.trade_id: trade for trade in trades}

    # Trades: priced right, settled by their entry, consistent with their order.
    for trade in trades:
        names = {"trade_id": trade.trade_id, "order_id": trade.order_id}
        entry = entries.get(trade.entry_pk)
        if entry is not None:
            names["entry_id"] = entry.entry_id
        fills[trade.order_pk].append(trade)
        if trade.order_status == OrderStatus.REJECTED:
            _problem(report, "rejected_order_has_trade", **names)
        for name, on_trade, on_order in (
            ("account", trade.account, trade.order_account),
            ("market", trade.market, trade.order_market),
            ("side", trade.side, trade.order_side),
        ):
            if on_trade != on_order:
                _problem(report, "trade_order_mismatch", **names, field=name, trade=on_trade, order=on_order)
        _check_pricing(report, trade, names)
        _check_trade_entry(report, trade, entry, names)

    # Orders: a filled order's figures are what its trades add up to. An order with trades but no fills recorded
    # (not in ``orders``: not filled, nothing filled) is checked against zero.
    for order_pk in sorted(set(orders) | set(fills)):
        order: tuple[Any, ...] | None = orders.get(order_pk)
        if order is None:
            first = fills[order_pk][0]
            order = (order_pk, first.order_id, first.order_status, "", 0, 0, "", ZERO, ZERO, ZERO, None, None)
        if order[2] != OrderStatus.REJECTED:  # a rejected order's trades are reported above
            _check_order(report, order, fills.get(order_pk, []))

    # Entries: each trade entry settles a trade, once; no entry belongs to a rejected order.
    linked = {trade.entry_pk for trade in trades}
    unknown_orders: dict[str, list[_Entry]] = defaultdict(list)
    known_orders = {order[1] for order in orders.values()}
    for entry in entries.values():
        if entry.pk not in linked:
            claimed = str(
                entry.metadata.get("trade_id") or (entry.reference_id if entry.reference_type == "trade" else "")
            )
            if claimed in trade_by_id:
                _problem(
                    report,
                    "trade_settled_twice",
                    trade_id=claimed,
                    entry_id=entry.entry_id,
                    kind=entry.kind,
                    settled_by=_entry_id_of(entries, trade_by_id[claimed]),
                )
            elif entry.kind == EntryKind.TRADE or claimed:
                named = {k: v for k, v in (("trade_id", claimed), ("order_id", _referenced_order(entry))) if v}
                _problem(report, "trade_entry_without_trade", entry_id=entry.entry_id, kind=entry.kind, **named)
        order_id = _referenced_order(entry)
        if order_id is None:
            continue
        if order_id in rejected:
            _problem(report, "rejected_order_has_entry", order_id=order_id, entry_id=entry.entry_id, kind=entry.kind)
        elif order_id not in known_orders:
            unknown_orders[order_id].append(entry)
    if unknown_orders:
        parsed = {value: _as_uuid(value) for value in unknown_orders}
        statuses = {
            str(order_id): status
            for order_id, status in Order.objects.filter(
                order_id__in=[u for u in parsed.values() if u is not None]
            ).values_list("order_id", "status")
        }
        for order_id, referencing in sorted(unknown_orders.items()):
            found = statuses.get(str(parsed[order_id]))
            status = {"status": found} if found else {}
            check = "entry_order_not_filled" if status else "entry_order_unknown"
            for entry in referencing:
                _problem(report, check, order_id=order_id, entry_id=entry.entry_id, kind=entry.kind, **status)

    report.checks["orders_settled"] = sum(1 for order in orders.values() if order[2] in FILLED_STATUSES)
    report.checks["rejected_orders"] = len(rejected)
    report.checks["trades"] = len(trades)
    report.checks["trade_entries"] = sum(1 for entry in entries.values() if entry.kind == EntryKind.TRADE)


def _entry_id_of(entries: dict[int, _Entry], trade: _Trade) -> str | None:
    entry = entries.get(trade.entry_pk)
    return entry.entry_id if entry else None

"""Our orders, fills, trades and markets in Binance's shapes (field names, enums, numbers as strings)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from exchange.api import format_amount
from ledger.selectors import asset_map
from markets.models import Market, MarketStatus
from orders.matching import EndReason
from orders.models import Fill, Order, OrderStatus, OrderType, Side

MAX_QTY = Decimal("1e15")
STATUS = {
    OrderStatus.OPEN: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELLED: "CANCELED",
    OrderStatus.REJECTED: "REJECTED",
    OrderStatus.EXPIRED: "EXPIRED",
}
STP_MODES = ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]


def ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def decimals(asset: str) -> int:
    return asset_map()[asset].decimals


def num(value: Decimal | None, places: int) -> str:
    return format_amount(value if value is not None else Decimal(0), places) or "0"


def binance_symbol(market: Market) -> str:
    return f"{market.base_asset_id}{market.quote_asset_id}"


def order_type(order: Order) -> str:
    if order.order_type == OrderType.MARKET:
        return "MARKET"
    return "LIMIT_MAKER" if order.post_only else "LIMIT"


def order_status(order: Order) -> str:
    if order.status == OrderStatus.EXPIRED and order.end_reason == EndReason.SELF_TRADE_PREVENTION:
        return "EXPIRED_IN_MATCH"
    return STATUS.get(order.status, order.status.upper())


def _common(order: Order, market: Market) -> dict[str, Any]:
    base, quote = decimals(market.base_asset_id), decimals(market.quote_asset_id)
    quantity = order.quantity if order.quantity is not None else order.filled_quantity
    return {
        "symbol": binance_symbol(market),
        "orderId": order.pk,
        "orderListId": -1,
        "clientOrderId": order.client_order_id or "",
        "price": num(order.price, quote),
        "origQty": num(quantity, base),
        "executedQty": num(order.filled_quantity, base),
        "origQuoteOrderQty": num(order.quote_quantity, quote),
        "cummulativeQuoteQty": num(order.filled_quote, quote),
        "status": order_status(order),
        "timeInForce": (order.time_in_force or "gtc").upper(),
        "type": order_type(order),
        "side": order.side.upper(),
    }


def order_placed(order: Order, market: Market, fills: list[Fill], resp_type: str) -> dict[str, Any]:
    """The answer to a new order: ACK, RESULT or FULL (with fills and their commission)."""
    transact = ms(order.updated_at or order.created_at)
    if resp_type == "ACK":
        return {
            "symbol": binance_symbol(market),
            "orderId": order.pk,
            "orderListId": -1,
            "clientOrderId": order.client_order_id or "",
            "transactTime": transact,
        }
    body = _common(order, market)
    body = {
        **{k: body[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId")},
        "transactTime": transact,
        **{k: v for k, v in body.items() if k not in ("symbol", "orderId", "orderListId", "clientOrderId")},
    }
    body["workingTime"] = ms(order.created_at) if order.status != OrderStatus.REJECTED else -1
    body["selfTradePreventionMode"] = order.self_trade_prevention.upper()
    if resp_type == "FULL":
        body["fills"] = [fill_json(fill, market) for fill in fills]
    return body


def fill_json(fill: Fill, market: Market) -> dict[str, Any]:
    base, quote = decimals(market.base_asset_id), decimals(market.quote_asset_id)
    return {
        "price": num(fill.price, quote),
        "qty": num(fill.quantity, base),
        "commission": num(fill.fee, decimals(fill.fee_asset_id)),
        "commissionAsset": fill.fee_asset_id,
        "tradeId": fill.trade_id,
    }


def order_json(order: Order, market: Market) -> dict[str, Any]:
    """GET /api/v3/order, openOrders, allOrders."""
    body = _common(order, market)
    body.update(
        {
            "stopPrice": num(Decimal(0), decimals(market.quote_asset_id)),
            "icebergQty": num(Decimal(0), decimals(market.base_asset_id)),
            "time": ms(order.created_at),
            "updateTime": ms(order.updated_at),
            "isWorking": order.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
            "workingTime": ms(order.created_at),
            "selfTradePreventionMode": order.self_trade_prevention.upper(),
        }
    )
    return body


def order_cancelled(order: Order, market: Market) -> dict[str, Any]:
    body = _common(order, market)
    client = body.pop("clientOrderId")
    return {
        "symbol": body.pop("symbol"),
        "origClientOrderId": client,
        "orderId": body.pop("orderId"),
        "orderListId": body.pop("orderListId"),
        "clientOrderId": client,
        "transactTime": ms(order.updated_at),
        **body,
        "selfTradePreventionMode": order.self_trade_prevention.upper(),
    }


def my_trade_json(fill: Fill, market: Market) -> dict[str, Any]:
    base, quote = decimals(market.base_asset_id), decimals(market.quote_asset_id)
    return {
        "symbol": binance_symbol(market),
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": num(fill.price, quote),
        "qty": num(fill.quantity, base),
        "quoteQty": num(fill.quote_amount, quote),
        "commission": num(fill.fee, decimals(fill.fee_asset_id)),
        "commissionAsset": fill.fee_asset_id,
        "time": ms(fill.created_at),
        "isBuyer": fill.side == Side.BUY,
        "isMaker": fill.liquidity == "maker",
        "isBestMatch": True,
    }


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def symbol_info(market: Market) -> dict[str, Any]:
    """One market as exchangeInfo lists it: its rules as Binance's filters."""
    base, quote = decimals(market.base_asset_id), decimals(market.quote_asset_id)
    # The largest price and quantity the notional maximum admits (at the smallest quantity, the smallest tick).
    max_price = _floor(min(market.max_notional / market.min_quantity, MAX_QTY), market.price_tick)
    max_qty = _floor(min(market.max_notional / market.price_tick, MAX_QTY), market.quantity_step)
    lot = {
        "minQty": num(market.min_quantity, base),
        "maxQty": num(max_qty, base),
        "stepSize": num(market.quantity_step, base),
    }
    return {
        "symbol": binance_symbol(market),
        "status": "TRADING" if market.status == MarketStatus.TRADING else "HALT",
        "baseAsset": market.base_asset_id,
        "baseAssetPrecision": base,
        "quoteAsset": market.quote_asset_id,
        "quotePrecision": quote,
        "quoteAssetPrecision": quote,
        "baseCommissionPrecision": base,
        "quoteCommissionPrecision": quote,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": num(market.price_tick, quote),
                "maxPrice": num(max_price, quote),
                "tickSize": num(market.price_tick, quote),
            },
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            {
                "filterType": "MIN_NOTIONAL",
                "minNotional": num(market.min_notional, quote),
                "applyToMarket": True,
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": num(market.min_notional, quote),
                "applyMinToMarket": True,
                "maxNotional": num(market.max_notional, quote),
                "applyMaxToMarket": True,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_TAKER",
        "allowedSelfTradePreventionModes": STP_MODES,
    }

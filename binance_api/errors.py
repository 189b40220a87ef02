"""Binance's error answers: ``{"code": -NNNN, "msg": "..."}`` with its codes, messages and HTTP statuses.

Our domain errors (exchange/errors.py) and order rejections (``RejectReason``, orders/matching.py) are translated
here, in one table each, so a client written for Binance (ccxt, python-binance) sees the codes it knows: ccxt maps
the messages and codes to its own exception classes (InsufficientFunds, OrderNotFound, InvalidOrder, ...).
"""

from __future__ import annotations

from exchange import errors
from orders.matching import RejectReason


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, *, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status, self.retry_after = code, msg, status, retry_after

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
ACCOUNT_DISABLED = "This action is disabled on this account."


def unknown(msg: str = "An unknown error occurred while processing the request.") -> BinanceError:
    return BinanceError(-1000, msg, status=500)


def unauthorized() -> BinanceError:
    return BinanceError(-1002, "You are not authorized to execute this request.", status=401)


def too_much_weight(limit: int, retry_after: int) -> BinanceError:
    return BinanceError(
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. Please use WebSocket "
        "Streams for live updates to avoid polling the API.",
        status=429,
        retry_after=retry_after,
    )


def too_many_orders(limit: int, interval: str, retry_after: int) -> BinanceError:
    return BinanceError(
        -1015,
        f"Too many new orders; current limit is {limit} orders per {interval}.",
        status=429,
        retry_after=retry_after,
    )


def busy() -> BinanceError:
    return BinanceError(
        -1008, "Server is currently overloaded with other requests. Please try again in a few minutes.", status=503
    )


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}")


def invalid(what: str) -> BinanceError:
    return BinanceError(-1013, f"Invalid {what}.")


def timestamp_outside_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def timestamp_ahead() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def illegal_chars(param: str, legal: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{param}'; legal range is '{legal}'.")


def duplicate_param(param: str) -> BinanceError:
    return BinanceError(-1101, f"Duplicate values for parameter '{param}'.")


def mandatory(param: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def not_required(param: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{param}' sent when not required.")


def too_much_precision(param: str) -> BinanceError:
    return BinanceError(-1111, f"Parameter '{param}' has too much precision.")


def invalid_tif() -> BinanceError:
    return BinanceError(-1115, "Invalid timeInForce.")


def invalid_order_type() -> BinanceError:
    return BinanceError(-1116, "Invalid orderType.")


def invalid_side() -> BinanceError:
    return BinanceError(-1117, "Invalid side.")


def invalid_interval() -> BinanceError:
    return BinanceError(-1120, "Invalid interval.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def bad_recv_window() -> BinanceError:
    return BinanceError(-1131, "recvWindow must be less than 60000")


def new_order_rejected(msg: str) -> BinanceError:
    return BinanceError(-2010, msg)


def cancel_rejected() -> BinanceError:
    return BinanceError(-2011, "Unknown order sent.")


def no_such_order() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


def bad_api_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", status=401)


def rejected_api_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)


# --- order rejections: every RejectReason, and only these --------------------------------------------------------
def rejection(reason: str, *, market_order: bool) -> BinanceError:
    lot = "MARKET_LOT_SIZE" if market_order else "LOT_SIZE"
    table: dict[str, BinanceError] = {
        RejectReason.INSUFFICIENT_BALANCE: new_order_rejected(INSUFFICIENT_BALANCE),
        RejectReason.INSUFFICIENT_LIQUIDITY: new_order_rejected(
            "Order book liquidity is less than LOT_SIZE filter minimum quantity."
        ),
        RejectReason.ACCOUNT_SUSPENDED: new_order_rejected(ACCOUNT_DISABLED),
        RejectReason.ACCOUNT_CLOSED: new_order_rejected(ACCOUNT_DISABLED),
        RejectReason.MARKET_HALTED: new_order_rejected("Market is closed."),
        RejectReason.INVALID_QUANTITY_STEP: filter_failure(lot),
        RejectReason.BELOW_MIN_QUANTITY: filter_failure(lot),
        RejectReason.INVALID_PRICE_TICK: filter_failure("PRICE_FILTER"),
        RejectReason.BELOW_MIN_NOTIONAL: filter_failure("NOTIONAL"),
        RejectReason.ABOVE_MAX_NOTIONAL: filter_failure("NOTIONAL"),
        RejectReason.POST_ONLY_WOULD_TAKE: new_order_rejected("Order would immediately match and take."),
    }
    return table.get(reason) or new_order_rejected(f"Order rejected: {reason}.")


# Our parameter names -> Binance's, for messages naming a parameter.
PARAMS = {"quantity": "quantity", "quote_quantity": "quoteOrderQty", "price": "price", "time_in_force": "timeInForce"}


def from_domain(exc: errors.ExchangeError, *, placing: bool = False, cancelling: bool = False) -> BinanceError:
    """A domain error as Binance would answer it."""
    field = PARAMS.get(str(exc.details.get("field", "")), "")
    if isinstance(exc, errors.UnknownSymbol):
        return invalid_symbol()
    if isinstance(exc, errors.InvalidAmount):
        if "precision" in exc.message.lower() or "decimal" in exc.message.lower():
            return too_much_precision(field or "quantity")
        return invalid(field or "quantity")
    if isinstance(exc, errors.ParameterNotAllowed):
        return not_required(field or "price")
    if isinstance(exc, errors.ClientOrderIdConflict):
        return new_order_rejected("Duplicate order sent.")
    if isinstance(exc, errors.InsufficientBalance):
        return new_order_rejected(INSUFFICIENT_BALANCE)
    if isinstance(exc, errors.AccountSuspended | errors.AccountClosed):
        return new_order_rejected(ACCOUNT_DISABLED)
    if isinstance(exc, errors.NotAuthenticated | errors.PermissionDenied):
        return rejected_api_key()
    if isinstance(exc, errors.NotFound | errors.OrderNotCancelable):
        return cancel_rejected() if cancelling else no_such_order()
    if isinstance(exc, errors.RateLimited):
        return BinanceError(
            -1003,
            "Too many requests; please use the websocket for live updates.",
            status=429,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, errors.ServiceUnavailable):
        return busy()
    if isinstance(exc, errors.ValidationFailed):
        fields = exc.details.get("fields") or {}
        name = next(iter(fields), "") if isinstance(fields, dict) else ""
        return mandatory(PARAMS.get(name, name) or "parameter")
    if isinstance(exc, errors.OrderRejected):
        return rejection(exc.code, market_order=False)
    if exc.status_code >= 500:
        return unknown()
    return BinanceError(-1000, exc.message, status=400)

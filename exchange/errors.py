"""The one tree of domain errors.

Every error the API can return is a subclass of ``ExchangeError`` with an HTTP status and a stable snake_case
``code`` that clients may branch on; the message is for people and may change. The DRF exception handler
(``exchange.exception_handler``) turns them into the error envelope:

    {"error": {"code": "...", "message": "...", "details": {...}, "request_id": "..."}}
"""

from __future__ import annotations

from typing import Any


class ExchangeError(Exception):
    """Base of every domain error; never raised itself."""

    status_code = 400
    code = "exchange_error"
    default_message = "The request could not be processed."

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None, retry_after: int | None = None
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        # Seconds a client should wait before retrying (the Retry-After header of 429 and 503 answers).
        self.retry_after = retry_after
        super().__init__(self.message)


# --- 4xx: the caller can fix it -------------------------------------------------------------------------
class ValidationFailed(ExchangeError):
    """The request body or query failed validation; ``details`` names the fields."""

    status_code = 400
    code = "validation_error"
    default_message = "The request is invalid."


class BadRequest(ExchangeError):
    """Django refused the request before any view ran (for example a Host header not in ``ALLOWED_HOSTS``)."""

    status_code = 400
    code = "bad_request"
    default_message = "Bad request."


class MalformedRequest(ExchangeError):
    """The body is not parseable JSON."""

    status_code = 400
    code = "malformed_json"
    default_message = "The request body is not valid JSON."


class InvalidAmount(ValidationFailed):
    """An amount is not a positive number with at most the asset's decimals."""

    code = "invalid_amount"
    default_message = "The amount is invalid."


class UnknownAsset(ValidationFailed):
    """The asset symbol is not one the exchange lists."""

    code = "unknown_asset"
    default_message = "Unknown asset."


class NotAuthenticated(ExchangeError):
    """No valid credentials were sent."""

    status_code = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are invalid."


class PermissionDenied(ExchangeError):
    """The credentials are valid but lack the scope for this operation."""

    status_code = 403
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class NotFound(ExchangeError):
    """The resource does not exist, or belongs to someone else (we do not leak which)."""

    status_code = 404
    code = "not_found"
    default_message = "Not found."


class MethodNotAllowed(ExchangeError):
    """The HTTP method is not supported on this path."""

    status_code = 405
    code = "method_not_allowed"
    default_message = "Method not allowed."


class Conflict(ExchangeError):
    """The request conflicts with the current state of the resource."""

    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class UnsupportedMediaType(ExchangeError):
    """The body's content type is not JSON."""

    status_code = 415
    code = "unsupported_media_type"
    default_message = "Unsupported media type; send application/json."


class PayloadTooLarge(ExchangeError):
    """The request body is larger than the upload limit (``DATA_UPLOAD_MAX_MEMORY_SIZE``); nothing was read."""

    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class BusinessRuleViolation(ExchangeError):
    """The request is well-formed but a business rule refuses it."""

    status_code = 422
    code = "business_rule_violation"
    default_message = "The request breaks a business rule."


class RateLimited(ExchangeError):
    """Too many requests; retry after the indicated time."""

    status_code = 429
    code = "rate_limited"
    default_message = "Too many requests."


# --- 5xx: our side ---------------------------------------------------------------------------------------
class InternalError(ExchangeError):
    """An unexpected failure; details are in the log under the request id, never in the response."""

    status_code = 500
    code = "internal_error"
    default_message = "An internal error occurred. It has been logged with the request id."


class ServiceUnavailable(ExchangeError):
    """A dependency is down or the operation timed out; retry later."""

    status_code = 503
    code = "service_unavailable"
    default_message = "The service is temporarily unavailable."


class ExecutionStatusUnknown(ExchangeError):
    """The request was sent to the matching engine but its answer was lost (a timeout between the gateway and the
    engine): the order may have executed. Look it up by its client_order_id (or retry with the same one) before
    sending it again. Binance answers its 5xx the same way: "execution status unknown"."""

    status_code = 504
    code = "execution_status_unknown"
    default_message = "The order's outcome is unknown; look it up by client_order_id before retrying."


class Maintenance(ServiceUnavailable):
    """The exchange is down for maintenance (an operator's simulated downtime): every trading call answers 503 with
    Retry-After until it ends."""

    code = "exchange_maintenance"
    default_message = "The exchange is down for maintenance."


# --- Domain errors: accounts and ledger -------------------------------------------------------------------
class InsufficientBalance(BusinessRuleViolation):
    """The available balance does not cover the amount (plus fees)."""

    code = "insufficient_balance"
    default_message = "Insufficient available balance."


class InsufficientLiquidity(BusinessRuleViolation):
    """The house cannot supply the asset in the quantity asked for."""

    code = "insufficient_liquidity"
    default_message = "The exchange does not have enough liquidity for this order."


class AccountSuspended(BusinessRuleViolation):
    """The account is suspended: no trading and no withdrawals."""

    code = "account_suspended"
    default_message = "The account is suspended."


class AccountClosed(BusinessRuleViolation):
    """The account is closed: nothing moves in or out."""

    code = "account_closed"
    default_message = "The account is closed."


class AccountNotEmpty(Conflict):
    """An account can only be closed once every balance is zero."""

    code = "account_not_empty"
    default_message = "The account still holds funds; withdraw them before closing it."


class InvalidStateTransition(Conflict):
    """The resource is not in a state that allows this operation."""

    code = "invalid_state_transition"
    default_message = "The operation is not allowed in the current state."


class IdempotencyConflict(Conflict):
    """The idempotency key was used before with different parameters."""

    code = "idempotency_conflict"
    default_message = "This idempotency key was already used with different parameters."


class LedgerImbalance(InternalError):
    """A journal entry whose postings do not sum to zero per asset was about to be written (a bug, never input)."""

    code = "ledger_imbalance"
    default_message = "The operation was refused because it would unbalance the ledger."


# --- Domain errors: markets and orders ---------------------------------------------------------------------
class UnknownSymbol(ValidationFailed):
    """The market symbol is not one the exchange lists."""

    code = "unknown_symbol"
    default_message = "Unknown market symbol."


class UnsupportedOrderType(ValidationFailed):
    """The order type is not one the exchange accepts (market and limit are)."""

    code = "unsupported_order_type"
    default_message = "Unsupported order type; use market or limit."


class ParameterNotAllowed(ValidationFailed):
    """A parameter was given that this kind of order does not take (a price on a market order, ...)."""

    code = "parameter_not_allowed"
    default_message = "A parameter is not allowed for this order."


class OrderRejected(BusinessRuleViolation):
    """The order was recorded as rejected; ``code`` is the rejection reason and ``details`` carry the order."""

    code = "order_rejected"
    default_message = "The order was rejected."

    def __init__(self, reason: str, message: str | None = None, *, details: dict | None = None) -> None:
        super().__init__(message, details=details)
        self.code = reason


class OrderNotCancelable(Conflict):
    """The order has already reached a final state (filled, rejected, cancelled or expired); only resting orders
    can be cancelled."""

    code = "order_not_cancelable"
    default_message = "The order can no longer be cancelled."


class ClientOrderIdConflict(IdempotencyConflict):
    """The client_order_id was used before on this account with different parameters."""

    code = "client_order_id_conflict"
    default_message = "This client_order_id was already used with different order parameters."


class LiquidityContention(ServiceUnavailable):
    """A house shard ran dry between choosing it and settling; the transaction was rolled back (retry)."""

    code = "liquidity_contention"
    default_message = "House liquidity changed while the order was settling; retry."

"""REST endpoints for accounts: one class per operation; each validates, calls one service or selector, and
serializes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.permissions import OperatorScope, ReadScope, TradeOrOperatorScope
from accounts.serializers import (
    AccountCreateIn,
    AccountOut,
    AdjustmentIn,
    ApiKeyCreatedOut,
    ApiKeyCreateIn,
    AuditOut,
    AuditPageIn,
    BalanceListOut,
    BalanceOut,
    FundingIn,
    FundingResultOut,
    StatusChangeIn,
    TransactionFilterIn,
    TransactionOut,
)
from exchange import errors
from exchange.api import PageIn, keyset_link, page_of, paginate, query_params, raise_validation
from exchange.schema import error_codes
from orders import services as order_services

ACCOUNT_ID = OpenApiParameter(
    "account_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The account's public id."
)


class _AccountApi(APIView):
    def get_account(self, request: Request, account_id: Any) -> Any:
        return selectors.account_get(account_id=account_id, user=request.user, key=request.auth)


class AccountListCreateApi(APIView):
    def get_permissions(self) -> list[Any]:
        return [TradeOrOperatorScope()] if self.request.method == "POST" else [ReadScope()]

    @extend_schema(
        operation_id="v1_accounts_list",
        parameters=[PageIn],
        responses={200: page_of(AccountOut, "accounts")},
        tags=["accounts"],
        summary="List the accounts this key may see (operators and monitors: all), newest first",
    )
    def get(self, request: Request) -> Response:
        query_params(request, PageIn)
        qs = selectors.account_list(user=request.user, key=request.auth)
        qs = qs.select_related("owner").prefetch_related("balances")
        return paginate(self, qs, AccountOut, "accounts")

    @extend_schema(
        request=AccountCreateIn,
        responses={201: AccountOut},
        extensions=error_codes((404, errors.NotFound.code)),
        tags=["accounts"],
        summary="Open an account for yourself (operators: for any user; an unknown owner is 404)",
    )
    def post(self, request: Request) -> Response:
        data = raise_validation(AccountCreateIn(data=request.data))
        owner = request.user
        if data.get("owner") and data["owner"] != request.user.username:
            if not selectors.actor_is_operator(key=request.auth):
                raise errors.PermissionDenied("Only operators may open accounts for other users.")
            owner = get_user_model().objects.filter(username=data["owner"]).first()
            if owner is None:
                raise errors.NotFound("No such user.", details={"owner": data["owner"][:150]})
        account = services.account_create(owner=owner, label=data["label"], actor=request.user)
        return Response(AccountOut(account).data, status=201)


class AccountDetailApi(_AccountApi):
    @extend_schema(parameters=[ACCOUNT_ID], responses={200: AccountOut}, tags=["accounts"])
    def get(self, request: Request, account_id: str) -> Response:
        return Response(AccountOut(self.get_account(request, account_id)).data)


class AccountBalancesApi(_AccountApi):
    @extend_schema(
        parameters=[ACCOUNT_ID],
        responses={200: BalanceListOut},
        tags=["accounts"],
        summary="Every asset's balance, zeros included",
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = self.get_account(request, account_id)
        balances = selectors.balance_list(account=account)
        return Response({"account_id": str(account.account_id), "balances": BalanceOut(balances, many=True).data})


class AccountTransactionsApi(_AccountApi):
    @extend_schema(
        parameters=[ACCOUNT_ID, TransactionFilterIn],
        responses={200: page_of(TransactionOut, "transactions")},
        tags=["accounts"],
        summary="Journal lines affecting the account, newest first",
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = self.get_account(request, account_id)
        filters = query_params(request, TransactionFilterIn)
        qs = selectors.transaction_list(account=account, **filters)
        return paginate(self, qs, TransactionOut, "transactions")


class AccountAuditApi(_AccountApi):
    """Cursor-paginated like the other lists (``?limit=``, 50 by default, at most 500; ``next`` and ``previous``
    are links), but oldest first: an audit is read as a story."""

    @extend_schema(
        parameters=[ACCOUNT_ID, AuditPageIn],
        responses={200: AuditOut},
        tags=["accounts"],
        summary="Change history and journal lines in time order, a page at a time",
    )
    def get(self, request: Request, account_id: str) -> Response:
        account = self.get_account(request, account_id)
        page_in = raise_validation(AuditPageIn(data=request.query_params))
        cursor = page_in.get("cursor")
        direction, key = cursor if cursor else ("next", None)
        page = selectors.account_audit(
            account=account,
            after=key if direction == "next" else None,
            before=key if direction == "previous" else None,
            limit=page_in["limit"],
        )
        forward = direction == "next"
        has_next = page.last is not None and (page.more if forward else True)
        has_previous = page.first is not None and (cursor is not None if forward else page.more)
        return Response(
            {
                "account_id": str(account.account_id),
                "events": page.events,
                "next": keyset_link(request, "next", page.last) if has_next else None,
                "previous": keyset_link(request, "previous", page.first) if has_previous else None,
            }
        )


class _FundingApi(_AccountApi):
    permission_classes = [OperatorScope]
    input_serializer: type = FundingIn
    service: Any = None

    def post(self, request: Request, account_id: str) -> Response:
        account = self.get_account(request, account_id)
        data = raise_validation(self.input_serializer(data=request.data))
        entry = type(self).service(
            account=account,
            asset=data["asset"],
            amount=data["amount"],
            actor=request.user,
            reason=data["reason"],
            idempotency_key=data.get("idempotency_key"),
        )
        balances = selectors.balance_list(account=account)
        return Response(FundingResultOut({"transaction": entry, "balances": balances}).data, status=201)


def _funding_schema(summary: str, request: type, *refusals: Any) -> Any:
    return extend_schema(
        parameters=[ACCOUNT_ID],
        request=request,
        responses={201: FundingResultOut},
        extensions=error_codes(errors.InvalidAmount, errors.IdempotencyConflict, errors.AccountClosed, *refusals),
        tags=["operator"],
        summary=summary,
    )


class AccountDepositApi(_FundingApi):
    service = staticmethod(services.deposit_create)

    @_funding_schema("Credit an account from custody (operator); suspended accounts still receive", FundingIn)
    def post(self, request: Request, account_id: str) -> Response:
        return super().post(request, account_id)


class AccountWithdrawalApi(_FundingApi):
    service = staticmethod(services.withdrawal_create)

    @_funding_schema(
        "Debit an account to custody (operator); refused beyond the available balance",
        FundingIn,
        errors.InsufficientBalance,
        errors.AccountSuspended,
    )
    def post(self, request: Request, account_id: str) -> Response:
        return super().post(request, account_id)


class AccountAdjustmentApi(_FundingApi):
    input_serializer = AdjustmentIn
    service = staticmethod(services.adjustment_create)

    @_funding_schema("Signed correction with a reason (operator)", AdjustmentIn, errors.InsufficientBalance)
    def post(self, request: Request, account_id: str) -> Response:
        return super().post(request, account_id)


class _StatusApi(_AccountApi):
    permission_classes = [OperatorScope]
    service: Any = None

    def post(self, request: Request, account_id: str) -> Response:
        account = self.get_account(request, account_id)
        data = raise_validation(StatusChangeIn(data=request.data))
        account = type(self).service(account=account, actor=request.user, reason=data["reason"])
        return Response(AccountOut(account).data)


def _status_schema(summary: str, *refusals: Any) -> Any:
    return extend_schema(
        parameters=[ACCOUNT_ID],
        request=StatusChangeIn,
        responses={200: AccountOut},
        extensions=error_codes(errors.InvalidStateTransition, *refusals),
        tags=["operator"],
        summary=summary,
    )


class AccountSuspendApi(_StatusApi):
    service = staticmethod(order_services.account_suspend)  # cancels its resting orders too

    @_status_schema("Suspend an active account (operator): no trading, no withdrawals")
    def post(self, request: Request, account_id: str) -> Response:
        return super().post(request, account_id)


class AccountReactivateApi(_StatusApi):
    service = staticmethod(services.account_reactivate)

    @_status_schema("Reactivate a suspended account (operator)")
    def post(self, request: Request, account_id: str) -> Response:
        return super().post(request, account_id)


class AccountCloseApi(_StatusApi):
    service = staticmethod(services.account_close)

    @_status_schema("Close an account whose balances are all zero (operator)", errors.AccountNotEmpty)
    def post(self, request: Request, account_id: str) -> Response:
        return super().post(request, account_id)


class ApiKeyCreateApi(APIView):
    permission_classes = [OperatorScope]

    @extend_schema(
        request=ApiKeyCreateIn,
        responses={201: ApiKeyCreatedOut},
        extensions=error_codes((404, errors.NotFound.code)),
        tags=["accounts"],
        summary="Issue an API key for a user (operators): the key and its signing secret, each shown only here",
        description="The key authenticates /api/v1 (Api-Key) and /api/v3 (X-MBX-APIKEY); the signing secret signs "
        "/api/v3 requests (HMAC-SHA256). An unknown user, or an account that is not the user's, is 404.",
    )
    def post(self, request: Request) -> Response:
        data = raise_validation(ApiKeyCreateIn(data=request.data))
        user = get_user_model().objects.filter(username=data["user"]).first()
        if user is None:
            raise errors.NotFound("No such user.", details={"user": data["user"][:150]})
        account = None
        if data.get("account_id"):
            account = selectors.account_list(user=user, key=None).filter(account_id=data["account_id"]).first()
            if account is None:
                raise errors.NotFound("Account not found.", details={"account_id": str(data["account_id"])})
        key, plain = services.api_key_create(
            user=user,
            name=data["name"] or f"{user.username}-key",
            scopes=data["scopes"],
            actor=request.user,
            account=account,
        )
        body = ApiKeyCreatedOut(
            {
                "prefix": key.prefix,
                "name": key.name,
                "user": user,
                "scopes": key.scopes,
                "account": account,
                "created": key.created,
                "key": plain,
                "signing_secret": key.signing_secret,  # type: ignore[attr-defined]
            }
        ).data
        return Response(body, status=201)

"""Shared REST plumbing: the JSON parser (numbers as Decimal), the wrapped cursor pagination, money formatting."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from exchange import errors

# Error responses most operations can give (the envelope's code in each description).
COMMON_ERRORS = {
    400: OpenApiResponse(
        description="validation_error, malformed_json, invalid_amount, unknown_symbol, unsupported_order_type"
    ),
    401: OpenApiResponse(description="not_authenticated"),
    403: OpenApiResponse(description="permission_denied"),
    404: OpenApiResponse(description="not_found"),
}


class DecimalJSONParser(JSONParser):
    """JSON numbers become Decimal, never float, so "amount": 0.1 means exactly 0.1."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            text = stream.read().decode(encoding)
            return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant) if text else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        except RecursionError:
            # Nesting deeper than the interpreter's stack: no order or amount is ever shaped like that.
            raise ParseError("JSON parse error - nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class WrappedCursorPagination(CursorPagination):
    """Cursor pagination, newest first, with the list under the resource's name (ECOSYSTEM.md):
    ``{"orders": [...], "next": url|null, "previous": url|null}``."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-id"
    results_key = "results"

    def get_paginated_response(self, data: Any) -> Response:
        return Response({self.results_key: data, "next": self.get_next_link(), "previous": self.get_previous_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                self.results_key: schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
            },
        }


class KeysetCursorField(serializers.CharField):
    """The opaque ``cursor`` of a keyset-paginated list (``keyset_link``): (direction, key), refused as a
    validation error when it was not made by us."""

    default_error_messages = {"invalid": "Invalid cursor."}

    def to_internal_value(self, data: Any) -> tuple[str, tuple[Any, ...]]:  # type: ignore[override]
        try:
            raw = json.loads(base64.urlsafe_b64decode(str(data).encode() + b"==="))
            direction, (at, rank, ident) = raw["d"], raw["k"]
            if direction not in ("next", "previous"):
                raise ValueError(direction)
            return direction, (datetime.fromisoformat(at), int(rank), int(ident))
        except Exception:
            self.fail("invalid")


def keyset_link(request: Any, direction: str, key: tuple[Any, ...]) -> str:
    """The absolute URL of the page ``direction`` of ``key`` (time, rank, id), keeping the other query parameters."""
    at, rank, ident = key
    token = json.dumps({"d": direction, "k": [at.isoformat(), rank, ident]}, separators=(",", ":"))
    query = request.query_params.copy()
    query["cursor"] = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def paginate(
    view: Any, queryset: Any, serializer_class: type[serializers.BaseSerializer], key: str, **context: Any
) -> Response:
    paginator = WrappedCursorPagination()
    paginator.results_key = key
    page: list[Any] | None = paginator.paginate_queryset(queryset, view.request, view=view)
    data = serializer_class(page, many=True, context={"request": view.request, **context}).data
    return paginator.get_paginated_response(data)


class ShallowFieldsMixin:
    """For flat input serializers built on every request (the order path): the declared fields are copied shallowly.
    DRF deep-copies them by calling each field's ``__init__`` again, which costs more CPU than validating the body;
    these fields keep no state of their own besides what ``bind`` sets on the copy, and no nested serializers."""

    _declared_fields: dict[str, serializers.Field]

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


class AmountField(serializers.Field):
    """A money amount in: a JSON string ("0.1") or number (parsed as Decimal), never a float or bool. Precision
    and sign are checked against the asset by the service."""

    default_error_messages = {"invalid": "A number or a numeric string is required."}

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (str, int, Decimal)):
            self.fail("invalid")
        try:
            value = Decimal(str(data).strip())
        except Exception:
            self.fail("invalid")
        if not value.is_finite():
            self.fail("invalid")
        return value

    def to_representation(self, value: Any) -> str | None:
        return format_amount(value)


def format_amount(value: Decimal | None, decimals: int | None = None) -> str | None:
    """Money out: a string, at the asset's precision when known, never in exponent form."""
    if value is None:
        return None
    if decimals is not None:
        value = value.quantize(Decimal(1).scaleb(-decimals))
    text = f"{value:f}"
    if decimals is None and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def raise_validation(serializer: serializers.Serializer) -> dict[str, Any]:
    """Validate an input serializer, raising our ValidationFailed with the field errors."""
    if not serializer.is_valid():
        raise errors.ValidationFailed(details={"fields": serializer.errors})
    return dict(serializer.validated_data)


class AssetAmountField(serializers.Field):
    """Money out: the ``source`` amount as a string at the precision of the asset that ``asset`` (a dotted
    attribute path on the same object) names, e.g. ``AssetAmountField(source="fee", asset="fee_asset_id")``."""

    def __init__(self, *, asset: str, **kwargs: Any) -> None:
        self.asset_path = asset.split(".")
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> tuple[Decimal | None, str | None]:
        # Returned as a pair so DRF never short-cuts a None amount: the pair itself is never None.
        from rest_framework.fields import get_attribute

        return super().get_attribute(instance), get_attribute(instance, self.asset_path)

    def to_representation(self, value: tuple[Decimal | None, str | None]) -> str | None:
        from ledger.selectors import asset_map

        amount, code = value
        asset = asset_map().get(code or "")
        return format_amount(amount, asset.decimals if asset else None)

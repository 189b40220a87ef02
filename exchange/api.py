"""Shared REST plumbing: the JSON parser (numbers as Decimal), the wrapped cursor pagination, money formatting, and
the strict input fields whose OpenAPI description is exactly what they accept (exchange/schema.py renders them).

The rule for every input field here: what the published schema refuses, the field refuses, and the other way
round. So each one is a JSON type check plus one regular expression (or a bound) that the schema carries verbatim.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from exchange import errors


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

    def decode_cursor(self, request: Request) -> Any:
        # A cursor is opaque: one this service did not hand out names no page, 404 as DRF answers it. Its position
        # is compared with the ordering field (ids), so anything but digits is such a cursor too (not a 500).
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not re.fullmatch(r"[0-9]{1,19}", cursor.position):
            raise errors.NotFound("Invalid cursor.", details={"cursor": "not one this service handed out"})
        return cursor

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
    """The opaque ``cursor`` of a keyset-paginated list (``keyset_link``): (direction, key). One this service did not
    hand out names no page: 404, as for the other lists (``WrappedCursorPagination``)."""

    def to_internal_value(self, data: Any) -> tuple[str, tuple[Any, ...]]:  # type: ignore[override]
        try:
            raw = json.loads(base64.urlsafe_b64decode(str(data).encode() + b"==="))
            direction, (at, rank, ident) = raw["d"], raw["k"]
            if direction not in ("next", "previous"):
                raise ValueError(direction)
            return direction, (datetime.fromisoformat(at), int(rank), int(ident))
        except Exception:
            raise errors.NotFound("Invalid cursor.", details={"cursor": "not one this service handed out"}) from None


def keyset_link(request: Any, direction: str, key: tuple[Any, ...]) -> str:
    """The absolute URL of the page ``direction`` of ``key`` (time, rank, id), keeping the other query parameters."""
    at, rank, ident = key
    token = json.dumps({"d": direction, "k": [at.isoformat(), rank, ident]}, separators=(",", ":"))
    query = request.query_params.copy()
    query["cursor"] = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def page_of(serializer_class: type[serializers.BaseSerializer], key: str) -> type[serializers.Serializer]:
    """The response shape of ``paginate``: ``{key: [...], "next": url|null, "previous": url|null}``, named after the
    item serializer (``AccountOut`` -> ``AccountOutPage``) for the schema."""
    return type(
        f"{serializer_class.__name__}Page",
        (serializers.Serializer,),
        {
            key: serializer_class(many=True),
            "next": serializers.URLField(allow_null=True, help_text="The next page (older items), or null."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page (newer items), or null."),
            "__module__": serializer_class.__module__,
        },
    )


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


def _max_asset_decimals() -> int:
    from ledger.reference_data import ASSETS

    return max(int(asset["decimals"]) for asset in ASSETS)


def amount_pattern(*, integer_digits: int = 15, signed: bool = False) -> str:
    """A non-zero decimal string without exponent or leading zeros, at most ``integer_digits`` before the point and
    the finest asset precision after it (each asset's own precision is checked by the service: 400
    invalid_amount with ``details.decimals``)."""
    decimals = _max_asset_decimals()
    whole = rf"[1-9][0-9]{{0,{integer_digits - 1}}}(?:\.[0-9]{{1,{decimals}}})?"
    fraction = rf"0\.[0-9]{{0,{decimals - 1}}}[1-9][0-9]{{0,{decimals - 1}}}"
    return rf"^{'-?' if signed else ''}(?:{whole}|{fraction})$"


class AmountField(serializers.Field):
    """A money amount in: a JSON string matching ``amount_pattern`` or a JSON number (read exactly, as Decimal),
    non-zero, positive unless ``signed``, below 10^integer_digits. Never a float, a bool or an exponent string.
    The asset's precision is checked by the service."""

    default_error_messages = {
        "invalid": 'A decimal string such as "0.1" (or a JSON number) is required.',
        errors.InvalidAmount.code: "The amount must be {sign}and less than 10^{digits}, without exponent.",
    }

    def __init__(self, *, signed: bool = False, integer_digits: int = 15, **kwargs: Any) -> None:
        self.signed, self.integer_digits = signed, integer_digits
        self.pattern = amount_pattern(integer_digits=integer_digits, signed=signed)
        self.bound = Decimal(10) ** integer_digits
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (str, int, Decimal)):
            self.fail("invalid")
        if isinstance(data, str) and re.fullmatch(self.pattern, data):
            return Decimal(data)
        try:
            value = Decimal(data)
        except ArithmeticError:
            self.fail("invalid")
        if not value.is_finite():
            self.fail("invalid")
        # A number, but not one this field takes (zero, sign, size, leading zeros or exponent in a string).
        if isinstance(data, str) or value == 0 or (value < 0 and not self.signed) or abs(value) >= self.bound:
            self.fail(
                errors.InvalidAmount.code, sign="non-zero " if self.signed else "positive ", digits=self.integer_digits
            )
        return value

    def to_representation(self, value: Any) -> str | None:
        return format_amount(value)


# A string with at least one character that is not whitespace, and no NUL (PostgreSQL text cannot hold one).
# Spelled out instead of \s so that Python, the schema's JSON Schema validators and clients agree on it.
NON_BLANK_PATTERN = r"^[^\x00]*[^\x00\t\n\v\f\r ][^\x00]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"


class TextField(serializers.CharField):
    """A JSON string, as sent (never a number turned into one, never trimmed before its length is checked):
    non-blank unless ``allow_blank``, without NUL, at most ``max_length`` characters."""

    default_error_messages = {"invalid": "A string is required."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs["trim_whitespace"] = False
        super().__init__(**kwargs)
        self.pattern = NO_NUL_PATTERN if self.allow_blank else NON_BLANK_PATTERN

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if not self.allow_blank and not re.fullmatch(NON_BLANK_PATTERN, data):
            self.fail("blank")
        return data


class PatternField(TextField):
    """A JSON string matching ``pattern`` (full match)."""

    default_error_messages = {"invalid": "A string is required.", "pattern": "Must match {pattern}."}

    def __init__(self, pattern: str, *, code: str = "pattern", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern, self.code = pattern, code
        self.error_messages.setdefault(code, "Must match {pattern}.")

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not re.fullmatch(self.pattern, data):
            self.fail(self.code, pattern=self.pattern)
        return data


def any_case(text: str) -> str:
    """A regular expression matching ``text`` in any letter case, without flags (JSON Schema has none)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


class AssetField(PatternField):
    """A listed asset code in any letter case (``BTC`` or ``btc``), read as the code; anything else is 400
    unknown_asset."""

    def __init__(self, **kwargs: Any) -> None:
        from ledger.reference_data import ASSETS

        codes = sorted(asset["code"] for asset in ASSETS)
        kwargs.setdefault("help_text", f"An asset: {', '.join(codes)} (any letter case).")
        pattern = rf"^(?:{'|'.join(any_case(code) for code in codes)})$"
        super().__init__(pattern, code=errors.UnknownAsset.code, max_length=10, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data).upper()


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class StrictUUIDField(serializers.UUIDField):
    """A UUID in its usual hyphenated spelling, as a string (not an integer, not 32 bare hex digits)."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str) or not re.fullmatch(UUID_PATTERN, data):
            self.fail("invalid", value=data)
        return uuid.UUID(data)


# RFC 3339 with a time zone, as the schema's "date-time" format means it (Django alone also reads dates, spaces
# and naive times).
DATETIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


class StrictDateTimeField(serializers.DateTimeField):
    default_error_messages = {
        "invalid": "An RFC 3339 date-time with a time zone is required, e.g. 2026-01-31T12:00:00Z."
    }

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str) or not re.fullmatch(DATETIME_PATTERN, value):
            self.fail("invalid")
        try:
            # In UTC: PostgreSQL refuses offsets beyond 15:59 that RFC 3339 allows (-18:40 is a valid spelling).
            return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
        except (ValueError, OverflowError):
            self.fail("invalid")


class StrictIntegerField(serializers.IntegerField):
    """An integer: a JSON integer, or in a query string its plain decimal spelling ("10", not "10.0" or "1e1")."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            self.fail("invalid")
        if isinstance(data, str) and not re.fullmatch(r"-?(?:0|[1-9][0-9]*)", data):
            self.fail("invalid")
        return int(data)


# Rendered by exchange.schema.postprocess as {"enum": [null], "nullable": true}, after drf-spectacular's enum hook
# (which would make a named enum of it).
ABSENT_MARKER = "x-exchange-absent"


@extend_schema_field({ABSENT_MARKER: True, "description": "Absent or null in this variant."})
class _AbsentField(serializers.Field):
    """Schema only: a field a request variant must leave out (or send as null)."""


def exactly_one_of(serializer_class: type[serializers.Serializer], *names: str) -> PolymorphicProxySerializer:
    """The schema of a request that takes exactly one of ``names`` (the others absent or null): one variant of
    ``serializer_class`` per name, each requiring its own and leaving out the others (``oneOf``), which is how
    client generators turn it into one model per variant. The view still validates with ``serializer_class``."""
    variants = []
    for name in names:
        base = serializer_class._declared_fields[name]
        kwargs = {k: v for k, v in base._kwargs.items() if k not in {"required", "allow_null", "default"}}
        field = type(base)(*base._args, **kwargs)  # required and non-null in this variant
        attrs: dict[str, Any] = {
            name: field,
            **{other: _AbsentField(required=False) for other in names if other != name},
        }
        title = "".join(part.title() for part in name.split("_"))
        attrs["__module__"] = serializer_class.__module__
        variants.append(type(f"{serializer_class.__name__}By{title}", (serializer_class,), attrs))
    return PolymorphicProxySerializer(
        component_name=serializer_class.__name__, serializers=variants, resource_type_field_name=None
    )


class PageIn(serializers.Serializer):
    """The cursor pagination parameters every list takes."""

    cursor = TextField(required=False, help_text="The cursor from a previous page's next or previous link.")
    limit = StrictIntegerField(required=False, min_value=1, max_value=500, help_text="Page size (default 50).")


def query_params(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """Validate the query string with a serializer, strictly: a parameter given empty is a value to validate (an
    empty ``?account_id=`` is a 400, never "no filter"), a parameter given twice or not taken is refused."""
    params = request.query_params
    repeated = sorted(key for key in params if len(params.getlist(key)) > 1)
    if repeated:
        raise errors.ValidationFailed(details={"fields": {key: ["Give this parameter once."] for key in repeated}})
    # A parameter the operation does not take is refused rather than ignored: a misspelt filter must not
    # silently list everything.
    unknown = sorted(set(params) - set(serializer_class().fields))
    if unknown:
        raise errors.ValidationFailed(details={"fields": {key: ["Unknown parameter."] for key in unknown}})
    data = raise_validation(serializer_class(data=params.dict()))
    if issubclass(serializer_class, PageIn):  # the paginator reads its own parameters
        for name in PageIn._declared_fields:
            data.pop(name, None)
    return data


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


# A field refused with one of these codes makes the whole answer carry it (with every field's errors in details),
# instead of the generic validation_error: clients branch on them.
FIELD_ERROR_CODES: dict[str, type[errors.ExchangeError]] = {
    cls.code: cls for cls in (errors.InvalidAmount, errors.UnknownAsset, errors.UnknownSymbol)
}


def money_text(amount: Decimal | None, asset_code: str | None) -> str:
    """Money for people (the admin): the asset's precision, thousands separated, with its code: "10,000.00 USD"."""
    if amount is None:
        return "-"
    from ledger.selectors import asset_map

    asset = asset_map().get(asset_code or "")
    value = amount.quantize(Decimal(1).scaleb(-asset.decimals)) if asset else amount
    return f"{value:,f} {asset_code or ''}".strip()


def raise_validation(serializer: serializers.Serializer) -> dict[str, Any]:
    """Validate an input serializer, raising our ValidationFailed (or a more precise code, FIELD_ERROR_CODES) with
    the field errors."""
    if not serializer.is_valid():
        found = serializer.errors if isinstance(serializer.errors, dict) else {}
        codes = [
            getattr(d, "code", None) for messages in found.values() if isinstance(messages, list) for d in messages
        ]
        error = next((FIELD_ERROR_CODES[c] for c in codes if c in FIELD_ERROR_CODES), errors.ValidationFailed)
        raise error(details={"fields": serializer.errors})
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

"""The OpenAPI schema as the truth: drf-spectacular extensions for our strict fields (each says exactly what the
field accepts), the API-key security scheme, and the one error envelope with the codes each operation can answer.

Errors. Every 4xx response of every operation is the ``Error`` component (the envelope of exchange/errors.py), and
each response lists its possible codes in ``x-error-codes`` (with one example per code). Operations declare the
codes of their own errors with ``error_codes(...)`` in ``extend_schema(extensions=...)``; the codes every
operation of a kind can answer are added here, so a new endpoint gets them without saying so:

* an operation that needs a key: 401 ``not_authenticated``, 403 ``permission_denied``, 429 ``rate_limited``;
* one with a body: 400 ``validation_error`` and ``malformed_json``, 415 ``unsupported_media_type``;
* one with query parameters: 400 ``validation_error``;
* one with path parameters or a page cursor: 404 ``not_found`` (an id that names nothing this key may see, no
  such URL, a cursor this service did not hand out).

The contract test (tests/contract/) fails when a response carries a code its operation does not list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes

from exchange import errors
from exchange.api import ABSENT_MARKER

ERROR_COMPONENT = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Send "Authorization: Api-Key <prefix>.<secret>" (or "X-Api-Key: <prefix>.<secret>").',
        }


class _DefaultPlus(OpenApiSerializerFieldExtension):
    """drf-spectacular's own mapping of the field, plus what ``additions`` adds."""

    def additions(self, field: Any) -> dict[str, Any]:
        raise NotImplementedError

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, **self.additions(self.target)}


class TextFieldSchema(_DefaultPlus):
    target_class = "exchange.api.TextField"
    match_subclasses = True

    def additions(self, field: Any) -> dict[str, Any]:
        return {"pattern": field.pattern}


class UUIDFieldSchema(_DefaultPlus):
    target_class = "exchange.api.StrictUUIDField"

    def additions(self, field: Any) -> dict[str, Any]:
        from exchange.api import UUID_PATTERN

        return {"pattern": UUID_PATTERN}


class DateTimeFieldSchema(_DefaultPlus):
    target_class = "exchange.api.StrictDateTimeField"

    def additions(self, field: Any) -> dict[str, Any]:
        from exchange.api import DATETIME_PATTERN

        return {"pattern": DATETIME_PATTERN}


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "exchange.api.AmountField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        field = self.target
        bound = 10**field.integer_digits - 1
        number: dict[str, Any] = {"type": "number", "maximum": bound}
        if field.signed:
            number |= {"minimum": -bound, "not": {"enum": [0]}}
        else:
            number |= {"minimum": 0, "exclusiveMinimum": True}
        schema: dict[str, Any] = {
            "oneOf": [{"type": "string", "pattern": field.pattern, "example": "0.1"}, number],
            "description": (
                "A decimal as a string (preferred) or a JSON number, read exactly, never as a float; at most the "
                "asset's decimal places (BTC and ETH 8, USD 2, USDT 6), else 400 invalid_amount."
                + ("" if field.signed else " Positive.")
            ),
        }
        if field.allow_null:
            schema["nullable"] = True
        if field.help_text:
            schema["description"] = f"{field.help_text} {schema['description']}"
        return schema


class AssetAmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "exchange.api.AssetAmountField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {
            **(build_basic_type(OpenApiTypes.STR) or {}),
            "format": "decimal",
            "nullable": True,
            "readOnly": True,
            "description": "Decimal as a string at the asset's precision.",
        }


# --- errors --------------------------------------------------------------------------------------------------------
ErrorSpec = type[errors.ExchangeError] | tuple[int, str]


def error_codes(*specs: ErrorSpec | Iterable[ErrorSpec]) -> dict[str, Any]:
    """``extend_schema(extensions=error_codes(errors.NotFound, errors.InvalidAmount, (422, "market_halted")))``:
    the error codes an operation answers besides the ones every operation of its kind has (module docstring)."""
    by_status: dict[str, set[str]] = {}
    flat: list[ErrorSpec] = []
    for spec in specs:
        if isinstance(spec, (tuple, type)):
            flat.append(spec)  # type: ignore[arg-type]
        else:
            flat.extend(spec)
    for spec in flat:
        status, code = spec if isinstance(spec, tuple) else (spec.status_code, spec.code)
        by_status.setdefault(str(status), set()).add(code)
    return {"x-error-codes": {status: sorted(codes) for status, codes in by_status.items()}}


def _all_error_classes() -> dict[str, type[errors.ExchangeError]]:
    found: dict[str, type[errors.ExchangeError]] = {}
    stack = [errors.ExchangeError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


def error_component() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The one error envelope of every 4xx and 5xx answer. Branch on error.code (stable).",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {
                        "type": "string",
                        "pattern": "^[a-z][a-z0-9_]*$",
                        "description": "Stable snake_case code; the codes of each response are in its x-error-codes.",
                    },
                    "message": {"type": "string", "description": "For people; may change."},
                    "details": {"type": "object", "additionalProperties": True},
                    "request_id": {"type": "string", "nullable": True},
                },
                "required": ["code", "message", "details", "request_id"],
            }
        },
        "required": ["error"],
    }


def _has_security(operation: dict[str, Any]) -> bool:
    return any(requirement for requirement in operation.get("security", []))


def _common_codes(operation: dict[str, Any]) -> dict[str, set[str]]:
    codes: dict[str, set[str]] = {}
    params = operation.get("parameters", [])
    if _has_security(operation):
        codes.setdefault("401", set()).add(errors.NotAuthenticated.code)
        codes.setdefault("403", set()).add(errors.PermissionDenied.code)
        # Failed authentications per address, and the per-key limits (exchange/key_limits.py).
        codes.setdefault("429", set()).add(errors.RateLimited.code)
    if "requestBody" in operation:
        codes.setdefault("400", set()).update({errors.ValidationFailed.code, errors.MalformedRequest.code})
        codes.setdefault("415", set()).add(errors.UnsupportedMediaType.code)
    if any(p.get("in") == "query" for p in params):
        codes.setdefault("400", set()).add(errors.ValidationFailed.code)
    if any(p.get("in") == "path" for p in params) or any(p.get("name") == "cursor" for p in params):
        # An id that names nothing this key may see, no such URL, or a cursor this service did not hand out.
        codes.setdefault("404", set()).add(errors.NotFound.code)
    return codes


def _error_response(status: str, codes: list[str]) -> dict[str, Any]:
    classes = _all_error_classes()
    examples = {
        code: {
            "value": {
                "error": {
                    "code": code,
                    "message": classes[code].default_message if code in classes else code.replace("_", " ") + ".",
                    "details": {},
                    "request_id": "4f1c2b9e8d7a4c3b9a1e2d3c4b5a6978",
                }
            }
        }
        for code in codes
    }
    return {
        "description": f"Error ({', '.join(codes)})",
        "content": {"application/json": {"schema": ERROR_REF, "examples": examples}},
        "x-error-codes": codes,
    }


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular post-processing hook: the Error component and every operation's error responses."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for component in schemas.values():
        for prop in component.get("properties", {}).values():
            if prop.pop(ABSENT_MARKER, False):
                prop.update({"enum": [None], "nullable": True})
    schemas[ERROR_COMPONENT] = error_component()
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "put", "post", "patch", "delete"}:
                continue
            codes = _common_codes(operation)
            for status, declared in operation.pop("x-error-codes", {}).items():
                codes.setdefault(str(status), set()).update(declared)
            responses = operation.setdefault("responses", {})
            for status, status_codes in sorted(codes.items()):
                responses[status] = _error_response(status, sorted(status_codes))
            operation["responses"] = dict(sorted(responses.items()))
    return result

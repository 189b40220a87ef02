"""drf-spectacular extensions: the API-key security scheme and the amount field's schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes


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


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "exchange.api.AmountField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = build_basic_type(OpenApiTypes.DECIMAL) or {}
        return {
            **schema,
            "type": "string",
            "format": "decimal",
            "example": "0.10000000",
            "description": "Decimal as a string (a JSON number is read exactly, never as a float).",
        }


class AssetAmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "exchange.api.AssetAmountField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {
            "type": "string",
            "format": "decimal",
            "nullable": True,
            "readOnly": True,
            "description": "Decimal as a string at the asset's precision.",
        }

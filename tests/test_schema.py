"""The OpenAPI schema documents the whole of /api/v1 as the URLconf defines it, with the API-key scheme, and
drf-spectacular generates it without a warning."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern

from tests.support.commands import run_manage

API_PREFIX = "/api/v1/"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every (route, view callback) the URLconf defines, routes spelled as in OpenAPI ("{account_id}")."""
    found: list[tuple[str, Any]] = []
    for pattern in patterns:
        part = str(pattern.pattern)
        route = prefix + (_regex_to_route(part) if isinstance(pattern.pattern, RegexPattern) else part)
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found.append((route, pattern.callback))
    return found


def _regex_to_route(regex: str) -> str:
    """``^markets/(?P<symbol>[A-Z]{1,10})$`` -> ``markets/<symbol>``: each named group, however nested its
    parentheses, becomes its name."""
    out, i = [], 0
    while i < len(regex):
        if regex.startswith("(?P<", i):
            name_end = regex.index(">", i)
            name, depth, i = regex[i + 4 : name_end], 1, name_end + 1
            while depth:
                if regex[i] == "\\":
                    i += 1
                elif regex[i] == "(":
                    depth += 1
                elif regex[i] == ")":
                    depth -= 1
                i += 1
            out.append(f"<{name}>")
        else:
            out.append(regex[i])
            i += 1
    return "".join(out).removeprefix("^").removesuffix("$").removesuffix("\\Z")


def _openapi_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def _api_v1_views() -> dict[str, Any]:
    views = {}
    for route, callback in _walk(get_resolver().url_patterns):
        path = _openapi_path(route)
        if path.startswith(API_PREFIX):
            views[path] = callback
    return views


@pytest.fixture
def schema(client: Any, db: None) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return response.json()


def test_urlconf_walk_finds_the_api(db):
    views = _api_v1_views()

    assert "/api/v1/health" in views
    assert "/api/v1/accounts/{account_id}/balances" in views
    assert all("(" not in path and "^" not in path and "<" not in path for path in views), sorted(views)


def test_regex_routes_are_spelled_as_openapi_paths():
    assert _openapi_path(_regex_to_route(r"^markets/(?P<symbol>[A-Z]{1,10}[-/_](?:[A-Z]+))/price$")) == (
        "/markets/{symbol}/price"
    )


def test_schema_lists_every_api_v1_url_the_urlconf_defines(schema):
    documented = {path for path in schema["paths"] if path.startswith(API_PREFIX)}

    assert documented == set(_api_v1_views())


def test_schema_documents_every_method_each_view_answers(schema):
    for path, callback in _api_v1_views().items():
        view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        assert view_class is not None, f"{path} is not a DRF view"
        implemented = {m for m in HTTP_METHODS if hasattr(view_class, m)}
        assert set(schema["paths"][path]) - {"parameters"} == implemented, path


def test_schema_declares_the_api_key_security_scheme(schema):
    scheme = schema["components"]["securitySchemes"]["ApiKey"]

    assert scheme["type"] == "apiKey"
    assert scheme["in"] == "header"
    assert scheme["name"] == "Authorization"
    assert "Api-Key" in scheme["description"]
    # Authenticated operations require it; health and readiness need no key.
    assert {"ApiKey": []} in schema["paths"]["/api/v1/accounts"]["get"]["security"]
    assert {"ApiKey": []} in schema["paths"]["/api/v1/accounts/{account_id}/deposits"]["post"]["security"]
    assert {"ApiKey": []} not in schema["paths"]["/api/v1/health"]["get"].get("security", [])


def test_schema_documents_the_error_responses(schema):
    deposit = schema["paths"]["/api/v1/accounts/{account_id}/deposits"]["post"]["responses"]

    assert {"201", "400", "401", "403", "404", "409", "422"} <= set(deposit)


def test_spectacular_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"

    result = run_manage("spectacular", "--validate", "--fail-on-warn", "--file", str(out), timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "openapi: 3" in out.read_text()


def test_swagger_ui_answers(client, db):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    assert b"/api/schema/" in response.content

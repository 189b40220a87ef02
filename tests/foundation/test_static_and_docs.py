"""Docs and the admin work offline: Swagger UI and ReDoc load their assets from this service (drf-spectacular-
sidecar), and static files are served by the service itself (WhiteNoise), with DEBUG off and nothing collected."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

DOCS_PAGES = ["/api/docs/", "/api/redoc/"]


def _referenced(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


@pytest.mark.parametrize("page", DOCS_PAGES)
def test_docs_pages_reference_only_assets_this_service_serves(client, page):
    response = client.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    assets = _referenced(html)
    assert assets, html
    # Nothing on another host: no absolute URL, no protocol-relative one, anywhere in the page.
    assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+", html) == []
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/static/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert b"".join(served.streaming_content if served.streaming else [served.content])


def test_docs_point_at_the_schema(client):
    assert b"/api/schema/" in client.get("/api/docs/").content
    assert b"/api/schema/" in client.get("/api/redoc/").content


def test_admin_static_files_are_served_with_debug_off_and_nothing_collected(client):
    assert settings.DEBUG is False
    assert settings.STATIC_ROOT is None

    response = client.get("/static/admin/css/base.css")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")


def test_an_unknown_static_file_is_a_404(client):
    assert client.get("/static/admin/css/no-such-file.css").status_code == 404

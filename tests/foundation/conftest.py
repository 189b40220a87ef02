"""Fixtures for the foundation tests: a client that does not re-raise (``captured_log`` is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def api_client() -> Client:
    """A client that returns the 500 response, as a real caller would see it, instead of re-raising."""
    return Client(raise_request_exception=False)

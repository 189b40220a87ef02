"""The published OpenAPI schema is the truth, checked against the real service (the WSGI app, in process, on the
suite's database): schemathesis generates requests for every operation the schema lists (new endpoints are
covered as soon as they are in the schema), schema-valid and schema-invalid, with a trader's, an operator's and a
monitor's key, and checks every response: no 5xx; the status, content type, headers and body as documented; the
error code among those the operation documents; schema-invalid requests refused, schema-valid ones accepted
(tests/contract/conftest.py). Bounded: a few examples per operation and role, derandomized, so CI sees the same
cases every run.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from schemathesis.core.failures import FailureGroup

from tests.contract.conftest import (
    contract_config,
    documented_error_code,
    positive_data_accepted,
    published_schema,
)

MAX_EXAMPLES = 6
APP = get_wsgi_application()
SCHEMA = schemathesis.openapi.from_dict(published_schema(), config=contract_config(MAX_EXAMPLES))
SCHEMA.app = APP
SETTINGS = hypothesis.settings(
    suppress_health_check=list(hypothesis.HealthCheck), deadline=None, database=None, print_blob=False
)


@SCHEMA.parametrize()
@SETTINGS
def test_every_operation_conforms_to_the_schema(case, world):
    """Each generated request goes out with the next role's key in turn (trader, operator, monitor), so every
    operation is answered for each of them: the operator's money movements succeed, the trader's are 403."""
    role = world.next_role()
    world.aim(case)
    case.call_and_validate(
        headers=world.headers(role), additional_checks=[documented_error_code, positive_data_accepted]
    )


def test_the_schema_covers_every_operation_the_urlconf_serves():
    """The parametrized tests above take their operations from the schema; tests/test_schema.py proves the
    schema lists every /api/v1 route and method, so together nothing the service answers goes unchecked."""
    operations = {(op.ok().method.upper(), op.ok().path) for op in SCHEMA.get_all_operations()}

    assert ("POST", "/api/v1/orders") in operations
    assert ("GET", "/api/v1/accounts/{account_id}/transactions") in operations
    assert len(operations) >= 25


@extend_schema_field(OpenApiTypes.INT)
class _WronglyAnnotatedCharField(serializers.CharField):
    """Serializes a string, as before, but tells the schema it is an integer: the mistake the test must catch."""


def test_a_wrong_serializer_annotation_fails_the_conformance_check(monkeypatch, world):
    from markets.serializers import MarketOut

    monkeypatch.setitem(MarketOut._declared_fields, "symbol", _WronglyAnnotatedCharField())
    wrong = schemathesis.openapi.from_dict(published_schema(), config=contract_config(1))
    wrong.app = APP
    case = wrong["/api/v1/markets"]["GET"].Case()

    with pytest.raises(FailureGroup) as failure:
        case.call_and_validate(headers=world.headers("trader"))

    [violation] = failure.value.exceptions
    assert violation.title == "Response violates schema"
    assert '"BTC-USD" is not of type "integer"' in str(violation)

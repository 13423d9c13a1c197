"""Schema-driven API fuzzing (issue 8): schemathesis against the project's own ``/api/schema/``.

Every operation of the OpenAPI schema is exercised in process through the WSGI application (no
server), authenticated with a real JWT of a trader who has data (``traders`` fixture: positions,
logs, alerts, quotes), with positive and negative inputs. Checks: no 5xx (``not_a_server_error``),
every status code documented (``status_code_conformance``), documented content type and body schema
(``content_type_conformance``, ``response_schema_conformance``). Bounded for CI: a fixed seed,
deterministic generation, a few examples per operation and no shrinking.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tradingsite.wsgi import application

pytestmark = pytest.mark.django_db

FUZZ_CONFIG = """
seed = 20261130

[generation]
mode = "all"
max-examples = 8
deterministic = true
database = "none"
no-shrink = true
"""

schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json", application, config=schemathesis.Config.from_str(FUZZ_CONFIG)
)
DOCUMENTED_METHODS: dict[str, set[str]] = {}
for _path, _item in schema.raw_schema["paths"].items():
    DOCUMENTED_METHODS[_path] = {method.upper() for method in _item if method != "parameters"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def keep_test_connection():
    """Requests go through the raw WSGI handler, whose request signals would close the test's
    connection mid-transaction; Django's own test client disconnects them the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(traders, keep_test_connection) -> dict[str, str]:
    alice, _bob = traders
    return {"Authorization": f"Bearer {alice.token}"}


# Figures of the run, printed in pytest's terminal summary (tests/security/conftest.py):
# requests per operation and per status code, and the wall time of the fuzzing tests.
FIGURES: dict[str, Any] = {"operations": Counter(), "statuses": Counter(), "seconds": 0.0}


def figures_line() -> str | None:
    """One line of figures, or None when no fuzzing test ran."""
    operations, statuses = FIGURES["operations"], FIGURES["statuses"]
    if not operations:
        return None
    documented = {key for key in operations if key.split(" ", 1)[0] in DOCUMENTED_METHODS.get(key.split(" ", 1)[1], ())}
    return (
        f"schemathesis: {len(documented)} documented operations, {sum(operations.values())} requests "
        f"({sum(operations[key] for key in documented)} on documented operations, "
        f"min {min(operations[key] for key in documented)} per operation), "
        f"statuses {dict(sorted(statuses.items()))}, {FIGURES['seconds']:.1f} s"
    )


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_conforms_to_its_schema(case, bearer):
    started = time.monotonic()
    try:
        response = case.call_and_validate(headers=bearer, checks=CHECKS)
    finally:
        FIGURES["seconds"] += time.monotonic() - started
    FIGURES["operations"][f"{case.method} {case.path}"] += 1
    FIGURES["statuses"][response.status_code] += 1


# --------------------------------------------------------------------------------------------
# What the fuzzing relies on, asserted directly
# --------------------------------------------------------------------------------------------
def test_every_api_operation_of_the_url_conf_is_in_the_schema():
    # The fuzzer only sees what the schema lists: an operation missing from it would go untested.
    from tests.security.endpoints import api_operations

    documented = {(method, path) for path, methods in DOCUMENTED_METHODS.items() for method in methods}
    routed = {(op.method, op.path.replace("{pk}", "{id}")) for op in api_operations() if op.path != "/api/v1/"}
    assert routed - documented == set()


def test_schema_documents_the_errors_each_operation_answers():
    # tradingsite.schema.ErrorResponsesAutoSchema: 401 everywhere, 400/413 with a body, 404 with a path
    # parameter or a cursor, 429 where throttled; the sync's 409 from its own extend_schema.
    responses = {
        (method.upper(), path): set(operation["responses"])
        for path, item in schema.raw_schema["paths"].items()
        for method, operation in item.items()
    }
    assert responses[("POST", "/api/v1/reconciliation/syncs/")] >= {"200", "201", "400", "401", "409", "413", "429"}
    assert responses[("POST", "/api/v1/auth/token/")] >= {"200", "400", "401", "413", "429"}
    assert responses[("GET", "/api/v1/positions/{id}/")] >= {"200", "401", "404"}
    assert responses[("GET", "/api/v1/reconciliation/logs/")] >= {"200", "400", "401", "404"}
    assert all("401" in codes for codes in responses.values())


def test_an_unrouted_api_path_is_a_json_404(auth_client, client):
    # positions/abc/ matches no route (ids are digits): Django's handler404, JSON under /api/
    response = auth_client.get("/api/v1/positions/abc/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    # and outside the API Django's own page is kept
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")

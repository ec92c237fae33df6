"""Property-based fuzzing of the whole API from its OpenAPI document (schemathesis).

Every generated request (valid or not) must get a documented status with a body
matching the documented schema; a 500 is always a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api import create_app
from backend.bootstrap import ensure_database
from backend.gateway import SandboxGateway
from backend.service_layer import services
from backend.service_layer.unit_of_work import UnitOfWork
from billtalk.db import make_engine
from tests.backend.conftest import _reset_postgres, build_community

SERVICE = "bt_svc_fuzz_service_token_for_tests_only_000000"
STAFF = "bt_sta_fuzz_staff_token_for_tests_only_00000000"
STAFF_PATHS = (
    "/reports",
    "/ledger/check",
    "/readings/flagged",
    "/review",
    "/refund",
    "/reverse",
    "/approve",
    "/decline",
    "/audit/verify",
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("fuzz") / "billtalk.db"
        url = f"sqlite:///{path}"
        ensure_database(url)
    else:
        url = request.getfixturevalue("backend_postgres_url")
        _reset_postgres(url)
    engine = make_engine(url)
    uow = UnitOfWork(engine)
    build_community(uow)
    services.issue_token(uow, "service", token=SERVICE)
    services.issue_token(uow, "staff", token=STAFF)
    engine.dispose()
    app = create_app(url, gateway=SandboxGateway(b"f" * 32))
    yield app
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzz_app)


def _check(case: schemathesis.Case) -> None:
    token = STAFF if any(p in case.path for p in STAFF_PATHS) else SERVICE
    headers = {"Authorization": f"Bearer {token}"}
    if case.path == "/api/v1/gateway/webhook":
        headers = {}
    response = case.call(headers=headers)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_api_never_fails_and_matches_its_schema(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation, a bounded number of generated cases each (valid and invalid data)."""
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            _check(case)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert operations >= 30
    assert not failures, "\n\n".join(failures)

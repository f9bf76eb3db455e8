"""Schemathesis against the registry's OpenAPI document: generated valid, malformed and hostile
requests to every operation get a documented answer, never a 500; a refused one (4xx) says why
in JSON and writes nothing (a refused login: only its audit record). Each operation is called
with the token of a role that may call it (from ``registry.roles``), so the generated input
reaches the route itself; role refusals are tested in tests/unit/registry/test_roles.py.

Bounded: a few examples per operation, derandomised so CI runs the same cases every time.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from registry import assets, care, roles
from registry.api import create_app
from registry.db import open_database, transaction
from registry.schemas import (
    AdmitRequest,
    AssignRequest,
    BedRequest,
    DeviceRequest,
    GatewayRequest,
    PatientRequest,
    SiteRequest,
    UnitRequest,
)
from tests.unit.registry.authn import bearer, token_for
from tests.unit.registry.test_service import snapshot

warnings.filterwarnings("ignore", message=".*httpx2.*")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


# The schema is loaded when the module is collected, so the app and its database exist then
# (schemathesis.pytest.from_fixture does not work with this pytest); the module fixture seeds
# the database and removes it at the end.
_DIR = Path(tempfile.mkdtemp(prefix="wardwatch-schemathesis-"))
atexit.register(shutil.rmtree, _DIR, True)  # also when the module's tests are deselected
ENGINE = open_database(f"sqlite:///{_DIR / 'registry.db'}")
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(ENGINE, clock=lambda: NOW, publish_command=lambda *_: None))
TOKENS = {role.value: token_for(ENGINE, role.value, now=NOW) for role in roles.Role}
AUDIT = {"audit_log", "audit_head"}
NEEDS_BROKER = {"/gateways/{gateway}/enroll", "/gateways/{gateway}/rotate",
                "/gateways/{gateway}/revoke"}


def headers_for(method: str, path: str) -> dict[str, str]:
    """The token of a role holding the operation's permission (a unit manager for /login, and
    for a method the path does not take: schemathesis tries those too)."""
    permission = roles.rule_for(method, path)
    if permission is None:
        return bearer(TOKENS["unit_manager"])
    holders = sorted(roles.GRANTS[permission])
    role = "unit_manager" if "unit_manager" in holders else holders[0]
    return bearer(TOKENS[role])


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with transaction(ENGINE) as s:  # something for generated ids to hit now and then
        assets.add_site(s, SiteRequest(id="0"), now=NOW)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "0", "id": "0", "time_zone": "UTC"}), now=NOW)
        assets.add_gateway(s, "0", "0", GatewayRequest(id="0"), now=NOW)
        assets.add_bed(s, "0", "0", BedRequest(id="0", gateway="0"), now=NOW)
        assets.add_device(s, DeviceRequest(id="0", manufacturer="A", model="B",
                                           serial_number="0", driver="a"), now=NOW)
        care.add_patient(s, PatientRequest(id="P-0000", dob=date(2020, 1, 1)), now=NOW)
        care.assign(s, AssignRequest(device="0", site="0", unit="0", bed="0"), now=NOW)
        care.admit(s, AdmitRequest(patient="P-0000", site="0", unit="0", bed="0"), now=NOW)
    yield ENGINE
    ENGINE.dispose()
    shutil.rmtree(_DIR, ignore_errors=True)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@schema.parametrize()
@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_500_and_a_refusal_writes_nothing(
    case: schemathesis.Case, engine: Engine
) -> None:
    before = snapshot(engine)
    response = case.call(headers=headers_for(case.method, case.path))
    if case.path in NEEDS_BROKER and response.status_code == 503:
        # enrolment needs the serve process's broker connection (none here): a documented 503
        assert "no broker connection" in response.json()["reason"]
        assert snapshot(engine) == before
        return
    case.validate_response(response, checks=CHECKS)
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and body.get("reason"), body
        after = snapshot(engine)
        if case.path == "/login":  # a refused login is recorded, nothing else
            after = {k: v for k, v in after.items() if k not in AUDIT}
            before = {k: v for k, v in before.items() if k not in AUDIT}
        assert after == before, "a refused request wrote something"

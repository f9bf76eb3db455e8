"""Every role against every route of the API, from its OpenAPI document: a route without a rule
in ``registry.roles`` fails here; without a token every route but /login answers 401; a role
without the route's permission gets 403 with a reason; a role with it gets past authorisation
(whatever the request's own answer). Plus the checks the issue names in words."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from registry import roles
from registry.api import create_app
from registry.db import open_database
from registry.roles import GRANTS, RULES, Permission, Role
from tests.unit.registry.authn import bearer, token_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, TestClient,
                                                                      dict[str, str]]]:
    engine = open_database(f"sqlite:///{tmp_path_factory.mktemp('roles') / 'r.db'}")
    tokens = {role.value: token_for(engine, role.value, now=NOW) for role in Role}
    with TestClient(create_app(engine, clock=lambda: NOW)) as client:
        yield engine, client, tokens
    engine.dispose()


def _routes() -> list[tuple[str, str]]:
    engine = open_database("sqlite://")
    doc = create_app(engine).openapi()
    engine.dispose()
    return sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops)


ROUTES = _routes()


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "P-0000" if m.group(1) == "patient" else "x", path)


def test_every_route_has_exactly_one_rule_and_every_rule_a_route() -> None:
    missing = [r for r in ROUTES if r not in RULES]
    assert missing == [], f"routes without a permission rule in registry.roles: {missing}"
    stale = [r for r in RULES if r not in ROUTES]
    assert stale == [], f"rules for routes that do not exist: {stale}"
    assert set(GRANTS) == set(Permission)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_role_against_every_route(
    setup: tuple[Engine, TestClient, dict[str, str]], method: str, path: str
) -> None:
    _, client, tokens = setup
    permission = RULES[(method, path)]
    url = _concrete(path)
    anonymous = client.request(method, url, json={})
    if permission is Permission.PUBLIC:
        assert anonymous.status_code != 401, anonymous.text
    else:
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["error"] == "unauthorized"
    for role in Role:
        resp = client.request(method, url, json={}, headers=bearer(tokens[role.value]))
        if roles.allowed(role.value, permission):
            assert resp.status_code not in (401, 403), (role, resp.text)
        else:
            assert resp.status_code == 403, (role, resp.text)
            reason = resp.json()["reason"]
            assert f"role {role.value} may not" in reason, reason


def test_a_route_without_a_rule_is_refused(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'r.db'}")
    app = create_app(engine, clock=lambda: NOW)

    @app.get("/unruled")
    def unruled() -> dict[str, str]:
        return {"leak": "yes"}

    with TestClient(app) as c:
        r = c.get("/unruled", headers=bearer(token_for(engine, "admin", now=NOW)))
    assert r.status_code == 403 and "no permission rule" in r.json()["reason"]
    engine.dispose()


@pytest.mark.parametrize(("role", "method", "path", "allowed"), [
    ("nurse", "POST", "/devices", False),  # a nurse cannot register devices
    ("nurse", "POST", "/admissions", True),
    ("nurse", "POST", "/admissions/{admission}/transfer", True),
    ("nurse", "POST", "/units/{site}/{unit}/alerts/{alert_id}/ack", True),
    ("biomed", "POST", "/devices", True),
    ("biomed", "POST", "/units/{site}/{unit}/gateways", True),
    ("biomed", "POST", "/units/{site}/{unit}/beds", True),
    ("biomed", "POST", "/admissions", False),  # a biomed cannot admit patients
    ("biomed", "POST", "/units/{site}/{unit}/alerts/{alert_id}/ack", False),  # nor ack alerts
    ("unit_manager", "POST", "/units/{site}/{unit}/alerts/{alert_id}/ack", False),
    ("service", "GET", "/units/{site}/{unit}/context", True),
    ("service", "GET", "/patients", False),
    ("service", "POST", "/devices/{device}/seen", True),
    ("admin", "POST", "/users", True),
    ("unit_manager", "POST", "/users", False),
    ("nurse_in_charge", "POST", "/units/{site}/{unit}/alerts/{alert_id}/escalate", True),
])
def test_the_rules_the_issue_names(role: str, method: str, path: str, allowed: bool) -> None:
    permission = roles.rule_for(method, path)
    assert permission is not None
    assert roles.allowed(role, permission) is allowed
    assert (roles.refusal(role, permission) is None) is allowed


def test_the_documented_permission_table_is_the_data() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "registry.md").read_text()
    header = "| permission | " + " | ".join(r.value for r in Role) + " |"
    lines = doc[doc.index(header):].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = {r.value for r, c in zip(Role, cells[1:], strict=True)
                                     if c == "yes"}
    assert rows == {p.value: {r.value for r in GRANTS[p]} for p in Permission}

"""The REST API in-process (FastAPI's TestClient), on SQLite and PostgreSQL: the workflow over
HTTP, the unit context exactly as ``servicekit.context`` reads it, and refusals as 4xx JSON with a
reason and nothing written."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from registry.api import create_app
from registry.db import transaction
from registry.unitcontext import unit_context
from tests.unit.registry.authn import bearer, token_for
from tests.unit.registry.test_service import snapshot
from wardwire.context import UnitContext

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    """A unit manager's client (sites, units, devices, patients: most routes)."""
    headers = bearer(token_for(engine, "unit_manager", now=NOW))
    with TestClient(create_app(engine, clock=lambda: NOW), headers=headers) as c:
        yield c


def ok(resp: object, status: int = 200) -> dict[str, object]:
    code = resp.status_code  # type: ignore[attr-defined]
    assert code == status, resp.text  # type: ignore[attr-defined]
    body: dict[str, object] = resp.json()  # type: ignore[attr-defined]
    return body


def seed(c: TestClient) -> None:
    ok(c.post("/sites", json={"id": "demo", "name": "Demo"}), 201)
    ok(c.post("/units", json={"site": "demo", "id": "picu", "time_zone": "Asia/Shanghai",
                              "generation": "demo"}), 201)
    ok(c.post("/units/demo/picu/gateways", json={"id": "gw-a"}), 201)
    for bed in ("bed01", "bed02"):
        ok(c.post("/units/demo/picu/beds", json={"id": bed, "gateway": "gw-a"}), 201)
    ok(c.post("/devices", json={"id": "mon-01", "manufacturer": "Acme", "model": "WW-1",
                                "serial_number": "SN-0001", "driver": "wwmon",
                                "udi": "(01)00884838000018(21)SN-0001",
                                "port": "/dev/ttyUSB0", "maintenance_due": "2026-01-31"}), 201)
    ok(c.post("/patients", json={"id": "P-1a2b3c", "dob": "2022-03-14"}), 201)


def test_the_workflow_over_http(client: TestClient, engine: Engine) -> None:
    c = client
    seed(c)
    t = (NOW - timedelta(hours=2)).isoformat()
    a = ok(c.post("/assignments", json={"device": "mon-01", "site": "demo", "unit": "picu",
                                        "bed": "bed01", "time": t}), 201)
    assert a["gateway"] == "gw-a"
    adm = ok(c.post("/admissions", json={"patient": "P-1a2b3c", "site": "demo", "unit": "picu",
                                         "bed": "bed01", "time": t}), 201)
    moved = ok(c.post(f"/admissions/{adm['id']}/transfer",
                      json={"site": "demo", "unit": "picu", "bed": "bed02",
                            "time": (NOW - timedelta(hours=1)).isoformat()}))
    assert [s["bed"] for s in moved["stays"]] == ["bed01", "bed02"]  # type: ignore[union-attr]
    at = ok(c.get("/devices/mon-01/at", params={"time": (NOW - timedelta(minutes=90)).isoformat()}))
    assert (at["bed"], at["patient"], at["admission"]) == ("bed01", "P-1a2b3c", adm["id"])
    assert ok(c.get("/devices/mon-01/at", params={"time": NOW.isoformat()}))["patient"] is None
    ok(c.post("/admissions/P-1a2b3c/discharge"))
    assert ok(c.get("/patients/P-1a2b3c"))["admission"] is None
    ok(c.post("/devices/mon-01/unassign", json={}))
    ok(c.patch("/devices/mon-01", json={"firmware": "2.1.0"}))
    five_ago = (NOW - timedelta(minutes=5)).isoformat()
    service = bearer(token_for(engine, "service", now=NOW))  # a service reports devices seen
    seen = ok(c.post("/devices/mon-01/seen", json={"time": five_ago}, headers=service))
    assert seen["last_seen"] == "2025-06-01T11:55:00Z" and seen["firmware"] == "2.1.0"
    assert ok(c.post("/devices/mon-01/retire"))["status"] == "retired"
    history = c.get("/devices/mon-01/assignments").json()
    assert [h["bed"] for h in history] == ["bed01"] and history[0]["ended_at"] is not None
    assert "/units/{site}/{unit}/context" in ok(c.get("/openapi.json"))["paths"]  # type: ignore[operator]


def test_the_context_is_the_unit_context_json(client: TestClient, engine: Engine) -> None:
    c = client
    seed(c)
    ok(c.post("/assignments", json={"device": "mon-01", "site": "demo", "unit": "picu",
                                    "bed": "bed01"}), 201)
    adm = ok(c.post("/admissions", json={"patient": "P-1a2b3c", "site": "demo", "unit": "picu",
                                         "bed": "bed01"}), 201)
    resp = c.get("/units/demo/picu/context", headers={"Accept": "application/json"})
    ctx = UnitContext.model_validate_json(resp.content)
    with transaction(engine) as s:
        assert ctx == unit_context(s, "demo", "picu", at=NOW)
    assert ctx.beds[0].admission == adm["id"] and ctx.beds[0].devices == ["mon-01"]
    assert ctx.bed_of("gw-a", "mon-01") is not None
    earlier = c.get("/units/demo/picu/context",
                    params={"at": (NOW - timedelta(days=1)).isoformat()}).json()
    assert [(b["id"], b["devices"], b["patient"]) for b in earlier["beds"]] == [
        ("bed01", [], None), ("bed02", [], None)]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), [
    ("post", "/assignments", {"device": "mon-01", "site": "demo", "unit": "picu",
                              "bed": "bed09"}, 404, "unknown bed demo/picu/bed09"),
    ("post", "/assignments", {"device": "mon-01", "site": "demo", "unit": "picu",
                              "bed": "bed02"}, 409, "already assigned"),
    ("post", "/admissions", {"patient": "P-1a2b3c", "site": "demo", "unit": "picu",
                             "bed": "bed02"}, 409, "already admitted"),
    ("post", "/devices", {"id": "x", "manufacturer": "A", "model": "B",
                          "serial_number": "S N", "driver": "wwmon"}, 422,
     "bad serial number format"),
    ("post", "/devices", {"id": "x", "manufacturer": "A", "model": "B", "serial_number": "S",
                          "driver": "wwmon", "udi": "(01)12345678901234"}, 422, "bad UDI"),
    ("post", "/patients", {"id": "P-9z9z9z", "dob": "2030-01-01"}, 422, "in the future"),
    ("post", "/units", {"site": "demo", "id": "x", "time_zone": "Moon/Tycho"}, 422,
     "unknown time zone"),
    ("post", "/units", {"site": "demo", "id": "picu", "time_zone": "UTC"}, 409,
     "already exists"),
    ("post", "/sites", {"id": "../etc"}, 422, "id"),
    ("post", "/sites", [1, 2], 422, "request"),
    ("post", "/sites", {"id": "x", "name": "nul\x00byte"}, 422, "name"),
    ("post", "/sites", {"id": "x" * 65}, 422, "id"),
    ("post", "/patients", {"id": "P-\x00\x00\x00\x00", "dob": "2020-01-01"}, 422, "id"),
    ("patch", "/devices/mon-01", {"firmware": "1.0\x00"}, 422, "firmware"),
    ("post", "/units/demo/picu/beds", {"id": "b\u00e9d"}, 422, "id"),
    ("get", "/units/demo/nope/context", None, 404, "unknown unit demo/nope"),
    ("get", "/units/demo/picu/context?at=99999-01-01T00:00:00Z", None, 422, "at"),
    ("delete", "/sites/demo", None, 405, "Method Not Allowed"),
    ("get", "/no/such/path", None, 404, "Not Found"),
    ("get", "/devices/mon-01/at", None, 422, "time"),
    ("get", "/devices/mon-01/at?time=2025-06-01T10:00:00", None, 422, "time"),
    ("post", "/admissions/A-none/discharge", None, 404, "unknown admission"),
    ("post", "/units/demo/picu/beds/bed01/retire", None, 409, "occupied"),
])
def test_refusals_are_4xx_json_with_a_reason_and_write_nothing(
    client: TestClient, engine: Engine, method: str, path: str, body: object, status: int,
    words: str,
) -> None:
    c = client
    seed(c)
    ok(c.post("/assignments", json={"device": "mon-01", "site": "demo", "unit": "picu",
                                    "bed": "bed01"}), 201)
    ok(c.post("/admissions", json={"patient": "P-1a2b3c", "site": "demo", "unit": "picu",
                                   "bed": "bed01"}), 201)
    before = snapshot(engine)
    resp = c.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    reply = resp.json()
    assert words in reply["reason"] and reply["error"], reply
    assert snapshot(engine) == before

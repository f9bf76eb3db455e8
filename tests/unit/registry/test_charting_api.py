"""``POST /units/{site}/{unit}/charted-sets`` (TestClient, SQLite, an injected clock and a fake
publisher): only nurses chart; the set is by the authenticated user, charted at the registry's
now, validated as ingest and the alert engine validate it (422 with the reason, nothing
published), an unknown unit or bed is 404, no publisher or a failing one 503 (nothing audited),
and a published set is audited as ``chart.entered`` with its id and no item values."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from registry import assets, audit
from registry.api import create_app
from registry.db import transaction
from registry.schemas import BedRequest, GatewayRequest, SiteRequest, UnitRequest
from tests.unit.registry.authn import bearer, token_for
from wardwire.models import ChartedSet, Generation

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "/units/demo/picu/charted-sets"
Sent = list[tuple[str, str, ChartedSet]]


@pytest.fixture
def new_database(tmp_path: Path, sqlite_template: Path) -> Callable[[], str]:
    """SQLite only: the route does not depend on the database."""
    def sqlite() -> str:
        path = tmp_path / "registry.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"

    return sqlite


@pytest.fixture
def sent() -> Sent:
    return []


@pytest.fixture
def client(engine: Engine, sent: Sent) -> Iterator[TestClient]:
    with transaction(engine) as s:
        assets.add_site(s, SiteRequest(id="demo"), now=T0 - timedelta(days=30))
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "demo", "id": "picu", "time_zone": "Asia/Shanghai", "generation": "demo"}),
            now=T0 - timedelta(days=30))
        assets.add_gateway(s, "demo", "picu", GatewayRequest(id="gw1"), now=T0 - timedelta(days=30))
        for bed in ("b1", "b2"):
            assets.add_bed(s, "demo", "picu", BedRequest(id=bed, gateway="gw1"),
                           now=T0 - timedelta(days=30))
    app = create_app(engine, clock=lambda: T0, publish_chart=lambda *a: sent.append(a))
    with TestClient(app) as c:
        yield c


def nurse(engine: Engine, user: str = "rn-7") -> dict[str, str]:
    return bearer(token_for(engine, "nurse", user, now=T0))


def test_a_nurses_set_is_by_her_charted_now_and_published(
    client: TestClient, engine: Engine, sent: Sent
) -> None:
    r = client.post(URL, headers=nurse(engine), json={
        "bed_id": "b1", "items": {"avpu": "V", "crt_s": 3}})
    assert r.status_code == 202, r.text
    ((site, unit, cs),) = sent
    assert (site, unit) == ("demo", "picu")
    assert ChartedSet.model_validate_json(r.content) == cs
    assert (cs.by, cs.unit, cs.bed_id, cs.generation) == ("rn-7", "picu", "b1", Generation.DEMO)
    assert cs.charted_at == cs.observed_at == T0 and cs.set_id.startswith("cs-")
    assert cs.items == {"avpu": "V", "crt_s": 3}
    # a back-entry in the unit's local time (UTC+8), correcting the first, by a nurse in charge
    h = bearer(token_for(engine, "nurse_in_charge", "nic-1", now=T0))
    r = client.post(URL, headers=h, json={
        "bed_id": "b1", "items": {"avpu": "A"}, "observed_at": "2026-03-01T17:30",
        "supersedes": cs.set_id, "already_escalated": True})
    assert r.status_code == 202, r.text
    fix = sent[-1][2]
    assert fix.observed_at == T0 - timedelta(hours=2, minutes=30) and fix.charted_at == T0
    assert (fix.by, fix.supersedes, fix.already_escalated) == ("nic-1", cs.set_id, True)
    assert fix.set_id != cs.set_id
    # audited after publishing: the set's id, never its values
    with transaction(engine) as s:
        recs = [e for e in audit.entries(s) if e.action == "chart.entered"]
    assert [(e.actor, e.detail["set"]) for e in recs] == [("rn-7", cs.set_id),
                                                          ("nic-1", fix.set_id)]
    assert all('"V"' not in json.dumps(e.detail) and "avpu" not in json.dumps(e.as_json())
               for e in recs)


@pytest.mark.parametrize("role", ["biomed", "unit_manager", "admin", "service", "alert_engine"])
def test_only_nurses_chart(client: TestClient, engine: Engine, sent: Sent, role: str) -> None:
    r = client.post(URL, headers=bearer(token_for(engine, role, now=T0)),
                    json={"bed_id": "b1", "items": {"avpu": "V"}})
    assert r.status_code == 403 and "chart observations" in r.json()["reason"]
    assert client.post(URL, json={"bed_id": "b1", "items": {"avpu": "V"}}).status_code == 401
    assert sent == []


@pytest.mark.parametrize(("body", "words"), [
    ({"bed_id": "b1", "items": {"pain": 3}}, "not charting keys: ['pain'] (charting keys: "),
    ({"bed_id": "b1", "items": {}}, "items"),
    ({"bed_id": "b1", "items": {"avpu": "x" * 65}}, "items.avpu"),
    ({"bed_id": "b1", "items": {f"k{i}": 1 for i in range(40)}}, "items"),
    ({"bed_id": "b1", "items": ["avpu"]}, "items"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "by": "someone-else"}, "by"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "charted_at": "2026-03-01T00:00Z"}, "charted_at"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "set_id": "cs-mine"}, "set_id"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "observed_at": "yesterday"},
     "not an ISO 8601 time"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "observed_at": "2026-03-01T12:02Z"},
     "in the future"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "observed_at": "2026-02-01T12:00Z"},
     "too old for a back-entry"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "supersedes": "not an id!"}, "supersedes"),
    ({"bed_id": "../b1", "items": {"avpu": "V"}}, "bed_id"),
    ({"bed_id": "b1", "items": {"avpu": "V"}, "by\u0000": "x"}, "by"),
])
def test_what_a_consumer_would_refuse_is_422_and_not_published(
    client: TestClient, engine: Engine, sent: Sent, body: dict[str, object], words: str
) -> None:
    r = client.post(URL, headers=nurse(engine), json=body)
    assert r.status_code == 422, r.text
    assert words in r.json()["reason"], r.json()["reason"]
    assert sent == []
    with transaction(engine) as s:
        assert not [e for e in audit.entries(s) if e.action == "chart.entered"]


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-1e400", b"[[[[[[[[[[1]]]]]]]]]]"])
def test_a_value_no_consumer_takes_is_422(
    client: TestClient, engine: Engine, sent: Sent, value: bytes
) -> None:
    r = client.post(URL, headers={**nurse(engine), "Content-Type": "application/json"},
                    content=b'{"bed_id": "b1", "items": {"crt_s": ' + value + b"}}")
    assert r.status_code == 422, r.text
    assert "items.crt_s" in r.json()["reason"] and sent == []


def test_a_time_a_little_ahead_is_now(client: TestClient, engine: Engine, sent: Sent) -> None:
    r = client.post(URL, headers=nurse(engine), json={
        "bed_id": "b1", "items": {"avpu": "V"}, "observed_at": "2026-03-01T12:00:30Z"})
    assert r.status_code == 202 and sent[-1][2].observed_at == T0


def test_an_unknown_unit_or_bed_is_404(client: TestClient, engine: Engine, sent: Sent) -> None:
    r = client.post("/units/demo/nicu/charted-sets", headers=nurse(engine),
                    json={"bed_id": "b1", "items": {"avpu": "V"}})
    assert r.status_code == 404
    r = client.post(URL, headers=nurse(engine), json={"bed_id": "b9", "items": {"avpu": "V"}})
    assert r.status_code == 404
    assert r.json()["reason"] == "bed 'b9' is not a bed of demo/picu (beds: b1, b2)"
    with transaction(engine) as s:
        assets.retire_bed(s, "demo", "picu", "b2", now=T0 - timedelta(hours=1))
    r = client.post(URL, headers=nurse(engine), json={"bed_id": "b2", "items": {"avpu": "V"}})
    assert r.status_code == 404, r.text
    assert sent == []


def test_without_a_publisher_or_with_a_failing_one_503_nothing_audited(engine: Engine) -> None:
    with transaction(engine) as s:
        assets.add_site(s, SiteRequest(id="demo"), now=T0)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "demo", "id": "picu", "time_zone": "UTC"}), now=T0)
        assets.add_gateway(s, "demo", "picu", GatewayRequest(id="gw1"), now=T0)
        assets.add_bed(s, "demo", "picu", BedRequest(id="b1", gateway="gw1"), now=T0)
    token = token_for(engine, "nurse", now=T0)

    def broken(*_: object) -> None:
        raise TimeoutError("the broker did not confirm the charted set within 5.0 s")

    for publish, words in ((None, "no broker configured"), (broken, "did not confirm")):
        with TestClient(create_app(engine, clock=lambda: T0, publish_chart=publish)) as c:
            r = c.post(URL, headers=bearer(token), json={"bed_id": "b1", "items": {"avpu": "V"}})
        assert r.status_code == 503 and words in r.json()["reason"]
    with transaction(engine) as s:
        assert not [e for e in audit.entries(s) if e.action == "chart.entered"]

"""The hash-chained audit log on SQLite and PostgreSQL: every change is recorded with who did it
and ids only (no date of birth, no pseudonym, no secret); a rolled-back change leaves no record;
changing, deleting, reordering or truncating records fails verification naming the record (and
``registry audit verify`` exits 1); concurrent writers append one chain."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from registry import assets, audit, care, users
from registry.cli import app as cli_app
from registry.db import transaction
from registry.errors import Conflict, Unauthorized
from registry.schemas import AdmitRequest, BedRequest, PatientRequest, SiteRequest, UnitRequest

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DOB = date(2021, 7, 19)


def seed(engine: Engine) -> None:
    with transaction(engine) as s:
        audit.act_as(s, "bo")
        audit.at_time(s, T0)
        assets.add_site(s, SiteRequest(id="demo"), now=T0)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "demo", "id": "picu", "time_zone": "UTC"}), now=T0)
        assets.add_bed(s, "demo", "picu", BedRequest(id="bed01"), now=T0)
    with transaction(engine) as s:
        audit.act_as(s, "kim")
        care.add_patient(s, PatientRequest(id="P-7q7q7q7q", dob=DOB), now=T0)
        care.admit(s, AdmitRequest(patient="P-7q7q7q7q", site="demo", unit="picu",
                                   bed="bed01", time=T0 - timedelta(hours=1)), now=T0)


def verdict(engine: Engine) -> audit.Verdict:
    with transaction(engine) as s:
        return audit.verify(s)


def test_changes_are_recorded_by_who_with_ids_only(engine: Engine) -> None:
    seed(engine)
    with transaction(engine) as s:
        records = list(audit.entries(s))
    assert [(r.seq, r.actor, r.action) for r in records[:3]] == [
        (1, "bo", "sites.insert"), (2, "bo", "units.insert"), (3, "bo", "beds.insert")]
    assert {r.actor for r in records[3:]} == {"kim"}
    assert {"patients.insert", "admissions.insert", "bed_stays.insert"} <= {
        r.action for r in records}
    everything = json.dumps([r.as_json() for r in records])
    assert "P-7q7q7q7q" not in everything and DOB.isoformat() not in everything
    assert verdict(engine).ok and verdict(engine).checked == len(records)


def test_a_rolled_back_change_leaves_no_record(engine: Engine) -> None:
    seed(engine)
    before = verdict(engine).checked
    with pytest.raises(Conflict), transaction(engine) as s:
        assets.add_site(s, SiteRequest(id="other"), now=T0)
        audit.record(s, "kim", "gateway.enroll", "gateways/gw-x", {"unit": "demo/picu"}, now=T0)
        assets.add_site(s, SiteRequest(id="demo"), now=T0)  # already exists: refused
    assert verdict(engine).checked == before and verdict(engine).ok


def test_explicit_records_and_no_secret(engine: Engine) -> None:
    with transaction(engine) as s:
        users.add_user(s, users.UserRequest(id="ingest", role="service"), now=T0)
        issued = users.issue_token(s, "ingest", now=T0)
        audit.record(s, "admin", "gateway.revoke", "gateways/gw-a", {"kicked": True}, now=T0)
    with transaction(engine) as s:
        records = list(audit.entries(s))
    assert records[-1].action == "gateway.revoke" and records[-1].detail == {"kicked": True}
    secret = issued.token.split("_", 2)[2]  # the secret itself may hold "_"
    assert secret not in json.dumps([r.as_json() for r in records])
    with pytest.raises(TypeError), transaction(engine) as s:
        audit.record(s, "x", "bad", "x", {"not json": object()}, now=T0)


@pytest.mark.parametrize(("tamper", "seq", "words"), [
    ("UPDATE audit_log SET detail = '{\"id\":\"evil\"}' WHERE seq = 2", 2, "contents"),
    ("UPDATE audit_log SET actor = 'nobody' WHERE seq = 4", 4, "contents"),
    ("UPDATE audit_log SET at = at + INTERVAL '1 second' WHERE seq = 3", 3, "contents"),
    ("DELETE FROM audit_log WHERE seq = 3", 3, "missing"),
    ("DELETE FROM audit_log WHERE seq >= 5", 5, "missing"),  # a truncated tail
    ("SWAP 2 3", 2, "previous-hash"),  # two records' places exchanged
    ("UPDATE audit_log SET detail = 'not json' WHERE seq = 1", 1, "not JSON"),
], ids=["detail", "actor", "time", "delete", "truncate", "reorder", "garbage"])
def test_a_tampered_log_fails_verification_naming_the_record(
    engine: Engine, registry_url: str, tamper: str, seq: int, words: str
) -> None:
    seed(engine)
    assert verdict(engine).ok
    with engine.begin() as conn:
        if tamper.startswith("SWAP"):
            a, b = (int(x) for x in tamper.split()[1:])
            conn.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = :a"), {"a": a})
            conn.execute(text("UPDATE audit_log SET seq = :a WHERE seq = :b"), {"a": a, "b": b})
            conn.execute(text("UPDATE audit_log SET seq = :b WHERE seq = -1"), {"b": b})
        else:
            if engine.dialect.name == "sqlite":
                tamper = tamper.replace("at + INTERVAL '1 second'", "datetime(at, '+1 second')")
            conn.execute(text(tamper))
    v = verdict(engine)
    assert v.broken is not None and v.broken.seq == seq and words in v.broken.reason, v
    result = CliRunner().invoke(cli_app, ["audit", "verify", "--db", registry_url])
    assert result.exit_code == 1 and f"broken at record {seq}" in result.output, result.output
    result = CliRunner().invoke(cli_app, ["audit", "verify", "--json", "--db", registry_url])
    assert json.loads(result.output)["broken"]["seq"] == seq


def test_concurrent_writers_append_one_chain(engine: Engine) -> None:
    seed(engine)
    before = verdict(engine).checked
    errors: list[BaseException] = []
    per_thread, threads = 8, 4

    def writer(k: int) -> None:
        try:
            for i in range(per_thread):
                with transaction(engine) as s:
                    audit.act_as(s, f"w{k}")
                    assets.add_bed(s, "demo", "picu", BedRequest(id=f"b{k}-{i}"), now=T0)
                    audit.record(s, None, "note", f"beds/b{k}-{i}", {"i": i}, now=T0)
        except Exception as exc:  # noqa: BLE001 (any failure is reported by the test below)
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert errors == []
    v = verdict(engine)
    assert v.ok and v.checked == before + 2 * per_thread * threads, v
    with transaction(engine) as s:  # each transaction's records are adjacent in the chain
        records = [r for r in audit.entries(s) if r.seq > before]
    for first, second in zip(records[::2], records[1::2], strict=True):
        assert (first.action, second.action) == ("beds.insert", "note")
        assert first.actor == second.actor


def test_the_cli_names_who_acted(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    r = CliRunner().invoke(cli_app, ["--as", "bo", "site", "add", "demo", "--db", db])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli_app, ["audit", "list", "--json", "--db", db])
    entries = json.loads(r.output)
    assert [(e["actor"], e["action"]) for e in entries] == [("cli:bo", "sites.insert")]
    r = CliRunner().invoke(cli_app, ["site", "add", "other", "--db", db])
    r = CliRunner().invoke(cli_app, ["audit", "list", "--since", "2000-01-01T00:00:00Z",
                                     "--json", "--db", db])
    assert json.loads(r.output)[-1]["actor"].startswith("cli:")
    r = CliRunner().invoke(cli_app, ["audit", "verify", "--db", db])
    assert r.exit_code == 0 and "ok: 2 records" in r.output


def test_tokens_expire_and_are_revoked_on_this_database(engine: Engine) -> None:
    with transaction(engine) as s:
        users.add_user(s, users.UserRequest(id="svc", role="service"), now=T0)
        issued = users.issue_token(s, "svc", ttl=timedelta(hours=1), now=T0)
    with transaction(engine) as s:
        assert users.authenticate(s, issued.token, now=T0 + timedelta(minutes=59)).user == "svc"
        with pytest.raises(Unauthorized, match="expired"):
            users.authenticate(s, issued.token, now=T0 + timedelta(hours=1))
    with transaction(engine) as s:
        users.disable_user(s, "svc", now=T0 + timedelta(minutes=1))
    with transaction(engine) as s, pytest.raises(Unauthorized, match="revoked"):
        users.authenticate(s, issued.token, now=T0 + timedelta(minutes=2))


def test_a_time_with_another_offset_is_hashed_as_stored(engine: Engine) -> None:
    shanghai = timezone(timedelta(hours=8))
    with transaction(engine) as s:
        audit.at_time(s, T0.astimezone(shanghai))
        assets.add_site(s, SiteRequest(id="east"), now=T0)
        audit.record(s, "x", "note", "sites/east", {}, now=T0.astimezone(shanghai))
    v = verdict(engine)
    assert v.ok and v.checked == 2, v
    with transaction(engine) as s:
        assert {e.at for e in audit.entries(s)} == {T0}

"""The registry's service layer on SQLite and on PostgreSQL: the biomedical workflow, history and
the "where and who at T" query, the unit context, ward-file import, and every refusal (with
nothing written)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from registry import assets, care
from registry.db import transaction
from registry.errors import Conflict, Invalid, NotFound, RegistryError
from registry.models import Base, BedStay, DeviceAssignment
from registry.schemas import (
    AdmitRequest,
    AssignRequest,
    BedRequest,
    DeviceRequest,
    GatewayRequest,
    PatientRequest,
    SiteRequest,
    TimeRequest,
    TransferRequest,
    UnitRequest,
)
from registry.unitcontext import import_ward, unit_context
from servicekit.context import load_ward_file
from wardwire.context import BedContext, GatewayContext, UnitContext

T = TypeVar("T")
Clock = Callable[[float], datetime]


def do(engine: Engine, fn: Callable[[Session], T]) -> T:
    with transaction(engine) as s:
        return fn(s)


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: "nothing half-written" is this being unchanged."""
    with engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
            for t in Base.metadata.sorted_tables
        }


def refused(engine: Engine, fn: Callable[[Session], object], kind: type[RegistryError],
            words: str) -> str:
    before = snapshot(engine)
    with pytest.raises(kind) as info:
        do(engine, fn)
    assert words in info.value.reason, info.value.reason
    assert snapshot(engine) == before, "a refused request wrote something"
    return info.value.reason


def device(dev_id: str, serial: str | None = None) -> DeviceRequest:
    return DeviceRequest(id=dev_id, manufacturer="Acme", model="WW-1",
                         serial_number=serial or f"SN-{dev_id}", driver="wwmon",
                         port="/dev/ttyUSB0")


def ward(engine: Engine, now: datetime, beds: int = 3) -> None:
    """demo/picu with gateways gw-a, gw-b; beds bed01.. on gw-a; devices mon-01.. unassigned."""
    def build(s: Session) -> None:
        assets.add_site(s, SiteRequest(id="demo", name="Demo hospital"), now=now)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "demo", "id": "picu", "time_zone": "Asia/Shanghai", "generation": "demo"}),
            now=now)
        assets.add_site(s, SiteRequest(id="other"), now=now)
        assets.add_unit(s, UnitRequest.model_validate(
            {"site": "other", "id": "nicu", "time_zone": "Europe/London"}), now=now)
        assets.add_gateway(s, "other", "nicu", GatewayRequest(id="gw-x"), now=now)
        for gw in ("gw-a", "gw-b"):
            assets.add_gateway(s, "demo", "picu", GatewayRequest(id=gw), now=now)
        for i in range(1, beds + 1):
            assets.add_bed(s, "demo", "picu", BedRequest(id=f"bed{i:02}", gateway="gw-a"),
                           now=now)
            assets.add_device(s, device(f"mon-{i:02}"), now=now)
        care.add_patient(s, PatientRequest(id="P-1a2b3c", dob=date(2022, 3, 14)), now=now)
        care.add_patient(s, PatientRequest(id="P-4d5e6f", dob=date(2019, 1, 2)), now=now)
    do(engine, build)


def assign(dev: str, bed: str, t: datetime, gateway: str | None = None) -> AssignRequest:
    return AssignRequest(device=dev, site="demo", unit="picu", bed=bed, time=t, gateway=gateway)


def admit(patient: str, bed: str, t: datetime | None = None) -> AdmitRequest:
    return AdmitRequest(patient=patient, site="demo", unit="picu", bed=bed, time=t)


def to(bed: str, t: datetime | None = None) -> TransferRequest:
    return TransferRequest(site="demo", unit="picu", bed=bed, time=t)


def test_the_biomed_workflow_keeps_history_and_answers_where_and_who(
    engine: Engine, clock: Clock
) -> None:
    now = clock(600)
    ward(engine, clock(0))
    do(engine, lambda s: care.assign(s, assign("mon-01", "bed01", clock(10)), now=now))
    a = do(engine, lambda s: care.admit(s, admit("P-1a2b3c", "bed01", clock(20)), now=now))
    assert a.id.startswith("A-") and a.stays[0].bed == "bed01"
    do(engine, lambda s: care.transfer(s, "P-1a2b3c", to("bed02", clock(60)), now=now))
    do(engine, lambda s: care.admit(s, admit("P-4d5e6f", "bed01", clock(90)), now=now))
    do(engine, lambda s: care.unassign(s, "mon-01", TimeRequest(time=clock(120)), now=now))
    do(engine, lambda s: care.assign(s, assign("mon-01", "bed02", clock(121)), now=now))
    d = do(engine, lambda s: care.discharge(s, a.id, TimeRequest(time=clock(300)), now=now))
    assert d.discharged_at == clock(300)
    assert [(st.bed, st.end_reason) for st in d.stays] == [("bed01", "transfer"),
                                                          ("bed02", "discharge")]

    def where(minutes: float) -> tuple[str | None, str | None, str | None]:
        ans = do(engine, lambda s: care.at(s, "mon-01", clock(minutes)))
        return ans.bed, ans.patient, ans.admission and ans.admission[:2]

    assert where(5) == (None, None, None)  # before its first assignment
    assert where(10) == ("bed01", None, None)  # ranges are [start, end)
    assert where(20) == ("bed01", "P-1a2b3c", "A-")
    assert where(59.9) == ("bed01", "P-1a2b3c", "A-")
    assert where(60) == ("bed01", None, None)  # the child moved, the monitor stayed
    assert where(100) == ("bed01", "P-4d5e6f", "A-")
    assert where(120) == (None, None, None)
    assert where(200) == ("bed02", "P-1a2b3c", "A-")
    assert where(300) == ("bed02", None, None)
    history = do(engine, lambda s: assets.device_history(s, "mon-01"))
    assert [(h.bed, h.ended_at) for h in history] == [("bed01", clock(120)), ("bed02", None)]
    # retire: unassign first, then it is out of service, its history intact
    refused(engine, lambda s: assets.retire_device(s, "mon-01", now=now), Conflict,
            "unassign it first")
    do(engine, lambda s: care.unassign(s, "mon-01", TimeRequest(time=clock(500)), now=now))
    retired = do(engine, lambda s: assets.retire_device(s, "mon-01", now=now))
    assert retired.status == "retired" and retired.retired_at == now
    assert do(engine, lambda s: care.at(s, "mon-01", clock(200))).patient == "P-1a2b3c"
    refused(engine, lambda s: care.assign(s, assign("mon-01", "bed03", clock(550)), now=now),
            Conflict, "device mon-01 is retired")


def test_every_invalid_request_is_refused_with_its_reason_and_writes_nothing(
    engine: Engine, clock: Clock
) -> None:
    now = clock(600)
    ward(engine, clock(0))
    do(engine, lambda s: care.assign(s, assign("mon-01", "bed01", clock(10)), now=now))
    do(engine, lambda s: care.admit(s, admit("P-1a2b3c", "bed01", clock(20)), now=now))

    def x(fn: Callable[[Session], object], kind: type[RegistryError], words: str) -> None:
        refused(engine, fn, kind, words)

    # unknown things
    x(lambda s: care.assign(s, assign("mon-02", "bed99", clock(30)), now=now), NotFound,
      "unknown bed demo/picu/bed99")
    x(lambda s: care.assign(s, assign("nope", "bed02", clock(30)), now=now), NotFound,
      "unknown device 'nope'")
    x(lambda s: care.admit(s, admit("P-999999", "bed02"), now=now), NotFound, "unknown patient")
    x(lambda s: care.discharge(s, "A-none", TimeRequest(), now=now), NotFound,
      "unknown admission")
    x(lambda s: care.at(s, "nope", now), NotFound, "unknown device")
    x(lambda s: unit_context(s, "demo", "nope", at=now), NotFound, "unknown unit demo/nope")
    # devices
    x(lambda s: care.assign(s, assign("mon-01", "bed02", clock(30)), now=now), Conflict,
      "device mon-01 is already assigned to demo/picu/bed01")
    x(lambda s: care.assign(s, assign("mon-02", "bed01", clock(30), "gw-b"), now=now), Conflict,
      "devices are on gateway gw-a")
    x(lambda s: care.assign(s, assign("mon-02", "bed02", clock(30), "gw-x"), now=now), Conflict,
      "gateway gw-x serves other/nicu")
    x(lambda s: care.unassign(s, "mon-02", TimeRequest(), now=now), Conflict, "not assigned")
    x(lambda s: care.unassign(s, "mon-01", TimeRequest(time=clock(10)), now=now), Invalid,
      "not after it began")
    x(lambda s: assets.add_device(s, device("mon-09", serial="SN-mon-01"), now=now), Conflict,
      "already registered as device mon-01")
    x(lambda s: assets.add_device(s, device("mon-01"), now=now), Conflict, "already exists")
    # admissions
    x(lambda s: care.admit(s, admit("P-4d5e6f", "bed01", clock(30)), now=now), Conflict,
      "bed demo/picu/bed01 is occupied")
    x(lambda s: care.admit(s, admit("P-1a2b3c", "bed02", clock(30)), now=now), Conflict,
      "P-1a2b3c is already admitted")
    x(lambda s: care.transfer(s, "P-1a2b3c", to("bed02", clock(20)), now=now), Invalid,
      "not after it began")
    x(lambda s: care.transfer(s, "P-1a2b3c", to("bed01", clock(30)), now=now), Conflict,
      "already in demo/picu/bed01")
    x(lambda s: care.discharge(s, "P-4d5e6f", TimeRequest(), now=now), NotFound, "not admitted")
    x(lambda s: care.admit(s, admit("P-4d5e6f", "bed02", now + timedelta(minutes=5)), now=now),
      Invalid, "is in the future")
    x(lambda s: care.add_patient(s, PatientRequest(id="P-7g8h9i", dob=date(2031, 1, 1)),
                                 now=now), Invalid, "date of birth 2031-01-01 is in the future")
    x(lambda s: care.add_patient(s, PatientRequest(id="P-1a2b3c", dob=date(2020, 1, 1)),
                                 now=now), Conflict, "already exists")
    # a discharge back-dated before a later admission's start is refused (overlap)
    do(engine, lambda s: care.discharge(s, "P-1a2b3c", TimeRequest(time=clock(100)), now=now))
    x(lambda s: care.admit(s, admit("P-4d5e6f", "bed01", clock(90)), now=now), Conflict,
      "occupied until")
    x(lambda s: care.admit(s, admit("P-1a2b3c", "bed02", clock(90)), now=now), Conflict,
      "would overlap")
    # assets
    x(lambda s: assets.retire_bed(s, "demo", "picu", "bed01", now=now), Conflict,
      "still has devices mon-01")
    x(lambda s: assets.retire_gateway(s, "gw-a", now=now), Conflict, "still serves devices")
    x(lambda s: assets.retire_unit(s, "demo", "picu", now=now), Conflict, "active beds")
    x(lambda s: assets.retire_site(s, "demo", now=now), Conflict, "active units")
    x(lambda s: assets.add_gateway(s, "demo", "picu", GatewayRequest(id="gw-x"), now=now),
      Conflict, "gateway ids are unique")
    x(lambda s: assets.add_bed(s, "demo", "picu", BedRequest(id="bed09", gateway="gw-x"),
                               now=now), Conflict, "serves other/nicu")


def test_a_transfer_into_an_occupied_bed_leaves_the_admission_where_it_was(
    engine: Engine, clock: Clock
) -> None:
    now = clock(600)
    ward(engine, clock(0))
    do(engine, lambda s: care.admit(s, admit("P-1a2b3c", "bed01", clock(20)), now=now))
    do(engine, lambda s: care.admit(s, admit("P-4d5e6f", "bed02", clock(20)), now=now))
    refused(engine, lambda s: care.transfer(s, "P-1a2b3c", to("bed02", clock(30)), now=now),
            Conflict, "bed demo/picu/bed02 is occupied by admission")
    bed = do(engine, lambda s: assets.show_bed(s, "demo", "picu", "bed01"))
    assert bed.patient == "P-1a2b3c"


def test_the_database_itself_refuses_a_second_open_range(engine: Engine, clock: Clock) -> None:
    """Should two writers race past the checks, the partial unique index still says no."""
    ward(engine, clock(0))
    do(engine, lambda s: care.assign(s, assign("mon-01", "bed01", clock(10)), now=clock(60)))

    def second_open(s: Session) -> None:
        first = s.scalars(select(DeviceAssignment)).one()
        s.add(DeviceAssignment(device_pk=first.device_pk, gateway_pk=first.gateway_pk,
                               bed_pk=first.bed_pk, started_at=clock(20)))
        s.flush()

    refused(engine, second_open, Conflict, "the database refused the change")

    def stay_ending_before_it_starts(s: Session) -> None:
        care.admit(s, admit("P-1a2b3c", "bed02", clock(20)), now=clock(60))
        stay = s.scalars(select(BedStay)).one()
        stay.ended_at = clock(19)
        s.flush()

    refused(engine, stay_ending_before_it_starts, Conflict, "the database refused the change")


def test_the_unit_context_is_the_beds_devices_and_admissions_at_a_time(
    engine: Engine, clock: Clock
) -> None:
    now = clock(600)
    ward(engine, clock(0))
    do(engine, lambda s: assets.add_bed(s, "demo", "picu", BedRequest(id="bed00"), now=now))
    do(engine, lambda s: care.assign(s, assign("mon-01", "bed01", clock(10)), now=now))
    do(engine, lambda s: care.assign(s, assign("mon-02", "bed02", clock(10), "gw-b"), now=now))
    a = do(engine, lambda s: care.admit(s, admit("P-1a2b3c", "bed01", clock(20)), now=now))
    do(engine, lambda s: care.transfer(s, a.id, to("bed03", clock(60)), now=now))
    ctx = do(engine, lambda s: unit_context(s, "demo", "picu", at=now))
    assert ctx == UnitContext(
        site="demo", unit="picu", time_zone="Asia/Shanghai", scoring_system="bedside_pews",
        generation="demo",  # type: ignore[arg-type]
        gateways=[GatewayContext(id="gw-a"), GatewayContext(id="gw-b")],
        beds=[  # bed00 has no gateway and no device: it cannot be in a context
            BedContext(id="bed01", gateway="gw-a", devices=["mon-01"]),
            BedContext(id="bed02", gateway="gw-b", devices=["mon-02"]),
            BedContext(id="bed03", gateway="gw-a", devices=[], patient="P-1a2b3c",
                       dob=date(2022, 3, 14), admission=a.id),
        ],
    )
    assert UnitContext.model_validate_json(ctx.model_dump_json()) == ctx
    before = do(engine, lambda s: unit_context(s, "demo", "picu", at=clock(30)))
    assert [(b.id, b.patient, b.devices) for b in before.beds] == [
        ("bed01", "P-1a2b3c", ["mon-01"]), ("bed02", None, ["mon-02"]), ("bed03", None, [])]
    do(engine, lambda s: care.unassign(s, "mon-02", TimeRequest(time=clock(599)), now=now))
    do(engine, lambda s: assets.retire_bed(s, "demo", "picu", "bed02", now=now))
    after = do(engine, lambda s: unit_context(s, "demo", "picu", at=now))
    assert [b.id for b in after.beds] == ["bed01", "bed03"]
    # the past is unchanged by the retirement
    assert do(engine, lambda s: unit_context(s, "demo", "picu", at=clock(30))) == before


WARD = """
site = "demo"
unit = "nicu"
scoring_system = "uk_npews"
generation = "test"
[[gateways]]
id = "gw-n1"
[[beds]]
id = "cot1"
patient = "P-aaaa1111"
dob = "2025-05-01"
gateway = "gw-n1"
devices = ["oxi-1", "mon-1"]
[[beds]]
id = "cot2"
gateway = "gw-n1"
devices = []
"""


def test_a_ward_file_imports_into_the_registry_and_exports_as_the_same_context(
    engine: Engine, clock: Clock, tmp_path: object
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "ward.toml"
    path.write_text(WARD, encoding="utf-8")
    source = load_ward_file(path)
    now = clock(0)
    report = do(engine, lambda s: import_ward(s, source, now=now, time_zone="Europe/London"))
    assert report.created == {"sites": 1, "units": 1, "gateways": 1, "beds": 2, "devices": 2,
                              "assignments": 2, "patients": 1, "admissions": 1}
    assert report.incomplete_devices == ["oxi-1", "mon-1"]
    ctx = do(engine, lambda s: unit_context(s, "demo", "nicu", at=now))
    admission = ctx.beds[0].admission
    assert admission is not None
    expected = source.model_copy(update={"time_zone": "Europe/London"})
    assert ctx.model_dump(exclude={"beds"}) == expected.model_dump(exclude={"beds"})
    assert [b.model_dump(exclude={"admission", "devices"}) for b in ctx.beds] == [
        b.model_dump(exclude={"admission", "devices"}) for b in source.beds]
    assert [sorted(b.devices) for b in ctx.beds] == [sorted(b.devices) for b in source.beds]
    # again: the unit exists; nothing of the second import is written
    refused(engine, lambda s: import_ward(s, source, now=now), Conflict,
            "unit demo/nicu already exists")


def test_an_import_that_fails_halfway_writes_nothing(engine: Engine, clock: Clock) -> None:
    ward(engine, clock(0))
    do(engine, lambda s: care.assign(s, assign("mon-01", "bed01", clock(10)), now=clock(60)))
    source = UnitContext(
        site="other", unit="ward2", gateways=[GatewayContext(id="gw-w2")],
        beds=[BedContext(id="b1", gateway="gw-w2", devices=["new-1"]),
              BedContext(id="b2", gateway="gw-w2", devices=["mon-01"])],  # already assigned
    )
    refused(engine, lambda s: import_ward(s, source, now=clock(60)), Conflict,
            "device mon-01 is already assigned")


def test_lists_and_views(engine: Engine, clock: Clock) -> None:
    now = clock(60)
    ward(engine, clock(0))
    do(engine, lambda s: care.assign(s, assign("mon-02", "bed02", clock(10)), now=now))
    do(engine, lambda s: care.admit(s, admit("P-4d5e6f", "bed02", clock(20)), now=now))
    assert [u.id for u in do(engine, lambda s: assets.list_units(s))] == ["picu", "nicu"]
    assert [u.id for u in do(engine, lambda s: assets.list_units(s, "other"))] == ["nicu"]
    beds = do(engine, lambda s: assets.list_beds(s, "demo", "picu"))
    assert [(b.id, b.devices, b.patient) for b in beds] == [
        ("bed01", [], None), ("bed02", ["mon-02"], "P-4d5e6f"), ("bed03", [], None)]
    dev = do(engine, lambda s: assets.show_device(s, "mon-02"))
    assert dev.assignment is not None and dev.assignment.bed == "bed02"
    assert do(engine, lambda s: care.show_patient(s, "P-4d5e6f")).admission is not None
    assert len(do(engine, lambda s: care.list_admissions(s, open_only=True))) == 1
    assert [g.id for g in do(engine, lambda s: assets.list_gateways(s, "demo", "picu"))] == [
        "gw-a", "gw-b"]
    seen = do(engine, lambda s: assets.device_seen(s, "mon-02", clock(30)))
    assert seen.last_seen == clock(30)
    assert do(engine, lambda s: assets.device_seen(s, "mon-02", clock(25))).last_seen == clock(30)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DeviceAssignment)) == 1


def test_racing_writers_one_wins_the_others_are_refused(engine: Engine, clock: Clock) -> None:
    """Eight requests at once for one bed (admissions) and one device (assignments): exactly
    one of each is accepted, the others get a Conflict, never a second open range."""
    import threading

    now = clock(60)
    ward(engine, clock(0), beds=8)
    patients = [f"P-race{i:04}" for i in range(8)]
    do(engine, lambda s: [care.add_patient(s, PatientRequest(id=p, dob=date(2020, 1, 1)),
                                           now=now) for p in patients])
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt(fn: Callable[[Session], object]) -> None:
        barrier.wait(timeout=30)
        try:
            do(engine, fn)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    def race(fns: list[Callable[[Session], object]]) -> list[str]:
        outcomes.clear()
        threads = [threading.Thread(target=attempt, args=(fn,)) for fn in fns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return sorted(outcomes)

    admits = [lambda s, p=p: care.admit(s, admit(p, "bed01", clock(30)), now=now)
              for p in patients]
    assert race(admits) == ["conflict"] * 7 + ["ok"]
    assigns = [lambda s, i=i: care.assign(s, assign("mon-01", f"bed{i:02}", clock(30)), now=now)
               for i in range(1, 9)]
    assert race(assigns) == ["conflict"] * 7 + ["ok"]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(BedStay)) == 1
        assert conn.scalar(select(func.count()).select_from(DeviceAssignment)) == 1

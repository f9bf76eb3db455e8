"""Property tests of history: random sequences of assign, unassign, admit, transfer and discharge
(times moving forward, some back-dated) never produce overlapping ranges, the registry accepts
exactly what a simple model accepts, and ``at`` agrees with the model at every probe time.

The model is a list of ranges per device and per bed; the registry is the real service layer on
a fresh database per example (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from registry import assets, care
from registry.db import open_database, transaction
from registry.errors import RegistryError
from registry.models import Admission, BedStay, DeviceAssignment
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

T0 = datetime(2025, 6, 1, tzinfo=UTC)
BEDS = ["b1", "b2", "b3"]
DEVICES = ["d1", "d2", "d3"]
PATIENTS = ["P-0001", "P-0002", "P-0003"]


@dataclass
class Span:
    start: datetime
    end: datetime | None = None
    bed: str = ""
    who: str = ""

    def covers(self, t: datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass
class Model:
    devices: dict[str, list[Span]] = field(default_factory=lambda: {d: [] for d in DEVICES})
    #: per patient: bed stays (who = the patient), the last one open while admitted
    stays: dict[str, list[Span]] = field(default_factory=lambda: {p: [] for p in PATIENTS})

    def bed_spans(self, bed: str) -> list[Span]:
        return [s for spans in self.stays.values() for s in spans if s.bed == bed]

    def bed_free_from(self, bed: str, t: datetime) -> bool:
        return all(s.end is not None and s.end <= t for s in self.bed_spans(bed))

    def open_stay(self, patient: str) -> Span | None:
        spans = self.stays[patient]
        return spans[-1] if spans and spans[-1].end is None else None

    # each returns whether the registry must accept the operation, and applies it if so
    def assign(self, dev: str, bed: str, t: datetime) -> bool:
        spans = self.devices[dev]
        if any(s.end is None or s.end > t for s in spans):
            return False
        spans.append(Span(t, bed=bed))
        return True

    def unassign(self, dev: str, t: datetime) -> bool:
        spans = self.devices[dev]
        if not spans or spans[-1].end is not None or t <= spans[-1].start:
            return False
        spans[-1].end = t
        return True

    def admit(self, patient: str, bed: str, t: datetime) -> bool:
        spans = self.stays[patient]
        if any(s.end is None or s.end > t for s in spans) or not self.bed_free_from(bed, t):
            return False
        spans.append(Span(t, bed=bed, who=patient))
        return True

    def transfer(self, patient: str, bed: str, t: datetime) -> bool:
        stay = self.open_stay(patient)
        if stay is None or stay.bed == bed or t <= stay.start or not self.bed_free_from(bed, t):
            return False
        stay.end = t
        self.stays[patient].append(Span(t, bed=bed, who=patient))
        return True

    def discharge(self, patient: str, t: datetime) -> bool:
        stay = self.open_stay(patient)
        if stay is None or t <= stay.start:
            return False
        stay.end = t
        return True

    def at(self, dev: str, t: datetime) -> tuple[str | None, str | None]:
        span = next((s for s in self.devices[dev] if s.covers(t)), None)
        if span is None:
            return None, None
        stay = next((s for s in self.bed_spans(span.bed) if s.covers(t)), None)
        return span.bed, stay.who if stay else None


def setup(s: Session) -> None:
    assets.add_site(s, SiteRequest(id="s"), now=T0)
    assets.add_unit(s, UnitRequest.model_validate({"site": "s", "id": "u", "time_zone": "UTC"}),
                    now=T0)
    assets.add_gateway(s, "s", "u", GatewayRequest(id="g"), now=T0)
    for bed in BEDS:
        assets.add_bed(s, "s", "u", BedRequest(id=bed, gateway="g"), now=T0)
    for dev in DEVICES:
        assets.add_device(s, DeviceRequest(id=dev, manufacturer="M", model="X",
                                           serial_number=f"S{dev}", driver="wwmon"), now=T0)
    for p in PATIENTS:
        care.add_patient(s, PatientRequest(id=p, dob=date(2020, 1, 1)), now=T0)


OPS = st.one_of(
    st.tuples(st.just("assign"), st.sampled_from(DEVICES), st.sampled_from(BEDS)),
    st.tuples(st.just("unassign"), st.sampled_from(DEVICES), st.none()),
    st.tuples(st.just("admit"), st.sampled_from(PATIENTS), st.sampled_from(BEDS)),
    st.tuples(st.just("transfer"), st.sampled_from(PATIENTS), st.sampled_from(BEDS)),
    st.tuples(st.just("discharge"), st.sampled_from(PATIENTS), st.none()),
)
#: minutes from the previous operation: mostly forward, sometimes back-dated, sometimes at the
#: same instant (a zero-length range must be refused)
STEPS = st.sampled_from([-45, -5, 0, 1, 7, 30, 120])


def apply(s: Session, op: str, who: str, bed: str | None, t: datetime, now: datetime) -> None:
    if op == "assign":
        assert bed is not None
        care.assign(s, AssignRequest(device=who, site="s", unit="u", bed=bed, time=t), now=now)
    elif op == "unassign":
        care.unassign(s, who, TimeRequest(time=t), now=now)
    elif op == "admit":
        assert bed is not None
        care.admit(s, AdmitRequest(patient=who, site="s", unit="u", bed=bed, time=t), now=now)
    elif op == "transfer":
        assert bed is not None
        care.transfer(s, who, TransferRequest(site="s", unit="u", bed=bed, time=t), now=now)
    else:
        care.discharge(s, who, TimeRequest(time=t), now=now)


def no_overlaps(ranges: list[tuple[object, datetime, datetime | None]]) -> None:
    by_key: dict[object, list[tuple[datetime, datetime | None]]] = {}
    for key, start, end in ranges:
        assert end is None or end > start, (key, start, end)
        by_key.setdefault(key, []).append((start, end))
    for key, spans in by_key.items():
        spans.sort()
        for (_, end), (start, _) in pairwise(spans):
            assert end is not None and end <= start, f"overlap for {key}: {spans}"


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(OPS, STEPS), min_size=1, max_size=25),
       probes=st.lists(st.integers(min_value=0, max_value=25 * 120), max_size=12))
def test_history_never_overlaps_and_at_agrees_with_a_model(
    new_database: Callable[[], str],
    steps: list[tuple[tuple[str, str, str | None], int]],
    probes: list[int],
) -> None:
    engine: Engine = open_database(new_database())
    try:
        with transaction(engine) as s:
            setup(s)
        model = Model()
        t = T0 + timedelta(hours=1)
        for (op, who, bed), step in steps:
            t = max(T0 + timedelta(minutes=1), t + timedelta(minutes=step))
            now = t + timedelta(minutes=200)
            expected = getattr(model, op)(who, bed, t) if bed else getattr(model, op)(who, t)
            try:
                with transaction(engine) as s:
                    apply(s, op, who, bed, t, now)
                accepted = True
            except RegistryError as exc:
                accepted, reason = False, exc.reason
            assert accepted == expected, (op, who, bed, t, None if accepted else reason)
        with engine.connect() as conn:
            no_overlaps([(f"device {r.device_pk}", r.started_at, r.ended_at)
                         for r in conn.execute(select(DeviceAssignment))])
            stays = conn.execute(select(BedStay)).all()
            no_overlaps([(f"bed {r.bed_pk}", r.started_at, r.ended_at) for r in stays])
            no_overlaps([(f"admission {r.admission_pk}", r.started_at, r.ended_at)
                         for r in stays])
            no_overlaps([(f"patient {r.patient_pk}", r.admitted_at, r.discharged_at)
                         for r in conn.execute(select(Admission))])
        with transaction(engine) as s:
            for minutes in probes:
                when = T0 + timedelta(minutes=minutes)
                for dev in DEVICES:
                    ans = care.at(s, dev, when)
                    assert (ans.bed, ans.patient) == model.at(dev, when), (dev, when)
    finally:
        engine.dispose()

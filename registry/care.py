"""History: patients, admissions and their bed stays, device assignments, and "where and who at T".

Every range is half-open, ``[started, ended)``, and is closed once, never rewritten: a transfer
ends the admission's stay in one bed and starts one in the next; moving a device is an unassign
and an assign. So the registry can always answer :func:`at`: which bed a device served at a
given time, through which gateway, and which admission (and pseudonymous patient) lay there.

A request's time defaults to ``now``. A time may be back-dated (a nurse records an admission an
hour late), but never before the end of the range it follows, never more than
:data:`CLOCK_SKEW` ahead of ``now``, and a range never ends at or before it started; so ranges
of one device, bed, admission or patient never overlap. The rows checked are locked first
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers), and partial unique indexes
refuse a second open range even if a writer got past the checks.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from registry.assets import (
    assignment_view,
    bed_name,
    ensure_active,
    find_bed,
    find_device,
    find_gateway,
)
from registry.errors import Conflict, Invalid, NotFound
from registry.models import (
    Admission,
    Bed,
    BedStay,
    Device,
    DeviceAssignment,
    Gateway,
    Patient,
    Site,
    Unit,
)
from registry.schemas import (
    AdmissionView,
    AdmitRequest,
    AssignmentView,
    AssignRequest,
    AtAnswer,
    PatientRequest,
    PatientView,
    StayView,
    TimeRequest,
    TransferRequest,
)
from wardwire.context import PATIENT_PATTERN

__all__ = [
    "CLOCK_SKEW",
    "add_patient",
    "admit",
    "assign",
    "at",
    "discharge",
    "find_admission",
    "list_admissions",
    "list_patients",
    "show_admission",
    "show_patient",
    "transfer",
    "unassign",
]

#: how far ahead of the registry's clock a request's time may be (a client's clock runs fast)
CLOCK_SKEW = timedelta(seconds=60)
#: the latest calendar date anywhere on Earth (UTC+14) is "today" for a date of birth
LATEST_ZONE = timedelta(hours=14)


def _when(req: TimeRequest, now: datetime) -> datetime:
    t = req.time if req.time is not None else now
    if t > now + CLOCK_SKEW:
        raise Invalid(f"{t.isoformat()} is in the future (the registry's clock: {now.isoformat()})")
    return t


def _after(t: datetime, start: datetime, what: str) -> None:
    if t <= start:
        raise Invalid(f"{what} at {t.isoformat()}, not after it began ({start.isoformat()})")


# -- patients ---------------------------------------------------------------------------------
def _patient_view(session: Session, p: Patient) -> PatientView:
    open_id = session.scalar(
        select(Admission.id).where(Admission.patient_pk == p.pk, Admission.discharged_at.is_(None))
    )
    return PatientView(id=p.id, dob=p.dob, created_at=p.created_at, admission=open_id)


def find_patient(session: Session, patient: str, *, lock: bool = False) -> Patient:
    stmt = select(Patient).where(Patient.id == patient)
    found = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if found is None:
        raise NotFound(f"unknown patient {patient!r}")
    return found


def add_patient(session: Session, req: PatientRequest, *, now: datetime) -> PatientView:
    today_somewhere = (now + LATEST_ZONE).date()
    if req.dob > today_somewhere:
        raise Invalid(f"date of birth {req.dob} is in the future")
    if session.scalar(select(Patient.pk).where(Patient.id == req.id)) is not None:
        raise Conflict(f"patient {req.id} already exists")
    p = Patient(id=req.id, dob=req.dob, created_at=now)
    session.add(p)
    session.flush()
    return _patient_view(session, p)


def show_patient(session: Session, patient: str) -> PatientView:
    return _patient_view(session, find_patient(session, patient))


def list_patients(session: Session) -> list[PatientView]:
    patients = session.scalars(select(Patient).order_by(Patient.id))
    return [_patient_view(session, p) for p in patients]


# -- admissions -------------------------------------------------------------------------------
def _admission_view(a: Admission) -> AdmissionView:
    return AdmissionView(
        id=a.id, patient=a.patient.id, admitted_at=a.admitted_at, discharged_at=a.discharged_at,
        stays=[
            StayView(
                site=s.bed.unit.site.id, unit=s.bed.unit.id, bed=s.bed.id,
                started_at=s.started_at, ended_at=s.ended_at, end_reason=s.end_reason,
            )
            for s in a.stays
        ],
    )


def find_admission(session: Session, ref: str, *, lock: bool = False) -> Admission:
    """An admission by its id, or a patient's open admission by the patient's id."""
    if re.fullmatch(PATIENT_PATTERN, ref):
        patient = find_patient(session, ref, lock=lock)
        stmt = select(Admission).where(
            Admission.patient_pk == patient.pk, Admission.discharged_at.is_(None)
        )
        missing = f"patient {ref} is not admitted"
    else:
        stmt = select(Admission).where(Admission.id == ref)
        missing = f"unknown admission {ref!r}"
    found = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if found is None:
        raise NotFound(missing)
    return found


def show_admission(session: Session, ref: str) -> AdmissionView:
    return _admission_view(find_admission(session, ref))


def list_admissions(session: Session, *, open_only: bool = False) -> list[AdmissionView]:
    stmt = select(Admission).order_by(Admission.admitted_at, Admission.id)
    if open_only:
        stmt = stmt.where(Admission.discharged_at.is_(None))
    return [_admission_view(a) for a in session.scalars(stmt)]


def _bed_free(session: Session, bed: Bed, t: datetime) -> None:
    """Nobody in ``bed`` from ``t`` on: no open stay, none ending after ``t``."""
    name = bed_name(bed)
    current = session.scalars(
        select(BedStay).where(BedStay.bed_pk == bed.pk, BedStay.ended_at.is_(None))
    ).first()
    if current is not None:
        raise Conflict(
            f"bed {name} is occupied by admission {current.admission.id} "
            f"(patient {current.admission.patient.id})"
        )
    last_end = session.scalar(select(func.max(BedStay.ended_at)).where(BedStay.bed_pk == bed.pk))
    if last_end is not None and _aware(last_end) > t:
        raise Conflict(
            f"bed {name} was occupied until {_aware(last_end).isoformat()}: an admission at "
            f"{t.isoformat()} would overlap it"
        )


def _aware(value: datetime) -> datetime:
    # aggregates (max) bypass the column type on SQLite: read them back as UTC
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _open_stay(admission: Admission) -> BedStay:
    stay = next((s for s in admission.stays if s.ended_at is None), None)
    if stay is None:
        raise Conflict(f"admission {admission.id} was discharged at {admission.discharged_at}")
    return stay


def _new_admission_id() -> str:
    return f"A-{uuid.uuid4().hex[:16]}"


def _born_by(patient: Patient, bed: Bed, t: datetime, what: str) -> None:
    """A child is in a bed from its date of birth on, in the bed's unit's own calendar (the
    alert engine ages it there: a date of birth after the unit's date cannot be scored, and
    the engine's refusal would carry the date). The reason does not repeat the date."""
    zone = bed.unit.time_zone
    local = t.astimezone(ZoneInfo(zone)).date()
    if patient.dob > local:
        raise Invalid(f"{patient.id} cannot be {what} at {t.isoformat()} ({local} in {zone}), "
                      "before its date of birth")


def admit(session: Session, req: AdmitRequest, *, now: datetime) -> AdmissionView:
    t = _when(req, now)
    patient = find_patient(session, req.patient, lock=True)
    bed = find_bed(session, req.site, req.unit, req.bed, lock=True)
    ensure_active(bed, f"bed {bed_name(bed)}")
    ensure_active(bed.unit, f"unit {req.site}/{req.unit}")
    _born_by(patient, bed, t, "admitted")
    current = session.scalars(
        select(Admission).where(
            Admission.patient_pk == patient.pk, Admission.discharged_at.is_(None)
        )
    ).first()
    if current is not None:
        where = bed_name(_open_stay(current).bed)
        raise Conflict(
            f"{patient.id} is already admitted ({current.id}, in {where}): transfer or "
            "discharge first"
        )
    last = session.scalar(
        select(func.max(Admission.discharged_at)).where(Admission.patient_pk == patient.pk)
    )
    if last is not None and _aware(last) > t:
        raise Conflict(
            f"{patient.id} was admitted until {_aware(last).isoformat()}: an admission at "
            f"{t.isoformat()} would overlap it"
        )
    _bed_free(session, bed, t)
    admission = Admission(id=_new_admission_id(), patient=patient, admitted_at=t)
    session.add(admission)
    session.add(BedStay(admission=admission, bed=bed, started_at=t))
    session.flush()
    session.refresh(admission)
    return _admission_view(admission)


def transfer(
    session: Session, ref: str, req: TransferRequest, *, now: datetime
) -> AdmissionView:
    t = _when(req, now)
    admission = find_admission(session, ref, lock=True)
    stay = _open_stay(admission)
    bed = find_bed(session, req.site, req.unit, req.bed, lock=True)
    if bed.pk == stay.bed_pk:
        raise Conflict(f"admission {admission.id} is already in {bed_name(bed)}")
    ensure_active(bed, f"bed {bed_name(bed)}")
    ensure_active(bed.unit, f"unit {req.site}/{req.unit}")
    _after(t, stay.started_at, f"a transfer out of {bed_name(stay.bed)}")
    _born_by(admission.patient, bed, t, "transferred")
    _bed_free(session, bed, t)
    stay.ended_at, stay.end_reason = t, "transfer"
    session.flush()  # the old stay closes before the new one opens (the open-stay index)
    session.add(BedStay(admission=admission, bed=bed, started_at=t))
    session.flush()
    session.refresh(admission)
    return _admission_view(admission)


def discharge(session: Session, ref: str, req: TimeRequest, *, now: datetime) -> AdmissionView:
    t = _when(req, now)
    admission = find_admission(session, ref, lock=True)
    stay = _open_stay(admission)
    _after(t, stay.started_at, f"a discharge from {bed_name(stay.bed)}")
    stay.ended_at, stay.end_reason = t, "discharge"
    admission.discharged_at = t
    session.flush()
    return _admission_view(admission)


# -- device assignments -----------------------------------------------------------------------
def assign(session: Session, req: AssignRequest, *, now: datetime) -> AssignmentView:
    t = _when(req, now)
    device = find_device(session, req.device, lock=True)
    ensure_active(device, f"device {device.id}")
    bed = find_bed(session, req.site, req.unit, req.bed, lock=True)
    ensure_active(bed, f"bed {bed_name(bed)}")
    ensure_active(bed.unit, f"unit {req.site}/{req.unit}")
    current = session.scalars(
        select(DeviceAssignment).where(
            DeviceAssignment.device_pk == device.pk, DeviceAssignment.ended_at.is_(None)
        )
    ).first()
    if current is not None:
        raise Conflict(
            f"device {device.id} is already assigned to {bed_name(current.bed)} "
            f"(since {current.started_at.isoformat()}): unassign it first"
        )
    last = session.scalar(
        select(func.max(DeviceAssignment.ended_at)).where(DeviceAssignment.device_pk == device.pk)
    )
    if last is not None and _aware(last) > t:
        raise Conflict(
            f"device {device.id} was assigned until {_aware(last).isoformat()}: an assignment "
            f"at {t.isoformat()} would overlap it"
        )
    gateway = _gateway_for(session, bed, req.gateway)
    others = session.scalars(
        select(Gateway.id).join(DeviceAssignment, DeviceAssignment.gateway_pk == Gateway.pk)
        .where(DeviceAssignment.bed_pk == bed.pk, DeviceAssignment.ended_at.is_(None),
               Gateway.pk != gateway.pk)
    ).first()
    if others is not None:
        raise Conflict(
            f"bed {bed_name(bed)}'s devices are on gateway {others}, not {gateway.id}: "
            "one gateway serves a bed"
        )
    assignment = DeviceAssignment(device=device, gateway=gateway, bed=bed, started_at=t)
    session.add(assignment)
    session.flush()
    return assignment_view(assignment)


def _gateway_for(session: Session, bed: Bed, gateway: str | None) -> Gateway:
    if gateway is None:
        if bed.gateway is None:
            raise Invalid(f"bed {bed_name(bed)} has no gateway of its own: name the gateway")
        gw = bed.gateway
    else:
        gw = find_gateway(session, gateway)
    ensure_active(gw, f"gateway {gw.id}")
    if gw.unit_pk != bed.unit_pk:
        raise Conflict(
            f"gateway {gw.id} serves {gw.unit.site.id}/{gw.unit.id}, not the unit of "
            f"{bed_name(bed)}"
        )
    return gw


def unassign(session: Session, device: str, req: TimeRequest, *, now: datetime) -> AssignmentView:
    t = _when(req, now)
    found = find_device(session, device, lock=True)
    current = session.scalars(
        select(DeviceAssignment).where(
            DeviceAssignment.device_pk == found.pk, DeviceAssignment.ended_at.is_(None)
        )
    ).first()
    if current is None:
        raise Conflict(f"device {device} is not assigned")
    _after(t, current.started_at, f"unassigning {device} from {bed_name(current.bed)}")
    current.ended_at = t
    session.flush()
    return assignment_view(current)


# -- where and who, at a time -----------------------------------------------------------------
def _covers(
    started: InstrumentedAttribute[datetime],
    ended: InstrumentedAttribute[datetime | None],
    t: datetime,
) -> ColumnElement[bool]:
    """``started <= t < ended`` (an open range: ``ended IS NULL``)."""
    return and_(started <= t, or_(ended.is_(None), ended > t))


def at(session: Session, device: str, t: datetime) -> AtAnswer:
    """Which bed ``device`` served at ``t``, through which gateway, and who lay there: one query
    (the assignment covering ``t``, its bed, and the bed stay covering ``t``)."""
    row = session.execute(
        select(
            DeviceAssignment.pk, Gateway.id, Site.id, Unit.id, Bed.id, Admission.id, Patient.id
        )
        .select_from(DeviceAssignment)
        .join(Device, Device.pk == DeviceAssignment.device_pk)
        .join(Gateway, Gateway.pk == DeviceAssignment.gateway_pk)
        .join(Bed, Bed.pk == DeviceAssignment.bed_pk)
        .join(Unit, Unit.pk == Bed.unit_pk)
        .join(Site, Site.pk == Unit.site_pk)
        .outerjoin(
            BedStay,
            and_(
                BedStay.bed_pk == Bed.pk,
                _covers(BedStay.started_at, BedStay.ended_at, t),
            ),
        )
        .outerjoin(Admission, Admission.pk == BedStay.admission_pk)
        .outerjoin(Patient, Patient.pk == Admission.patient_pk)
        .where(
            Device.id == device,
            _covers(DeviceAssignment.started_at, DeviceAssignment.ended_at, t),
        )
    ).first()
    if row is None:
        find_device(session, device)  # unknown device: NotFound; else it was nowhere then
        return AtAnswer(
            device=device, time=t, assignment=None, gateway=None, site=None, unit=None,
            bed=None, admission=None, patient=None,
        )
    pk, gateway, site, unit, bed, admission, patient = row
    return AtAnswer(
        device=device, time=t, assignment=pk, gateway=gateway, site=site, unit=unit, bed=bed,
        admission=admission, patient=patient,
    )

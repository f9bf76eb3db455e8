"""The unit context the services read (``wardwire.context.UnitContext``), built from the
registry at a point in time; and a ward file (the same type) imported into the registry.

The context at ``t`` holds the unit's gateways and beds not retired at ``t``, each bed with the
devices assigned to it at ``t`` (and their gateway), and the admission in it at ``t`` with the
patient's pseudonymous id and date of birth. A bed with no device at ``t`` is served by its own
gateway; a bed with neither is left out (a context bed names a gateway).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from registry.assets import (
    add_bed,
    add_gateway,
    add_site,
    add_unit,
    ensure_active,
    find_unit,
)
from registry.care import add_patient, admit, assign
from registry.errors import Conflict, Invalid
from registry.models import (
    Admission,
    Bed,
    BedStay,
    Device,
    DeviceAssignment,
    Gateway,
    Patient,
    Site,
)
from registry.schemas import (
    AdmitRequest,
    AssignRequest,
    BedRequest,
    GatewayRequest,
    ImportReport,
    PatientRequest,
    ScoringSystem,
    SiteRequest,
    UnitRequest,
)
from wardwire.context import BedContext, GatewayContext, UnitContext

__all__ = ["import_ward", "unit_context", "without_dates_of_birth"]


def _existed(model: type[Bed] | type[Gateway], t: datetime) -> ColumnElement[bool]:
    # not retired at t; registered later is fine: history may be recorded after the fact
    # (a back-dated assignment or admission), and the context at t shows what was recorded
    return or_(model.retired_at.is_(None), model.retired_at > t)


def unit_context(session: Session, site: str, unit: str, *, at: datetime) -> UnitContext:
    found = find_unit(session, site, unit)
    ensure_active(found, f"unit {site}/{unit}")
    gateways = session.scalars(
        select(Gateway).where(Gateway.unit_pk == found.pk, _existed(Gateway, at))
        .order_by(Gateway.id)
    ).all()
    beds = session.scalars(
        select(Bed).where(Bed.unit_pk == found.pk, _existed(Bed, at))
        .order_by(Bed.id)
    ).all()
    devices: dict[int, list[str]] = defaultdict(list)
    bed_gateway: dict[int, str] = {}
    for bed_pk, device, gateway in session.execute(
        select(DeviceAssignment.bed_pk, Device.id, Gateway.id)
        .join(Device, Device.pk == DeviceAssignment.device_pk)
        .join(Gateway, Gateway.pk == DeviceAssignment.gateway_pk)
        .join(Bed, Bed.pk == DeviceAssignment.bed_pk)
        .where(
            Bed.unit_pk == found.pk,
            DeviceAssignment.started_at <= at,
            or_(DeviceAssignment.ended_at.is_(None), DeviceAssignment.ended_at > at),
        )
        .order_by(Device.id)
    ):
        devices[bed_pk].append(device)
        bed_gateway[bed_pk] = gateway
    occupants: dict[int, tuple[str, str, date]] = {}
    for bed_pk, admission, patient, dob in session.execute(
        select(BedStay.bed_pk, Admission.id, Patient.id, Patient.dob)
        .join(Admission, Admission.pk == BedStay.admission_pk)
        .join(Patient, Patient.pk == Admission.patient_pk)
        .join(Bed, Bed.pk == BedStay.bed_pk)
        .where(
            Bed.unit_pk == found.pk,
            BedStay.started_at <= at,
            or_(BedStay.ended_at.is_(None), BedStay.ended_at > at),
        )
    ):
        occupants[bed_pk] = (admission, patient, dob)
    gateway_ids = {g.id for g in gateways}
    bed_contexts = []
    for bed in beds:
        gateway_id = bed_gateway.get(bed.pk) or (bed.gateway.id if bed.gateway else None)
        if gateway_id is None or gateway_id not in gateway_ids:
            continue
        occupant = occupants.get(bed.pk)
        bed_contexts.append(
            BedContext(
                id=bed.id, gateway=gateway_id, devices=devices.get(bed.pk, []),
                patient=occupant[1] if occupant else None,
                dob=occupant[2] if occupant else None,
                admission=occupant[0] if occupant else None,
            )
        )
    return UnitContext(
        site=site, unit=unit, time_zone=found.time_zone,
        scoring_system=found.scoring_system, generation=found.generation,
        gateways=[GatewayContext(id=g.id) for g in gateways], beds=bed_contexts,
    )


def without_dates_of_birth(ctx: UnitContext) -> UnitContext:
    """The context with every bed's date of birth left out (null): what a process that does not
    score gets (ingest, the console), so the date of birth goes only where it is needed."""
    data = ctx.model_dump()
    for bed in data["beds"]:
        bed["dob"] = None
    return UnitContext.model_validate(data)


def import_ward(
    session: Session, ward: UnitContext, *, now: datetime, time_zone: str | None = None
) -> ImportReport:
    """Create the ward file's unit, gateways, beds, devices and patients, assign the devices
    and admit the patients, all at ``now``. The site may exist; the unit may not. A device that
    exists must be active and unassigned; one that does not is created without asset data."""
    zone = time_zone or ward.time_zone or "UTC"
    try:
        system = ScoringSystem(ward.scoring_system)
    except ValueError:
        raise Invalid(
            f"scoring_system {ward.scoring_system!r} is not one of "
            f"{', '.join(s.value for s in ScoringSystem)}"
        ) from None
    created: dict[str, int] = defaultdict(int)
    if session.scalar(select(Site.pk).where(Site.id == ward.site)) is None:
        add_site(session, SiteRequest(id=ward.site), now=now)
        created["sites"] += 1
    add_unit(
        session,
        UnitRequest.model_validate(
            {"site": ward.site, "id": ward.unit, "time_zone": zone,
             "scoring_system": system, "generation": ward.generation}
        ),
        now=now,
    )
    created["units"] += 1
    for gw in ward.gateways:
        add_gateway(session, ward.site, ward.unit, GatewayRequest(id=gw.id), now=now)
        created["gateways"] += 1
    incomplete: list[str] = []
    for bed in ward.beds:
        add_bed(session, ward.site, ward.unit, BedRequest(id=bed.id, gateway=bed.gateway),
                now=now)
        created["beds"] += 1
        for dev in bed.devices:
            if session.scalar(select(Device.pk).where(Device.id == dev)) is None:
                session.add(Device(id=dev, status="active", created_at=now))
                incomplete.append(dev)
                created["devices"] += 1
            assign(session, AssignRequest(device=dev, site=ward.site, unit=ward.unit, bed=bed.id,
                                          gateway=bed.gateway, time=now), now=now)
            created["assignments"] += 1
        if bed.patient is None:
            continue
        patient = session.scalars(select(Patient).where(Patient.id == bed.patient)).first()
        if patient is None:
            if bed.dob is None:
                raise Invalid(
                    f"bed {bed.id}: patient {bed.patient} has no date of birth (dob); the "
                    "registry needs one"
                )
            add_patient(session, PatientRequest(id=bed.patient, dob=bed.dob), now=now)
            created["patients"] += 1
        elif bed.dob is not None and bed.dob != patient.dob:
            raise Conflict(
                f"bed {bed.id}: patient {bed.patient} is registered with date of birth "
                f"{patient.dob}, the ward file says {bed.dob}"
            )
        admit(session, AdmitRequest(patient=bed.patient, site=ward.site, unit=ward.unit,
                                    bed=bed.id, time=now), now=now)
        created["admissions"] += 1
    return ImportReport(site=ward.site, unit=ward.unit, created=dict(created),
                        incomplete_devices=incomplete)

"""Assets: sites, units, beds, gateways and devices -- add, list, show, update, retire.

Service-layer functions: each takes a :class:`~sqlalchemy.orm.Session` inside the caller's
transaction (``registry.db.transaction``) and, where time matters, ``now``; each returns a view
(``registry.schemas``) or raises a :class:`~registry.errors.RegistryError` naming what is wrong.
Nothing is deleted: retiring keeps the row, and its history, and takes it out of the unit context.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.errors import Conflict, NotFound
from registry.models import Base, Bed, BedStay, Device, DeviceAssignment, Gateway, Site, Unit
from registry.schemas import (
    AssignmentView,
    BedRequest,
    BedView,
    DeviceRequest,
    DeviceUpdate,
    DeviceView,
    GatewayRequest,
    GatewayView,
    SiteRequest,
    SiteView,
    UnitRequest,
    UnitView,
)

__all__ = [
    "add_bed",
    "add_device",
    "add_gateway",
    "add_site",
    "add_unit",
    "assignment_view",
    "bed_name",
    "bed_view",
    "device_history",
    "device_seen",
    "device_view",
    "ensure_active",
    "find_bed",
    "find_device",
    "find_gateway",
    "find_site",
    "find_unit",
    "list_beds",
    "list_devices",
    "list_gateways",
    "list_sites",
    "list_units",
    "retire_bed",
    "retire_device",
    "retire_gateway",
    "retire_site",
    "retire_unit",
    "show_bed",
    "show_device",
    "show_gateway",
    "show_site",
    "show_unit",
    "update_device",
]


_T = TypeVar("_T")


# -- lookups ----------------------------------------------------------------------------------
def _one(session: Session, stmt: Select[_T], missing: str, lock: bool, of: type[Base]) -> _T:
    # FOR UPDATE OF the looked-up table only: a bed's lock must not lock its unit and site
    found = session.scalars(stmt.with_for_update(of=of) if lock else stmt).first()
    if found is None:
        raise NotFound(missing)
    return found


def find_site(session: Session, site: str, *, lock: bool = False) -> Site:
    return _one(session, select(Site).where(Site.id == site), f"unknown site {site!r}", lock, Site)


def find_unit(session: Session, site: str, unit: str, *, lock: bool = False) -> Unit:
    stmt = select(Unit).join(Site).where(Site.id == site, Unit.id == unit)
    return _one(session, stmt, f"unknown unit {site}/{unit}", lock, Unit)


def find_bed(session: Session, site: str, unit: str, bed: str, *, lock: bool = False) -> Bed:
    stmt = (
        select(Bed).join(Unit).join(Site).where(Site.id == site, Unit.id == unit, Bed.id == bed)
    )
    return _one(session, stmt, f"unknown bed {site}/{unit}/{bed}", lock, Bed)


def find_gateway(session: Session, gateway: str, *, lock: bool = False) -> Gateway:
    stmt = select(Gateway).where(Gateway.id == gateway)
    return _one(session, stmt, f"unknown gateway {gateway!r}", lock, Gateway)


def find_device(session: Session, device: str, *, lock: bool = False) -> Device:
    stmt = select(Device).where(Device.id == device)
    return _one(session, stmt, f"unknown device {device!r}", lock, Device)


def ensure_active(thing: Site | Unit | Bed | Gateway | Device, what: str) -> None:
    if thing.status != "active":
        raise Conflict(f"{what} is retired")


def bed_name(bed: Bed) -> str:
    return f"{bed.unit.site.id}/{bed.unit.id}/{bed.id}"


# -- views ------------------------------------------------------------------------------------
def site_view(site: Site) -> SiteView:
    return SiteView.model_validate(site, from_attributes=True)


def unit_view(unit: Unit) -> UnitView:
    return UnitView(
        site=unit.site.id, id=unit.id, time_zone=unit.time_zone,
        scoring_system=unit.scoring_system, rules_file=unit.rules_file,
        generation=unit.generation, status=unit.status,
        created_at=unit.created_at, retired_at=unit.retired_at,
    )


def gateway_view(gw: Gateway) -> GatewayView:
    return GatewayView(
        id=gw.id, site=gw.unit.site.id, unit=gw.unit.id, status=gw.status,
        created_at=gw.created_at, retired_at=gw.retired_at,
    )


def assignment_view(a: DeviceAssignment) -> AssignmentView:
    return AssignmentView(
        id=a.pk, device=a.device.id, gateway=a.gateway.id, site=a.bed.unit.site.id,
        unit=a.bed.unit.id, bed=a.bed.id, started_at=a.started_at, ended_at=a.ended_at,
    )


def _open_assignment(session: Session, device: Device) -> DeviceAssignment | None:
    return session.scalars(
        select(DeviceAssignment).where(
            DeviceAssignment.device_pk == device.pk, DeviceAssignment.ended_at.is_(None)
        )
    ).first()


def device_view(session: Session, device: Device) -> DeviceView:
    current = _open_assignment(session, device)
    return DeviceView(
        id=device.id, manufacturer=device.manufacturer, model=device.model,
        serial_number=device.serial_number, udi=device.udi, driver=device.driver,
        port=device.port, ble_address=device.ble_address, firmware=device.firmware,
        maintenance_due=device.maintenance_due, status=device.status,
        last_seen=device.last_seen, created_at=device.created_at, retired_at=device.retired_at,
        assignment=assignment_view(current) if current is not None else None,
    )


def bed_view(session: Session, bed: Bed) -> BedView:
    devices = session.scalars(
        select(Device.id).join(DeviceAssignment, DeviceAssignment.device_pk == Device.pk)
        .where(DeviceAssignment.bed_pk == bed.pk, DeviceAssignment.ended_at.is_(None))
        .order_by(Device.id)
    ).all()
    stay = session.scalars(
        select(BedStay).where(BedStay.bed_pk == bed.pk, BedStay.ended_at.is_(None))
    ).first()
    return BedView(
        site=bed.unit.site.id, unit=bed.unit.id, id=bed.id,
        gateway=bed.gateway.id if bed.gateway is not None else None,
        status=bed.status, created_at=bed.created_at,
        retired_at=bed.retired_at, devices=list(devices),
        admission=stay.admission.id if stay is not None else None,
        patient=stay.admission.patient.id if stay is not None else None,
    )


# -- sites ------------------------------------------------------------------------------------
def add_site(session: Session, req: SiteRequest, *, now: datetime) -> SiteView:
    if session.scalar(select(Site.pk).where(Site.id == req.id)) is not None:
        raise Conflict(f"site {req.id!r} already exists")
    site = Site(id=req.id, name=req.name, status="active", created_at=now)
    session.add(site)
    session.flush()
    return site_view(site)


def list_sites(session: Session) -> list[SiteView]:
    return [site_view(s) for s in session.scalars(select(Site).order_by(Site.id))]


def show_site(session: Session, site: str) -> SiteView:
    return site_view(find_site(session, site))


def retire_site(session: Session, site: str, *, now: datetime) -> SiteView:
    found = find_site(session, site, lock=True)
    ensure_active(found, f"site {site}")
    live = [u.id for u in found.units if u.status == "active"]
    if live:
        raise Conflict(f"site {site} still has active units: {', '.join(sorted(live))}")
    found.status, found.retired_at = "retired", now
    return site_view(found)


# -- units ------------------------------------------------------------------------------------
def add_unit(session: Session, req: UnitRequest, *, now: datetime) -> UnitView:
    site = find_site(session, req.site, lock=True)
    ensure_active(site, f"site {req.site}")
    exists = select(Unit.pk).where(Unit.site_pk == site.pk, Unit.id == req.id)
    if session.scalar(exists) is not None:
        raise Conflict(f"unit {req.site}/{req.id} already exists")
    unit = Unit(
        site=site, id=req.id, time_zone=req.time_zone, scoring_system=req.scoring_system.value,
        rules_file=req.rules_file, generation=req.generation.value, status="active",
        created_at=now,
    )
    session.add(unit)
    session.flush()
    return unit_view(unit)


def list_units(session: Session, site: str | None = None) -> list[UnitView]:
    stmt = select(Unit).join(Site).order_by(Site.id, Unit.id)
    if site is not None:
        find_site(session, site)
        stmt = stmt.where(Site.id == site)
    return [unit_view(u) for u in session.scalars(stmt)]


def show_unit(session: Session, site: str, unit: str) -> UnitView:
    return unit_view(find_unit(session, site, unit))


def retire_unit(session: Session, site: str, unit: str, *, now: datetime) -> UnitView:
    found = find_unit(session, site, unit, lock=True)
    ensure_active(found, f"unit {site}/{unit}")
    for model, what in ((Bed, "beds"), (Gateway, "gateways")):
        live = session.scalars(
            select(model.id).where(model.unit_pk == found.pk, model.status == "active")
        ).all()
        if live:
            raise Conflict(f"unit {site}/{unit} still has active {what}: {', '.join(live)}")
    found.status, found.retired_at = "retired", now
    return unit_view(found)


# -- gateways ---------------------------------------------------------------------------------
def add_gateway(
    session: Session, site: str, unit: str, req: GatewayRequest, *, now: datetime
) -> GatewayView:
    found = find_unit(session, site, unit, lock=True)
    ensure_active(found, f"unit {site}/{unit}")
    other = session.scalars(select(Gateway).where(Gateway.id == req.id)).first()
    if other is not None:
        raise Conflict(
            f"gateway {req.id!r} already exists (in {other.unit.site.id}/{other.unit.id}); "
            "gateway ids are unique across the registry"
        )
    gw = Gateway(id=req.id, unit=found, status="active", created_at=now)
    session.add(gw)
    session.flush()
    return gateway_view(gw)


def list_gateways(
    session: Session, site: str | None = None, unit: str | None = None
) -> list[GatewayView]:
    stmt = select(Gateway).join(Unit).join(Site).order_by(Gateway.id)
    if site is not None and unit is not None:
        found = find_unit(session, site, unit)
        stmt = stmt.where(Gateway.unit_pk == found.pk)
    return [gateway_view(g) for g in session.scalars(stmt)]


def show_gateway(session: Session, gateway: str) -> GatewayView:
    return gateway_view(find_gateway(session, gateway))


def retire_gateway(session: Session, gateway: str, *, now: datetime) -> GatewayView:
    gw = find_gateway(session, gateway, lock=True)
    ensure_active(gw, f"gateway {gateway}")
    serving = session.scalars(
        select(Device.id).join(DeviceAssignment, DeviceAssignment.device_pk == Device.pk)
        .where(DeviceAssignment.gateway_pk == gw.pk, DeviceAssignment.ended_at.is_(None))
        .order_by(Device.id)
    ).all()
    if serving:
        raise Conflict(
            f"gateway {gateway} still serves devices {', '.join(serving)}: unassign them first"
        )
    gw.status, gw.retired_at = "retired", now
    return gateway_view(gw)


# -- beds -------------------------------------------------------------------------------------
def _unit_gateway(session: Session, unit: Unit, gateway: str) -> Gateway:
    gw = find_gateway(session, gateway)
    ensure_active(gw, f"gateway {gateway}")
    if gw.unit_pk != unit.pk:
        raise Conflict(
            f"gateway {gateway} serves {gw.unit.site.id}/{gw.unit.id}, "
            f"not {unit.site.id}/{unit.id}"
        )
    return gw


def add_bed(
    session: Session, site: str, unit: str, req: BedRequest, *, now: datetime
) -> BedView:
    found = find_unit(session, site, unit, lock=True)
    ensure_active(found, f"unit {site}/{unit}")
    exists = select(Bed.pk).where(Bed.unit_pk == found.pk, Bed.id == req.id)
    if session.scalar(exists) is not None:
        raise Conflict(f"bed {site}/{unit}/{req.id} already exists")
    gw = _unit_gateway(session, found, req.gateway) if req.gateway is not None else None
    bed = Bed(id=req.id, unit=found, gateway=gw, status="active", created_at=now)
    session.add(bed)
    session.flush()
    return bed_view(session, bed)


def list_beds(session: Session, site: str, unit: str) -> list[BedView]:
    found = find_unit(session, site, unit)
    beds = session.scalars(select(Bed).where(Bed.unit_pk == found.pk).order_by(Bed.id))
    return [bed_view(session, b) for b in beds]


def show_bed(session: Session, site: str, unit: str, bed: str) -> BedView:
    return bed_view(session, find_bed(session, site, unit, bed))


def retire_bed(session: Session, site: str, unit: str, bed: str, *, now: datetime) -> BedView:
    found = find_bed(session, site, unit, bed, lock=True)
    ensure_active(found, f"bed {site}/{unit}/{bed}")
    view = bed_view(session, found)
    if view.admission is not None:
        raise Conflict(f"bed {site}/{unit}/{bed} is occupied (admission {view.admission})")
    if view.devices:
        raise Conflict(
            f"bed {site}/{unit}/{bed} still has devices {', '.join(view.devices)}: "
            "unassign them first"
        )
    found.status, found.retired_at = "retired", now
    return bed_view(session, found)


# -- devices ----------------------------------------------------------------------------------
def _serial_taken(session: Session, device: Device) -> None:
    if device.manufacturer is None or device.serial_number is None:
        return
    other = session.scalars(
        select(Device.id).where(
            Device.manufacturer == device.manufacturer,
            Device.serial_number == device.serial_number,
            Device.pk != device.pk if device.pk is not None else Device.pk.is_not(None),
        )
    ).first()
    if other is not None:
        raise Conflict(
            f"{device.manufacturer} serial number {device.serial_number} is already "
            f"registered as device {other}"
        )


def add_device(session: Session, req: DeviceRequest, *, now: datetime) -> DeviceView:
    if session.scalar(select(Device.pk).where(Device.id == req.id)) is not None:
        raise Conflict(f"device {req.id!r} already exists")
    device = Device(**req.model_dump(), status="active", created_at=now)
    _serial_taken(session, device)
    session.add(device)
    session.flush()
    return device_view(session, device)


def update_device(session: Session, device: str, req: DeviceUpdate) -> DeviceView:
    found = find_device(session, device, lock=True)
    ensure_active(found, f"device {device}")
    changes = req.model_dump(exclude_unset=True, exclude_none=True)
    if "port" in changes:
        changes["ble_address"] = None
    if "ble_address" in changes:
        changes["port"] = None
    for key, value in changes.items():
        setattr(found, key, value)
    _serial_taken(session, found)
    session.flush()
    return device_view(session, found)


def list_devices(session: Session, status: str | None = None) -> list[DeviceView]:
    stmt = select(Device).order_by(Device.id)
    if status is not None:
        stmt = stmt.where(Device.status == status)
    return [device_view(session, d) for d in session.scalars(stmt)]


def show_device(session: Session, device: str) -> DeviceView:
    return device_view(session, find_device(session, device))


def device_history(session: Session, device: str) -> list[AssignmentView]:
    found = find_device(session, device)
    rows = session.scalars(
        select(DeviceAssignment).where(DeviceAssignment.device_pk == found.pk)
        .order_by(DeviceAssignment.started_at)
    )
    return [assignment_view(a) for a in rows]


def retire_device(session: Session, device: str, *, now: datetime) -> DeviceView:
    found = find_device(session, device, lock=True)
    ensure_active(found, f"device {device}")
    current = _open_assignment(session, found)
    if current is not None:
        raise Conflict(
            f"device {device} is assigned to {bed_name(current.bed)}: unassign it first"
        )
    found.status, found.retired_at = "retired", now
    return device_view(session, found)


def device_seen(session: Session, device: str, at: datetime) -> DeviceView:
    """Record that a service heard from the device at ``at`` (kept if later than before)."""
    found = find_device(session, device, lock=True)
    if found.last_seen is None or at > found.last_seen:
        found.last_seen = at
    return device_view(session, found)

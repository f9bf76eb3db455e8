"""``wardwatch registry site|unit|bed|gateway|device ...``: the biomedical engineer's commands.

Units are named ``SITE/UNIT`` and beds ``SITE/UNIT/BED`` (ids never contain ``/``), as in the
API's paths. Every read takes ``--json``; every command takes ``--db``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from registry.cli_base import DbOption, JsonOption, TimeOption, emit, parse_time, run, split_path

__all__ = ["bed_app", "device_app", "gateway_app", "site_app", "unit_app"]

site_app = typer.Typer(no_args_is_help=True, help="Sites (a hospital).")
unit_app = typer.Typer(no_args_is_help=True, help="Units (a ward): SITE/UNIT.")
bed_app = typer.Typer(no_args_is_help=True, help="Beds: SITE/UNIT/BED.")
gateway_app = typer.Typer(no_args_is_help=True, help="Bedside gateways (edge agents).")
device_app = typer.Typer(no_args_is_help=True, help="Devices: register, assign, retire.")

SITE_COLUMNS = ("id", "name", "status")
UNIT_COLUMNS = ("site", "id", "time_zone", "scoring_system", "generation", "status")
BED_COLUMNS = ("site", "unit", "id", "gateway", "status", "devices", "admission", "patient")
GATEWAY_COLUMNS = ("id", "site", "unit", "status")
DEVICE_COLUMNS = ("id", "manufacturer", "model", "serial_number", "driver", "status",
                  "maintenance_due")
ASSIGNMENT_COLUMNS = ("id", "device", "gateway", "site", "unit", "bed", "started_at", "ended_at")


# -- sites ------------------------------------------------------------------------------------
@site_app.command("add")
def site_add(site: str, db: DbOption = None, name: str | None = None,
             json: JsonOption = False) -> None:
    """Register a site."""
    from registry import assets
    from registry.schemas import SiteRequest

    v = run(db, lambda s, t: assets.add_site(s, SiteRequest(id=site, name=name), now=t))
    emit(v, json, message=f"added site {v.id}")


@site_app.command("list")
def site_list(db: DbOption = None, json: JsonOption = False) -> None:
    from registry import assets

    emit(run(db, lambda s, _: assets.list_sites(s)), json, SITE_COLUMNS)


@site_app.command("show")
def site_show(site: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import assets

    emit(run(db, lambda s, _: assets.show_site(s, site)), json)


@site_app.command("retire")
def site_retire(site: str, db: DbOption = None, json: JsonOption = False) -> None:
    """Retire a site (its units must be retired first)."""
    from registry import assets

    v = run(db, lambda s, t: assets.retire_site(s, site, now=t))
    emit(v, json, message=f"retired site {v.id}")


# -- units ------------------------------------------------------------------------------------
@unit_app.command("add")
def unit_add(
    unit: Annotated[str, typer.Argument(help="SITE/UNIT")],
    time_zone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/London.")],
    scoring_system: Annotated[
        str, typer.Option(help="bedside_pews, uk_npews, brighton_pews or news2.")
    ] = "bedside_pews",
    rules_file: Annotated[str | None, typer.Option(help="The unit rules file's path.")] = None,
    generation: Annotated[str, typer.Option(help="real, test or demo.")] = "real",
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Register a unit of a site."""
    from registry import assets
    from registry.schemas import UnitRequest

    site, unit_id = split_path(unit, 2)
    req = {"site": site, "id": unit_id, "time_zone": time_zone, "scoring_system": scoring_system,
           "rules_file": rules_file, "generation": generation}
    v = run(db, lambda s, t: assets.add_unit(s, UnitRequest.model_validate(req), now=t))
    emit(v, json, message=f"added unit {v.site}/{v.id} ({v.time_zone}, {v.scoring_system}, "
                          f"{v.generation})")


@unit_app.command("list")
def unit_list(site: str | None = None, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import assets

    emit(run(db, lambda s, _: assets.list_units(s, site)), json, UNIT_COLUMNS)


@unit_app.command("show")
def unit_show(unit: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import assets

    site, unit_id = split_path(unit, 2)
    emit(run(db, lambda s, _: assets.show_unit(s, site, unit_id)), json)


@unit_app.command("retire")
def unit_retire(unit: str, db: DbOption = None, json: JsonOption = False) -> None:
    """Retire a unit (its beds and gateways must be retired first)."""
    from registry import assets

    site, unit_id = split_path(unit, 2)
    v = run(db, lambda s, t: assets.retire_unit(s, site, unit_id, now=t))
    emit(v, json, message=f"retired unit {v.site}/{v.id}")


# -- gateways ---------------------------------------------------------------------------------
@gateway_app.command("add")
def gateway_add(
    unit: Annotated[str, typer.Argument(help="SITE/UNIT")],
    gateway: str,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Register a gateway of a unit (its id is the broker client id it is bound to)."""
    from registry import assets
    from registry.schemas import GatewayRequest

    site, unit_id = split_path(unit, 2)
    v = run(db, lambda s, t: assets.add_gateway(
        s, site, unit_id, GatewayRequest(id=gateway), now=t))
    emit(v, json, message=f"added gateway {v.id} to {v.site}/{v.unit}")


@gateway_app.command("list")
def gateway_list(
    unit: Annotated[str | None, typer.Argument(help="SITE/UNIT (default: all)")] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    from registry import assets

    site, unit_id = split_path(unit, 2) if unit else (None, None)
    emit(run(db, lambda s, _: assets.list_gateways(s, site, unit_id)), json, GATEWAY_COLUMNS)


@gateway_app.command("show")
def gateway_show(gateway: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import assets

    emit(run(db, lambda s, _: assets.show_gateway(s, gateway)), json)


@gateway_app.command("retire")
def gateway_retire(
    gateway: str,
    no_revoke: Annotated[bool, typer.Option(
        "--no-revoke", help="Retire the record only; leave its broker identity (reconcile "
        "lists it).")] = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Retire a gateway (no device may be assigned through it) and revoke its broker identity
    (with the registry identity's WM_MQTT_* settings; without them, a warning says so)."""
    from registry import assets
    from registry.cli_gateway import revoke_retired

    v = run(db, lambda s, t: assets.retire_gateway(s, gateway, now=t))
    emit(v, json, message=f"retired gateway {v.id}")
    if not no_revoke:
        revoke_retired(db, gateway, quiet=json)


# -- beds -------------------------------------------------------------------------------------
@bed_app.command("add")
def bed_add(
    bed: Annotated[str, typer.Argument(help="SITE/UNIT/BED")],
    gateway: Annotated[str | None, typer.Option(help="The gateway serving the bed.")] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Register a bed of a unit."""
    from registry import assets
    from registry.schemas import BedRequest

    site, unit, bed_id = split_path(bed, 3)
    v = run(db, lambda s, t: assets.add_bed(
        s, site, unit, BedRequest(id=bed_id, gateway=gateway), now=t))
    emit(v, json, message=f"added bed {v.site}/{v.unit}/{v.id} (gateway {v.gateway or '-'})")


@bed_app.command("list")
def bed_list(
    unit: Annotated[str, typer.Argument(help="SITE/UNIT")],
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    from registry import assets

    site, unit_id = split_path(unit, 2)
    emit(run(db, lambda s, _: assets.list_beds(s, site, unit_id)), json, BED_COLUMNS)


@bed_app.command("show")
def bed_show(bed: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import assets

    site, unit, bed_id = split_path(bed, 3)
    emit(run(db, lambda s, _: assets.show_bed(s, site, unit, bed_id)), json)


@bed_app.command("retire")
def bed_retire(bed: str, db: DbOption = None, json: JsonOption = False) -> None:
    """Retire a bed (empty, with no device assigned)."""
    from registry import assets

    site, unit, bed_id = split_path(bed, 3)
    v = run(db, lambda s, t: assets.retire_bed(s, site, unit, bed_id, now=t))
    emit(v, json, message=f"retired bed {v.site}/{v.unit}/{v.id}")


# -- devices ----------------------------------------------------------------------------------
Text = Annotated[str | None, typer.Option()]


@device_app.command("add")
def device_add(
    device: str,
    manufacturer: Annotated[str, typer.Option()],
    model: Annotated[str, typer.Option()],
    serial: Annotated[str, typer.Option(help="The manufacturer's serial number.")],
    driver: Annotated[str, typer.Option(help="The edge driver (wardwatch edge drivers).")],
    udi: Annotated[str | None, typer.Option(help="UDI, GS1 form (01)GTIN[(21)SN...].")] = None,
    port: Annotated[str | None, typer.Option(help="Serial port or pyserial URL.")] = None,
    ble_address: Annotated[str | None, typer.Option(help="BLE address AA:BB:...")] = None,
    firmware: Text = None,
    maintenance_due: Annotated[
        str | None, typer.Option(help="Calibration / preventive maintenance due, YYYY-MM-DD.")
    ] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Register a device."""
    from registry import assets
    from registry.schemas import DeviceRequest

    fields = {"id": device, "manufacturer": manufacturer, "model": model, "serial_number": serial,
              "driver": driver, "udi": udi, "port": port, "ble_address": ble_address,
              "firmware": firmware, "maintenance_due": maintenance_due}
    v = run(db, lambda s, t: assets.add_device(
        s, DeviceRequest.model_validate({k: x for k, x in fields.items() if x is not None}),
        now=t))
    emit(v, json, message=f"added device {v.id} ({v.manufacturer} {v.model}, "
                          f"serial {v.serial_number})")


@device_app.command("update")
def device_update(
    device: str,
    manufacturer: Text = None,
    model: Text = None,
    serial: Text = None,
    driver: Text = None,
    udi: Text = None,
    port: Text = None,
    ble_address: Text = None,
    firmware: Text = None,
    maintenance_due: Text = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Change a device's asset data (a firmware upgrade, the next maintenance date...)."""
    from registry import assets
    from registry.schemas import DeviceUpdate

    fields = {"manufacturer": manufacturer, "model": model, "serial_number": serial,
              "driver": driver, "udi": udi, "port": port, "ble_address": ble_address,
              "firmware": firmware, "maintenance_due": maintenance_due}
    v = run(db, lambda s, _: assets.update_device(
        s, device, DeviceUpdate.model_validate({k: x for k, x in fields.items() if x is not None})))
    emit(v, json, message=f"updated device {v.id}")


@device_app.command("list")
def device_list(
    status: Annotated[str | None, typer.Option(help="active or retired")] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    from registry import assets

    emit(run(db, lambda s, _: assets.list_devices(s, status)), json, DEVICE_COLUMNS)


@device_app.command("show")
def device_show(device: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import assets

    emit(run(db, lambda s, _: assets.show_device(s, device)), json)


@device_app.command("history")
def device_history(device: str, db: DbOption = None, json: JsonOption = False) -> None:
    """Every bed the device has served, oldest first."""
    from registry import assets

    emit(run(db, lambda s, _: assets.device_history(s, device)), json, ASSIGNMENT_COLUMNS)


@device_app.command("retire")
def device_retire(device: str, db: DbOption = None, json: JsonOption = False) -> None:
    """Retire a device (unassigned first)."""
    from registry import assets

    v = run(db, lambda s, t: assets.retire_device(s, device, now=t))
    emit(v, json, message=f"retired device {v.id}")


@device_app.command("assign")
def device_assign(
    device: str,
    bed: Annotated[str, typer.Argument(help="SITE/UNIT/BED")],
    gateway: Annotated[str | None, typer.Option(help="Default: the bed's gateway.")] = None,
    time: TimeOption = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Assign a device to a bed (through a gateway of its unit)."""
    from registry import care
    from registry.schemas import AssignRequest

    site, unit, bed_id = split_path(bed, 3)
    when = parse_time(time) if time else None
    v = run(db, lambda s, t: care.assign(s, AssignRequest(
        device=device, site=site, unit=unit, bed=bed_id, gateway=gateway, time=when), now=t))
    emit(v, json, message=f"assigned {v.device} to {v.site}/{v.unit}/{v.bed} via {v.gateway} "
                          f"from {v.started_at.isoformat()}")


@device_app.command("unassign")
def device_unassign(
    device: str, time: TimeOption = None, db: DbOption = None, json: JsonOption = False
) -> None:
    """End a device's assignment to its bed."""
    from registry import care
    from registry.schemas import TimeRequest

    req = TimeRequest(time=parse_time(time) if time else None)
    v = run(db, lambda s, t: care.unassign(s, device, req, now=t))
    ended = v.ended_at.isoformat() if v.ended_at else "-"
    emit(v, json, message=f"unassigned {v.device} from {v.site}/{v.unit}/{v.bed} at {ended}")

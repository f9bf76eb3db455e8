"""``wardwatch registry patient|admission|admit|transfer|discharge|at|import-ward|export-context|
backup|restore|db|serve``: the clinical history, the unit context, and the database itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from registry.cli_base import (
    DbOption,
    JsonOption,
    TimeOption,
    emit,
    fail,
    open_engine,
    parse_time,
    run,
    split_path,
)

__all__ = ["admission_app", "db_app", "patient_app", "register"]

patient_app = typer.Typer(no_args_is_help=True, help="Patients: a pseudonymous id and a date of "
                          "birth, nothing else.")
admission_app = typer.Typer(no_args_is_help=True, help="Admissions and their bed stays.")
db_app = typer.Typer(no_args_is_help=True, help="The registry database's schema.")

PATIENT_COLUMNS = ("id", "dob", "admission")
ADMISSION_COLUMNS = ("id", "patient", "admitted_at", "discharged_at")
Ref = Annotated[str, typer.Argument(help="An admission id, or a patient id (their open "
                                         "admission).")]


@patient_app.command("add")
def patient_add(
    patient: Annotated[str, typer.Argument(help="Pseudonymous id, P-... (never a name or MRN).")],
    dob: Annotated[str, typer.Option(help="Date of birth, YYYY-MM-DD.")],
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Register a patient."""
    from registry import care
    from registry.schemas import PatientRequest

    v = run(db, lambda s, t: care.add_patient(
        s, PatientRequest.model_validate({"id": patient, "dob": dob}), now=t))
    emit(v, json, message=f"added patient {v.id} (born {v.dob})")


@patient_app.command("list")
def patient_list(db: DbOption = None, json: JsonOption = False) -> None:
    from registry import care

    emit(run(db, lambda s, _: care.list_patients(s)), json, PATIENT_COLUMNS)


@patient_app.command("show")
def patient_show(patient: str, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import care

    emit(run(db, lambda s, _: care.show_patient(s, patient)), json)


@admission_app.command("list")
def admission_list(
    open_only: Annotated[bool, typer.Option("--open", help="Only the current ones.")] = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    from registry import care

    emit(run(db, lambda s, _: care.list_admissions(s, open_only=open_only)), json,
         ADMISSION_COLUMNS)


@admission_app.command("show")
def admission_show(admission: Ref, db: DbOption = None, json: JsonOption = False) -> None:
    from registry import care

    emit(run(db, lambda s, _: care.show_admission(s, admission)), json)


def admit_cmd(
    patient: str,
    bed: Annotated[str, typer.Argument(help="SITE/UNIT/BED")],
    time: TimeOption = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Admit a patient to a bed; prints the new admission's id."""
    from registry import care
    from registry.schemas import AdmitRequest

    site, unit, bed_id = split_path(bed, 3)
    when = parse_time(time) if time else None
    v = run(db, lambda s, t: care.admit(s, AdmitRequest.model_validate(
        {"patient": patient, "site": site, "unit": unit, "bed": bed_id, "time": when}), now=t))
    emit(v, json, message=f"admitted {v.patient} to {site}/{unit}/{bed_id} as {v.id}")


def transfer_cmd(
    admission: Ref,
    bed: Annotated[str, typer.Argument(help="SITE/UNIT/BED")],
    time: TimeOption = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Move an admission to another bed (its stay in the old one ends)."""
    from registry import care
    from registry.schemas import TransferRequest

    site, unit, bed_id = split_path(bed, 3)
    when = parse_time(time) if time else None
    v = run(db, lambda s, t: care.transfer(s, admission, TransferRequest.model_validate(
        {"site": site, "unit": unit, "bed": bed_id, "time": when}), now=t))
    emit(v, json, message=f"transferred {v.id} ({v.patient}) to {site}/{unit}/{bed_id}")


def discharge_cmd(
    admission: Ref, time: TimeOption = None, db: DbOption = None, json: JsonOption = False
) -> None:
    """Discharge an admission (its bed is free from then on)."""
    from registry import care
    from registry.schemas import TimeRequest

    when = parse_time(time) if time else None
    v = run(db, lambda s, t: care.discharge(s, admission, TimeRequest(time=when), now=t))
    at = v.discharged_at.isoformat() if v.discharged_at else "-"
    emit(v, json, message=f"discharged {v.id} ({v.patient}) at {at}")


def at_cmd(
    device: Annotated[str, typer.Option(help="The device id.")],
    time: Annotated[str, typer.Option(help="ISO 8601 with a UTC offset.")],
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Which bed a device served at a time, and which patient lay there."""
    from registry import care

    when = parse_time(time)
    v = run(db, lambda s, _: care.at(s, device, when))
    if v.bed is None:
        message = f"{device} was assigned to no bed at {when.isoformat()}"
    else:
        who = (f"admission {v.admission}, patient {v.patient}" if v.patient
                else "no patient in the bed")
        message = (f"{device} at {when.isoformat()}: {v.site}/{v.unit}/{v.bed} via gateway "
                   f"{v.gateway} (assignment {v.assignment}); {who}")
    emit(v, json, message=message)


def import_ward_cmd(
    path: Path,
    time_zone: Annotated[
        str | None, typer.Option(help="The unit's IANA time zone if the file names none "
                                 "(default UTC).")
    ] = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Load a ward file (docs/ward-file.md) into the registry: its unit, gateways, beds and
    devices, and its patients admitted now."""
    from registry.unitcontext import import_ward
    from servicekit.context import UnitContextError, load_ward_file

    try:
        ward = load_ward_file(path)
    except UnitContextError as exc:
        fail(str(exc))
    v = run(db, lambda s, t: import_ward(s, ward, now=t, time_zone=time_zone))
    counts = ", ".join(f"{n} {what}" for what, n in v.created.items())
    extra = (f"; {len(v.incomplete_devices)} devices have no asset data yet (device update)"
             if v.incomplete_devices else "")
    emit(v, json, message=f"imported {v.site}/{v.unit}: {counts}{extra}")


def export_context_cmd(
    unit: Annotated[str, typer.Option(help="SITE/UNIT")],
    time: Annotated[str | None, typer.Option(help="As it was at this time (default now).")] = None,
    db: DbOption = None,
) -> None:
    """Print a unit's context as JSON: what GET /units/SITE/UNIT/context serves."""
    from registry.unitcontext import unit_context

    site, unit_id = split_path(unit, 2)
    when = parse_time(time) if time else None
    ctx = run(db, lambda s, t: unit_context(s, site, unit_id, at=when or t))
    typer.echo(ctx.model_dump_json(indent=2))


def backup_cmd(path: Path, db: DbOption = None) -> None:
    """Copy the registry (SQLite) to FILE, consistently, while it runs."""
    from registry import audit
    from registry.backup import backup
    from registry.errors import RegistryError

    engine = open_engine(db)
    try:
        size = backup(engine, path)
    except RegistryError as exc:
        fail(exc.reason)
    finally:
        engine.dispose()
    # who took a copy of the registry (patients included), and where: in the live chain (the
    # copy itself ends just before this record)
    run(db, lambda s, t: audit.record(s, None, "registry.backup", f"file/{path.name}",
                                      {"file": str(path.resolve()), "bytes": size}, now=t))
    typer.echo(f"backed up {engine.url.database} to {path} ({size} bytes)")


def restore_cmd(path: Path, db: DbOption = None) -> None:
    """Replace the registry's contents (SQLite) with the backup FILE."""
    from registry import audit
    from registry.backup import restore
    from registry.db import create, default_url, upgrade
    from registry.errors import RegistryError

    engine = create(db or default_url())
    try:
        revision = restore(engine, path)
        upgrade(engine)
    except RegistryError as exc:
        fail(exc.reason)
    finally:
        engine.dispose()
    # the restored chain goes on with the restore itself: who replaced the registry, from what
    run(db, lambda s, t: audit.record(s, None, "registry.restore", f"file/{path.name}",
                                      {"file": str(path.resolve()), "schema_revision": revision},
                                      now=t))
    typer.echo(f"restored {path} (schema revision {revision}) into {engine.url.database}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    db: DbOption = None,
) -> None:
    """Create or migrate the registry's schema (to the newest revision by default)."""
    from registry.db import create, current_revision, default_url, upgrade
    from registry.errors import RegistryError

    try:
        engine = create(db or default_url())
        before = current_revision(engine)
        upgrade(engine, revision)
        after = current_revision(engine)
    except RegistryError as exc:
        fail(exc.reason)
    except Exception as exc:  # noqa: BLE001 - alembic and the drivers raise many kinds
        fail(f"upgrade failed: {type(exc).__name__}: {exc}")
    engine.dispose()
    typer.echo(f"schema revision {before or 'none'} -> {after}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database and the newest this registry knows."""
    from registry.db import create, current_revision, default_url, head_revision

    engine = create(db or default_url())
    try:
        typer.echo(f"{current_revision(engine) or 'none'} (newest: {head_revision()})")
    finally:
        engine.dispose()


def serve_cmd(
    ctx: typer.Context,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one; the first line says which).")
                    ] = 8470,
    mqtt: Annotated[bool, typer.Option(
        "--mqtt", help="Connect to the broker (WM_MQTT_* settings) and publish a ContextChanged "
        "event for every unit whose context changes (docs/registry.md).")] = False,
    watch_s: Annotated[float, typer.Option(
        min=0.2, max=3600, help="With --mqtt: look for changes this often (seconds), besides "
        "after every write request.")] = 2.0,
    tls_cert: Annotated[Path | None, typer.Option(
        help="Serve HTTPS with this certificate (PEM, e.g. from `wardwatch certs init`); "
        "needs --tls-key.")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        help="The certificate's private key (PEM; refused unless only its owner may read it)."
    )] = None,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json); HTTPS with --tls-cert/--tls-key."""
    import socket

    import uvicorn

    from registry.api import create_app

    source = ctx.get_parameter_source("db")
    if db and source is not None and source.name == "COMMANDLINE" and _url_password(db):
        # a long-running process's argv is every local user's to read (ps)
        fail("--db holds a password, which would stay on this server's command line: give the "
             "URL in WM_REGISTRY_DB, or the password in ~/.pgpass (PGPASSFILE)")
    tls = _tls_files(tls_cert, tls_key)
    engine = open_engine(db)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")
    sock.listen(128)  # connections wait in the backlog from now on, until uvicorn accepts
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    scheme = "https" if tls else "http"
    typer.echo(f"serving {scheme}://{shown}:{bound} ({engine.url.render_as_string()})", nl=True)
    broker = notifier = None
    if mqtt:
        from registry.broker import RegistryBroker
        from servicekit.settings import ServiceSettings

        settings = ServiceSettings()
        broker = RegistryBroker(settings.mqtt_params(), root=settings.topic_root)
        broker.start()
    # nurses' alert actions and charted sets go to the broker as the registry identity (503
    # without --mqtt)
    asgi: Any = create_app(engine, publish_command=broker.publish_command if broker else None,
                           publish_chart=broker.publish_chart if broker else None)
    if broker is not None:
        from registry.events import ContextWatcher
        from registry.notify import ChangeNotifier, PokeOnWrite

        notifier = ChangeNotifier(ContextWatcher(engine), broker.publish_change,
                                  interval_s=watch_s)
        notifier.start()
        asgi.state.broker = broker
        asgi = PokeOnWrite(asgi, notifier)
    config = uvicorn.Config(asgi, log_level="warning", access_log=False,
                            ssl_certfile=tls[0] if tls else None,
                            ssl_keyfile=tls[1] if tls else None)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if notifier is not None:
            notifier.stop()
        if broker is not None:
            broker.stop()
        engine.dispose()


def _url_password(url: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return bool(make_url(url).password)
    except ArgumentError:
        return False  # not a URL: open_engine says so


def _tls_files(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    """The HTTPS certificate and key, checked before anything listens (exit 2 with why)."""
    import ssl

    if cert is None and key is None:
        return None
    if cert is None or key is None:
        fail("--tls-cert and --tls-key go together")
    try:
        if key.stat().st_mode & 0o077:
            fail(f"{key}: a private key readable by others is refused (chmod 600 it)")
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        fail(f"cannot use {cert} with {key}: {getattr(exc, 'strerror', None) or exc}")
    return str(cert), str(key)


def register(app: typer.Typer) -> None:
    """Mount these commands on the registry's app."""
    app.add_typer(patient_app, name="patient")
    app.add_typer(admission_app, name="admission")
    app.command("admit")(admit_cmd)
    app.command("transfer")(transfer_cmd)
    app.command("discharge")(discharge_cmd)
    app.command("at")(at_cmd)
    app.command("import-ward")(import_ward_cmd)
    app.command("export-context")(export_context_cmd)
    app.command("backup")(backup_cmd)
    app.command("restore")(restore_cmd)
    app.add_typer(db_app, name="db")
    app.command("serve")(serve_cmd)

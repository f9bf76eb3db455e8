"""``wardwatch registry gateway enroll|rotate|revoke|reconcile``: a gateway's broker identity.

The commands work on the registry database directly (``--db``) and reach the broker as the
registry identity, from the environment only (never argv): ``WM_MQTT_HOST``, ``WM_MQTT_PORT``,
``WM_MQTT_CA_FILE`` (+ ``WM_MQTT_CERT_FILE``/``WM_MQTT_KEY_FILE``), ``WM_MQTT_USERNAME``
(default ``registry``) and ``WM_MQTT_PASSWORD`` or ``WM_MQTT_PASSWORD_FILE`` (a file no one
else may read). ``WM_TOPIC_ROOT`` is the root the gateway publishes under.

The gateway's secret is printed once (stdout, or ``--out FILE`` written 0600) and never logged.
Exit status: 2 for a refused request (nothing changed), 1 when the broker could not be reached
or refused (the message says what the registry holds and what to run again).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from registry.cli_base import DbOption, JsonOption, actor, fail, open_engine

if TYPE_CHECKING:
    from registry.enroll import AdminSession, BrokerTarget

__all__ = ["register_gateway_commands"]

T = TypeVar("T")

OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Write the config (or --json object) to FILE, mode 0600, "
                 "instead of stdout."),
]
HostOption = Annotated[
    str | None, typer.Option(help="The broker host the gateway connects to (default "
                             "$WM_MQTT_HOST).")]
PortOption = Annotated[
    int | None, typer.Option(help="The broker port the gateway connects to (default "
                             "$WM_MQTT_PORT).")]
CaOption = Annotated[
    str | None, typer.Option("--ca-file", help="The CA file's path on the gateway (default "
                             "$WM_MQTT_CA_FILE; none: plain MQTT).")]
CertOption = Annotated[bool, typer.Option(
    "--cert", help="Also issue a client certificate (CN = the gateway id) from the registry's "
    "CA (--ca-dir), written beside --out as GATEWAY.pem and GATEWAY.key (0600); the broker's "
    "mutual-TLS listener checks it and the password.")]
CaDirOption = Annotated[Path | None, typer.Option(
    "--ca-dir", envvar="WM_PKI_DIR", show_default=False,
    help="The registry's CA directory (ca.pem, ca.key: `wardwatch certs init`), default "
    "$WM_PKI_DIR.")]
CertDaysOption = Annotated[int, typer.Option("--cert-days", min=1, max=3650,
                                             help="How long the certificate lasts.")]
GatewayDirOption = Annotated[str | None, typer.Option(
    "--gateway-dir", help="Where the certificate, its key and the CA (ca.pem) are on the "
    "gateway (default: where they were written).")]
OutboxOption = Annotated[
    str | None, typer.Option("--outbox", help="The outbox path on the gateway (default "
                             "/var/lib/wardwatch/GATEWAY/outbox.db).")]


def _broker_failed(reason: str) -> NoReturn:
    typer.echo(" ".join(reason.split()), err=True)
    raise typer.Exit(1)


def read_secret_file(path: Path) -> str:
    """A secret from a file only its owner may read (refused otherwise, naming the mode)."""
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            fail(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; "
                 "chmod 600 it")
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        fail(f"{path}: cannot read: {exc.strerror}")


def admin_settings() -> tuple[Any, BrokerTarget]:
    """The registry identity's connection (``MqttParams``) and the default broker target of
    printed configs, from ``WM_*``."""
    from pydantic import ValidationError

    from registry.enroll import BrokerTarget
    from servicekit.settings import ServiceSettings

    try:
        st = ServiceSettings()
    except ValidationError as exc:
        fail(f"WM_* settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
    password = st.mqtt_password
    pw_file = os.environ.get("WM_MQTT_PASSWORD_FILE")
    if pw_file:
        if password:
            fail("set WM_MQTT_PASSWORD or WM_MQTT_PASSWORD_FILE, not both")
        password = read_secret_file(Path(pw_file))
    if not password and not st.mqtt_cert_file:
        fail("the registry's broker identity needs WM_MQTT_PASSWORD_FILE (or WM_MQTT_PASSWORD, "
             "or a client certificate)")
    params = st.mqtt_params()
    from dataclasses import replace

    params = replace(params, username=st.mqtt_username or "registry", password=password)
    try:
        target = BrokerTarget(host=st.mqtt_host, port=st.mqtt_port,
                              ca_file=str(st.mqtt_ca_file) if st.mqtt_ca_file else None,
                              topic_root=st.topic_root)
    except ValidationError as exc:
        fail(f"WM_* settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
    return params, target


def _run(db: str | None, action: Callable[[Any, AdminSession, BrokerTarget], T]) -> T:
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    from registry.enroll import AdminSession, BrokerFailed
    from registry.errors import RegistryError

    params, target = admin_settings()
    engine = open_engine(db)
    try:
        with AdminSession(params) as admin:
            return action(engine, admin, target)
    except BrokerFailed as exc:
        _broker_failed(exc.reason)
    except RegistryError as exc:
        fail(exc.reason)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    except DBAPIError as exc:
        fail(f"database error: {str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")
    finally:
        engine.dispose()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a new 0600 file (atomically replacing an old one)."""
    from servicekit.files import write_private as write

    try:
        write(path, text)
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror}")


def check_out(dest: Path | None) -> None:
    """Refuse an ``--out`` that cannot be written *before* a credential is issued (else its
    only copy would be lost)."""
    if dest is None:
        return
    if dest.is_dir():
        fail(f"--out {dest}: is a directory (give a file name)")
    parent = dest.parent.resolve()
    if not parent.is_dir():
        fail(f"--out {dest}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        fail(f"--out {dest}: cannot write in {parent}")


def _deliver(out: Any, as_json: bool, dest: Path | None) -> None:
    text = out.model_dump_json(indent=2) + "\n" if as_json else out.config
    note = (f"{out.action} gateway {out.gateway} ({out.site}/{out.unit}): client id and "
            f"username {out.gateway}, publishes below {out.publish_topic}, credential "
            f"{out.fingerprint}")
    if out.broker.cert_file:
        sha = (out.broker.cert_sha256 or "")[:16]
        note += (f"; client certificate {sha}… valid until {out.broker.cert_not_after:%Y-%m-%d}"
                 f", {out.gateway}.pem and {out.gateway}.key written beside the config")
    if out.skipped_devices:
        note += (f"; devices without a driver and port left out of the config: "
                 f"{', '.join(out.skipped_devices)}")
    if dest is not None:
        write_private(dest, text)
        typer.echo(f"{note}; config written to {dest} (0600)")
    else:
        typer.echo(note, err=True)
        typer.echo(text, nl=False)


def now() -> datetime:
    return datetime.now(UTC)


def _cert_request(cert: bool, ca_dir: Path | None, out: Path | None, days: int,
                  gateway_dir: str | None) -> Any:
    from registry.enroll import CertRequest

    if not cert:
        if gateway_dir is not None:
            fail("--gateway-dir goes with --cert")
        return None
    if out is None:
        fail("--cert writes the gateway's private key: give --out FILE (the pair goes beside it)")
    if ca_dir is None:
        fail("--cert needs the registry's CA: --ca-dir DIR or WM_PKI_DIR")
    return _validated(CertRequest, {"ca_dir": str(ca_dir), "out_dir": str(out.parent.resolve()),
                                     "gateway_dir": gateway_dir, "days": days})


def enroll_cmd(
    gateway: str,
    unit: Annotated[str, typer.Option(help="The unit it serves: UNIT or SITE/UNIT.")],
    site: Annotated[str | None, typer.Option(help="The unit's site (default: the one site "
                                             "with that unit).")] = None,
    bed: Annotated[str | None, typer.Option(help="A bed it serves by default.")] = None,
    broker_host: HostOption = None,
    broker_port: PortOption = None,
    ca_file: CaOption = None,
    outbox: OutboxOption = None,
    out: OutOption = None,
    cert: CertOption = False,
    ca_dir: CaDirOption = None,
    cert_days: CertDaysOption = 365,
    gateway_dir: GatewayDirOption = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Register a gateway (if new) and create its broker identity in one step; print its edge
    config (--json: the credentials as an object). Running it again issues new credentials."""
    from registry.enroll import EnrollRequest, enroll

    if "/" in unit:
        if site is not None or unit.count("/") != 1:
            fail(f"--unit {unit!r}: give UNIT with --site, or SITE/UNIT")
        site, unit = unit.split("/")
    _valid_id(gateway)
    req = _validated(EnrollRequest, {
        "unit": unit, "site": site, "bed": bed, "broker_host": broker_host,
        "broker_port": broker_port, "ca_file": ca_file, "outbox_path": outbox,
    })
    check_out(out)
    creq = _cert_request(cert, ca_dir, out, cert_days, gateway_dir)
    result = _run(db, lambda e, a, t: enroll(e, a, gateway, req, broker=t,
                                             actor=actor(), now=now, cert=creq))
    _deliver(result, json, out)


def _valid_id(gateway: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", gateway):
        fail(f"gateway {gateway!r} is not an id (a letter or digit, then up to 63 letters, "
             "digits, '_', '.', '-')")


M = TypeVar("M")


def _validated(model: type[M], data: dict[str, Any]) -> M:
    from pydantic import BaseModel, ValidationError

    assert issubclass(model, BaseModel)
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))


def rotate_cmd(
    gateway: str,
    broker_host: HostOption = None,
    broker_port: PortOption = None,
    ca_file: CaOption = None,
    outbox: OutboxOption = None,
    out: OutOption = None,
    cert: CertOption = False,
    ca_dir: CaDirOption = None,
    cert_days: CertDaysOption = 365,
    gateway_dir: GatewayDirOption = None,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Issue new credentials to an enrolled gateway: the old ones stop working at once; the
    gateway's outbox keeps its readings until it runs with the new config."""
    from registry.enroll import RotateRequest, rotate

    req = _validated(RotateRequest, {"broker_host": broker_host, "broker_port": broker_port,
                                     "ca_file": ca_file, "outbox_path": outbox})
    check_out(out)
    creq = _cert_request(cert, ca_dir, out, cert_days, gateway_dir)
    result = _run(db, lambda e, a, t: rotate(e, a, gateway, req, broker=t,
                                             actor=actor(), now=now, cert=creq))
    _deliver(result, json, out)


def revoke_cmd(
    gateway: str, db: DbOption = None, json: JsonOption = False
) -> None:
    """Remove a gateway's broker identity: disconnected at once, refused from then on."""
    from registry.enroll import revoke

    r = _run(db, lambda e, a, _t: revoke(e, a, gateway, actor=actor(), now=now))
    if json:
        typer.echo(r.model_dump_json(indent=2))
    elif r.removed:
        typer.echo(f"revoked gateway {gateway}: its broker identity is removed and any live "
                   "session closed")
    else:
        typer.echo(f"gateway {gateway} had no broker identity (already revoked)")


def revoke_retired(db: str | None, gateway: str, *, quiet: bool = False) -> None:
    """After ``gateway retire``: revoke its broker identity when the registry identity's broker
    settings are there (exit 1 if that fails: the record is retired, the identity is not);
    without them, say on stderr that the identity stays."""
    if not (os.environ.get("WM_MQTT_USERNAME") or os.environ.get("WM_MQTT_PASSWORD_FILE")):
        typer.echo(f"warning: gateway {gateway}'s broker identity, if it has one, is NOT revoked "
                   "(no WM_MQTT_* settings of the registry identity): run `wardwatch registry "
                   f"gateway revoke {gateway}` where they are, or `reconcile --fix`", err=True)
        return
    from registry.enroll import revoke

    try:
        r = _run(db, lambda e, a, _t: revoke(e, a, gateway, actor=actor(), now=now))
    except typer.Exit:
        typer.echo(f"gateway {gateway} is retired, but its broker identity was NOT revoked: "
                   f"run `wardwatch registry gateway revoke {gateway}`", err=True)
        raise
    if not quiet:
        typer.echo(f"revoked gateway {gateway}'s broker identity" if r.removed
                   else f"gateway {gateway} had no broker identity")


def reconcile_cmd(
    fix: Annotated[bool, typer.Option("--fix", help="Remove broker identities the registry "
                                      "does not back.")] = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Compare the registry's gateways with the broker's gateway identities; exit 3 if they
    differ (after --fix: if something is left that only an enroll can fix)."""
    from registry.enroll import reconcile

    r = _run(db, lambda e, a, _t: reconcile(e, a, fix=fix, actor=actor(), now=now))
    if json:
        typer.echo(r.model_dump_json(indent=2))
    else:
        typer.echo(f"{r.checked_registry} gateways in the registry, {r.checked_broker} gateway "
                   "identities on the broker")
        for item in r.items:
            typer.echo(f"{item.gateway}: {item.finding}{' (removed)' if item.fixed else ''}")
        if not r.items:
            typer.echo("in step")
    if any(not i.fixed for i in r.items):
        raise typer.Exit(3)


def register_gateway_commands(app: typer.Typer) -> None:
    """Mount these on ``wardwatch registry gateway``."""
    app.command("enroll")(enroll_cmd)
    app.command("rotate")(rotate_cmd)
    app.command("revoke")(revoke_cmd)
    app.command("reconcile")(reconcile_cmd)

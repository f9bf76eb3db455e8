"""Gateway enrolment: the registry rows and the broker identity of a bedside gateway in one step,
and its rotation, revocation and reconciliation (``docs/registry.md``, "Enrolling gateways").

The broker side is mosquitto's dynamic-security plugin, driven over its control topic by the
registry's broker identity (``servicekit.dynsec``): one role per gateway with a literal ACL
(publish only below ``{root}/gw/{site}/{unit}/{gateway}/``), the client id bound to the gateway
id, a fresh random password.

**Order, and what a crash leaves.** The database comes first: the gateway's row (and the bed it
serves) is committed, then the broker identity is made, then the enrolment is recorded (the
audit log, with the credential's fingerprint). A crash or a broker failure between the two
leaves a registered gateway without a broker identity, which no one can use: running
``enroll`` again converges (the broker upsert replaces whatever is there), and ``reconcile``
lists every such gap. Revocation goes to the broker first (that is what must not fail
silently), then to the record. The secret itself is never stored: the plugin keeps its salted
hash, the registry a fingerprint in the audit record, the operator the one printed copy.

Pure parts (the reconciliation plan, the edge config rendering) take plain values; the rest
takes a :class:`~sqlalchemy.Engine` and a :class:`BrokerAdmin` (``control(commands)``), so the
CLI's own connection and the ``serve`` process's broker connection both drive it.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from registry import assets, audit
from registry.db import transaction
from registry.errors import Conflict, Invalid, NotFound, RegistryError
from registry.models import Bed, Device, DeviceAssignment, Gateway, Unit
from registry.schemas import GatewayRequest
from servicekit import dynsec
from servicekit.mqtt import MqttParams, MqttSession
from servicekit.tomlio import dumps as toml_dumps
from wardwire import topics
from wardwire.models import Ident

__all__ = [
    "AdminSession",
    "BrokerAdmin",
    "BrokerFailed",
    "BrokerTarget",
    "CertRequest",
    "DynsecChannel",
    "EnrollRequest",
    "Enrollment",
    "ReconcileReport",
    "Revocation",
    "edge_config",
    "enroll",
    "reconcile",
    "reconcile_plan",
    "revoke",
    "rotate",
]

log = logging.getLogger("registry.enroll")


class BrokerFailed(RegistryError):
    """The broker could not be reached or refused a dynamic-security command; the reason says
    what the registry holds meanwhile and what to run."""

    status = 503
    kind = "broker"


class BrokerAdmin(Protocol):
    """Something that runs dynamic-security commands and returns one answer per command, in
    order (raising :class:`BrokerFailed` when the broker is away or does not answer)."""

    def control(
        self, commands: Sequence[Mapping[str, Any]], timeout: float = 10.0
    ) -> list[dict[str, Any]]: ...


# -- the control topic's request/response -----------------------------------------------------
class DynsecChannel:
    """Requests on ``$CONTROL/dynamic-security/v1`` matched to their answers on the response
    topic by correlation data, over a session subscribed to :data:`~servicekit.dynsec.
    RESPONSE_TOPIC` (every admin sees every answer; each request waits for its own).

    Feed :meth:`on_message` from the session's message callback. A request is sent only while
    connected: paho would otherwise queue it and run it after the caller gave up."""

    def __init__(self, session: MqttSession | None = None) -> None:
        self.session = session
        self._cond = threading.Condition()
        self._answers: dict[str, dict[str, Any]] = {}
        self._waiting: set[str] = set()

    def on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        if msg.topic != dynsec.RESPONSE_TOPIC:
            return
        try:
            responses = dynsec.parse_responses(msg.payload)
        except dynsec.DynsecError as exc:
            log.error("unreadable dynamic-security answer: %s", exc)
            return
        with self._cond:
            for r in responses:
                key = str(r.get("correlationData"))
                if key in self._waiting:
                    self._answers[key] = r
            self._cond.notify_all()

    def control(
        self, commands: Sequence[Mapping[str, Any]], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        session = self.session
        if session is None or not session.connected.is_set():
            raise BrokerFailed("not connected to the broker")
        if not session.subscribed.wait(timeout):
            raise BrokerFailed(
                "the broker did not grant the dynamic-security response topic (is this the "
                f"registry identity?); refused: {session.refused_filters}"
            )
        keys = [secrets.token_hex(8) for _ in commands]
        cmds = [dict(c, correlationData=k) for c, k in zip(commands, keys, strict=True)]
        refused: list[str] = []
        done = threading.Event()

        def answered(rc: Any) -> None:
            if rc.is_failure:
                refused.append(str(rc))
                with self._cond:
                    self._cond.notify_all()
            done.set()

        with self._cond:
            self._waiting.update(keys)
        try:
            session.publish(dynsec.CONTROL_TOPIC, json.dumps({"commands": cmds}), qos=1,
                            on_done=answered)
            with self._cond:
                ok = self._cond.wait_for(
                    lambda: bool(refused) or all(k in self._answers for k in keys), timeout
                )
                if refused:
                    raise BrokerFailed(
                        f"the broker refused the dynamic-security request: {refused[0]} "
                        "(is this the registry identity?)"
                    )
                if not ok:
                    raise BrokerFailed(f"no dynamic-security answer within {timeout:g} s")
                return [self._answers.pop(k) for k in keys]
        finally:
            with self._cond:
                self._waiting.difference_update(keys)
                for k in keys:
                    self._answers.pop(k, None)


class AdminSession:
    """A connection of its own for one command (the CLI): connects as the registry identity,
    subscribes to the response topic, runs requests, disconnects (no session kept)."""

    def __init__(self, params: MqttParams, client_id: str | None = None) -> None:
        from dataclasses import replace

        self.channel = DynsecChannel()
        self.session = MqttSession(
            replace(params, session_expiry_s=0),
            client_id or f"registry-admin-{secrets.token_hex(4)}",
            subscriptions=[(dynsec.RESPONSE_TOPIC, 1)],
            on_message=self.channel.on_message,
            log_name="registry.enroll",
        )
        self.channel.session = self.session

    def __enter__(self) -> AdminSession:
        from servicekit.mqtt import MqttError

        try:
            self.session.start(10.0)
        except MqttError as exc:
            raise BrokerFailed(f"cannot connect to the broker: {exc}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.stop()

    def control(
        self, commands: Sequence[Mapping[str, Any]], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        return self.channel.control(commands, timeout)


# -- requests and answers ---------------------------------------------------------------------
#: a file path: no control characters (it goes into the gateway's config)
_PATH = r"^[^\x00-\x1f\x7f]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerTarget(_Model):
    """Where the gateway connects (what its config says; may differ from the admin's own way
    in): host, port, and the CA file path *on the gateway*."""

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]_-]+$")
    port: int = Field(ge=1, le=65535)
    ca_file: str | None = Field(default=None, min_length=1, max_length=1024, pattern=_PATH)
    topic_root: str = Field(default=topics.ROOT, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
                            r"(/[A-Za-z0-9][A-Za-z0-9_.\-]{0,63})*$")


class EnrollRequest(_Model):
    """``POST /gateways/{gateway}/enroll``: the unit it serves (``site`` may be left out when
    the unit id is unique), optionally a bed it serves by default, and where it connects
    (default: the registry's own broker settings)."""

    unit: Ident
    site: Ident | None = None
    bed: Ident | None = None
    broker_host: str | None = Field(default=None, min_length=1, max_length=253,
                                    pattern=r"^[A-Za-z0-9.:\[\]_-]+$")
    broker_port: int | None = Field(default=None, ge=1, le=65535)
    ca_file: str | None = Field(default=None, min_length=1, max_length=1024, pattern=_PATH)
    outbox_path: str | None = Field(default=None, min_length=1, max_length=1024, pattern=_PATH)


class RotateRequest(_Model):
    broker_host: str | None = Field(default=None, min_length=1, max_length=253,
                                    pattern=r"^[A-Za-z0-9.:\[\]_-]+$")
    broker_port: int | None = Field(default=None, ge=1, le=65535)
    ca_file: str | None = Field(default=None, min_length=1, max_length=1024, pattern=_PATH)
    outbox_path: str | None = Field(default=None, min_length=1, max_length=1024, pattern=_PATH)


class CertRequest(_Model):
    """A client certificate for the gateway (CN = its id) from the registry's CA, besides its
    password (the broker's mutual-TLS listener checks both: the plugin keeps binding the client
    id and revoking at once). The pair is written to ``out_dir`` (key 0600, replacing an older
    pair: a rotation reissues it); the config names it in ``gateway_dir`` (default: the same)."""

    ca_dir: str = Field(min_length=1, max_length=1024, pattern=_PATH)
    out_dir: str = Field(min_length=1, max_length=1024, pattern=_PATH)
    gateway_dir: str | None = Field(default=None, min_length=1, max_length=1024, pattern=_PATH)
    days: int = Field(default=365, ge=1, le=3650)


class BrokerCredentials(_Model):
    host: str
    port: int
    username: str
    client_id: str
    password: str
    ca_file: str | None
    cert_file: str | None = None
    key_file: str | None = None
    cert_sha256: str | None = None
    cert_not_after: datetime | None = None


class Enrollment(_Model):
    """What enrol and rotate answer, once: the secret is in here and nowhere else."""

    gateway: str
    site: str
    unit: str
    action: str
    at: datetime
    broker: BrokerCredentials
    topic_root: str
    publish_topic: str
    fingerprint: str
    config: str = Field(description="The gateway's edge agent config (TOML), as printed.")
    skipped_devices: list[str] = []


class Revocation(_Model):
    gateway: str
    at: datetime
    removed: bool = Field(description="False: the broker held no identity for it already.")


class ReconcileItem(_Model):
    gateway: str
    finding: str
    fixed: bool = False


class ReconcileReport(_Model):
    checked_registry: int
    checked_broker: int
    items: list[ReconcileItem]


# -- the registry side ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    gateway: str
    site: str
    unit: str
    generation: str
    devices: tuple[tuple[str, str, str | None, str | None], ...]  # id, driver, port, ble
    skipped: tuple[str, ...]


def _find_unit(session: Session, site: str | None, unit: str) -> Unit:
    if site is not None:
        return assets.find_unit(session, site, unit, lock=True)
    found = session.scalars(select(Unit).where(Unit.id == unit)).all()
    if not found:
        raise NotFound(f"unknown unit {unit!r}")
    if len(found) > 1:
        sites = ", ".join(sorted(u.site.id for u in found))
        raise Invalid(f"unit {unit!r} exists in sites {sites}: give the site")
    return found[0]


def _target(session: Session, gw: Gateway) -> _Target:
    rows = session.execute(
        select(Device)
        .join(DeviceAssignment, DeviceAssignment.device_pk == Device.pk)
        .where(DeviceAssignment.gateway_pk == gw.pk, DeviceAssignment.ended_at.is_(None))
        .order_by(Device.id)
    ).scalars().all()
    devices, skipped = [], []
    for d in rows:
        if d.driver and (d.port or d.ble_address):
            devices.append((d.id, d.driver, d.port, d.ble_address))
        else:
            skipped.append(d.id)
    return _Target(gw.id, gw.unit.site.id, gw.unit.id, gw.unit.generation, tuple(devices),
                   tuple(skipped))


def _register(session: Session, gateway: str, req: EnrollRequest, now: datetime) -> _Target:
    """The gateway's row (made if new; it must serve the unit if it exists) and the bed it
    serves by default."""
    unit = _find_unit(session, req.site, req.unit)
    assets.ensure_active(unit, f"unit {unit.site.id}/{unit.id}")
    gw = session.scalars(select(Gateway).where(Gateway.id == gateway)).first()
    if gw is None:
        assets.add_gateway(session, unit.site.id, unit.id, GatewayRequest(id=gateway), now=now)
        gw = assets.find_gateway(session, gateway, lock=True)
    else:
        assets.ensure_active(gw, f"gateway {gateway}")
        if gw.unit_pk != unit.pk:
            raise Conflict(
                f"gateway {gateway} serves {gw.unit.site.id}/{gw.unit.id}, not "
                f"{unit.site.id}/{unit.id}"
            )
    if req.bed is not None:
        bed: Bed = assets.find_bed(session, unit.site.id, unit.id, req.bed, lock=True)
        assets.ensure_active(bed, f"bed {assets.bed_name(bed)}")
        if bed.gateway_pk not in (None, gw.pk):
            other = bed.gateway.id if bed.gateway else "?"
            raise Conflict(f"bed {assets.bed_name(bed)} is served by gateway {other}")
        bed.gateway_pk = gw.pk
    session.flush()
    return _target(session, gw)


def _existing(session: Session, gateway: str) -> _Target:
    gw = assets.find_gateway(session, gateway)
    assets.ensure_active(gw, f"gateway {gateway}")
    return _target(session, gw)


def _audit(session: Session, actor: str, action: str, subject: str,
           detail: Mapping[str, Any], now: datetime) -> None:
    """An explicit record in the registry's hash-chained audit log (ids and the credential's
    fingerprint; never the secret)."""
    audit.record(session, actor, action, subject, dict(detail), now=now)


# -- the edge config --------------------------------------------------------------------------
def edge_config(
    t: _Target, broker: BrokerTarget, password: str, *, outbox_path: str | None = None,
    fingerprint: str = "", at: datetime | None = None,
    client_cert: tuple[str, str] | None = None,
) -> str:
    """The gateway's edge agent config (``docs/edge-config.md``), TOML, loadable as is by
    ``wardwatch edge run --config``: its identity, the broker with its credentials, the outbox,
    and the devices assigned to it now (those with a driver and a port or BLE address)."""
    data: dict[str, Any] = {
        "gateway": {"id": t.gateway, "site": t.site, "unit": t.unit,
                    "generation": t.generation},
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "username": t.gateway,
            "password": password,
            "topic_root": broker.topic_root,
            **({"tls": {"ca_file": broker.ca_file,
                        **({"cert_file": client_cert[0], "key_file": client_cert[1]}
                           if client_cert else {})}}
               if broker.ca_file else {}),
        },
        "outbox": {"path": outbox_path or f"/var/lib/wardwatch/{t.gateway}/outbox.db"},
    }
    if t.devices:
        data["devices"] = [{"id": d, "driver": drv, "port": port, "ble_address": ble}
                           for d, drv, port, ble in t.devices]
    stamp = f" at {at.isoformat()}" if at else ""
    head = (
        f"# wardwatch edge config of gateway {t.gateway} ({t.site}/{t.unit}), issued by the "
        f"registry{stamp}\n"
        f"# credential {fingerprint}: this file holds the broker password; keep it mode 0600\n"
    )
    return head + toml_dumps(data)


def _client_cert(t: _Target, req: CertRequest, now: datetime) -> dict[str, Any]:
    """Issue and write the gateway's client certificate; what the config and answer name."""
    from pathlib import Path

    from servicekit import pki

    try:
        ca = pki.load_ca(Path(req.ca_dir))
        pair = ca.client(t.gateway, now=now, days=req.days)
        out = Path(req.out_dir)
        ca.write_pair(out / f"{t.gateway}.pem", out / f"{t.gateway}.key", pair, replace=True)
    except (pki.PkiError, OSError) as exc:
        raise Invalid(f"client certificate of {t.gateway}: {exc}") from exc
    there = Path(req.gateway_dir or req.out_dir)
    info = pki.cert_info(pair[0])
    return {"cert_file": str(there / f"{t.gateway}.pem"),
            "key_file": str(there / f"{t.gateway}.key"),
            "cert_sha256": info.sha256, "cert_not_after": info.not_after,
            "ca_file": str(there / "ca.pem") if req.gateway_dir else str(ca.cert_file)}


def _issue(
    t: _Target, broker: BrokerTarget, admin: BrokerAdmin, *, action: str, now: datetime,
    outbox_path: str | None, cert: CertRequest | None = None,
) -> Enrollment:
    tls: dict[str, Any] = {}
    if cert is not None:  # before the broker: a CA that cannot issue changes nothing there
        tls = _client_cert(t, cert, now)
        if broker.ca_file is None:
            broker = broker.model_copy(update={"ca_file": tls["ca_file"]})
        tls.pop("ca_file")
    try:
        scope = dynsec.GatewayScope(t.gateway, t.site, t.unit, broker.topic_root)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    _refuse_foreign(admin, t.gateway)
    password = dynsec.new_password()
    commands = dynsec.gateway_upsert(scope, password)
    try:
        dynsec.check(commands, admin.control(commands), tolerate=dynsec.upsert_tolerates())
    except dynsec.DynsecError as exc:
        raise BrokerFailed(
            f"gateway {t.gateway} is registered, but the broker did not take its identity "
            f"({exc}); run the command again"
        ) from exc
    except BrokerFailed as exc:
        raise BrokerFailed(
            f"gateway {t.gateway} is registered, but its broker identity was not made: "
            f"{exc.reason}; run the command again"
        ) from exc
    fp = dynsec.fingerprint(password)
    return Enrollment(
        gateway=t.gateway, site=t.site, unit=t.unit, action=action, at=now,
        broker=BrokerCredentials(host=broker.host, port=broker.port, username=t.gateway,
                                 client_id=t.gateway, password=password,
                                 ca_file=broker.ca_file, **tls),
        topic_root=broker.topic_root, publish_topic=scope.subtree, fingerprint=fp,
        config=edge_config(t, broker, password, outbox_path=outbox_path, fingerprint=fp, at=now,
                           client_cert=(tls["cert_file"], tls["key_file"]) if tls else None),
        skipped_devices=list(t.skipped),
    )


def _refuse_foreign(admin: BrokerAdmin, gateway: str) -> None:
    """:class:`Conflict` if the broker client named ``gateway`` is not a gateway identity (a
    service's, the registry's own, the plugin admin's): it is never deleted or replaced."""
    try:
        reason = dynsec.foreign_client(admin.control([dynsec.get_client(gateway)])[0], gateway)
    except dynsec.DynsecError as exc:
        raise BrokerFailed(f"gateway {gateway}: nothing changed on the broker ({exc})") from exc
    if reason is not None:
        raise Conflict(f"gateway {gateway}: nothing changed on the broker: {reason}")


def _broker_for(default: BrokerTarget, host: str | None, port: int | None,
                ca_file: str | None) -> BrokerTarget:
    return default.model_copy(update={
        k: v for k, v in (("host", host), ("port", port), ("ca_file", ca_file)) if v is not None
    })


_GUARD = threading.Lock()
_BUSY: dict[str, threading.Lock] = {}


@contextmanager
def _one_at_a_time(gateway: str) -> Iterator[None]:
    """One enrolment, rotation or revocation of a gateway at a time in this process (two
    concurrent upserts would each answer a password while only the last one works). Across
    processes (the CLI beside the API) the last one wins the same way: rotate again."""
    with _GUARD:
        lock = _BUSY.setdefault(gateway, threading.Lock())
    with lock:
        yield


def enroll(
    engine: Engine, admin: BrokerAdmin, gateway: str, req: EnrollRequest, *,
    broker: BrokerTarget, actor: str, now: Callable[[], datetime],
    cert: CertRequest | None = None,
) -> Enrollment:
    """Register the gateway (if new) and give it a broker identity; re-running it after any
    failure converges (a new password replaces whatever the broker held)."""
    if gateway in dynsec.SERVICE_ROLES:
        raise Invalid(f"{gateway!r} is a service identity, not a gateway")
    with _one_at_a_time(gateway):
        return _enroll(engine, admin, gateway, req, broker=broker, actor=actor, now=now,
                       cert=cert)


def _enroll(
    engine: Engine, admin: BrokerAdmin, gateway: str, req: EnrollRequest, *,
    broker: BrokerTarget, actor: str, now: Callable[[], datetime], cert: CertRequest | None,
) -> Enrollment:
    with transaction(engine) as s:
        audit.act_as(s, actor)
        t = _register(s, gateway, req, now())
    target = _broker_for(broker, req.broker_host, req.broker_port, req.ca_file)
    out = _issue(t, target, admin, action="enrolled", now=now(), outbox_path=req.outbox_path,
                 cert=cert)
    with transaction(engine) as s:
        _audit(s, actor, "gateway.enroll", gateway,
               {"unit": f"{t.site}/{t.unit}", "bed": req.bed, "credential": out.fingerprint,
                **_cert_detail(out)}, out.at)
    return out


def rotate(
    engine: Engine, admin: BrokerAdmin, gateway: str, req: RotateRequest | None = None, *,
    broker: BrokerTarget, actor: str, now: Callable[[], datetime],
    cert: CertRequest | None = None,
) -> Enrollment:
    """New credentials for an enrolled gateway: the old password stops working at once (its
    connection is closed); the gateway's outbox keeps what it reads until it reconnects with
    the new config, so nothing queued is lost."""
    req = req or RotateRequest()
    with _one_at_a_time(gateway):
        return _rotate(engine, admin, gateway, req, broker=broker, actor=actor, now=now,
                       cert=cert)


def _rotate(
    engine: Engine, admin: BrokerAdmin, gateway: str, req: RotateRequest, *,
    broker: BrokerTarget, actor: str, now: Callable[[], datetime], cert: CertRequest | None,
) -> Enrollment:
    with transaction(engine) as s:
        t = _existing(s, gateway)
    answer = admin.control([dynsec.get_client(gateway)])
    if answer and answer[0].get("error"):
        raise Conflict(
            f"gateway {gateway} has no broker identity (revoked or never enrolled: "
            f"{answer[0]['error']}); enrol it instead"
        )
    target = _broker_for(broker, req.broker_host, req.broker_port, req.ca_file)
    out = _issue(t, target, admin, action="rotated", now=now(), outbox_path=req.outbox_path,
                 cert=cert)
    with transaction(engine) as s:
        _audit(s, actor, "gateway.rotate", gateway,
               {"credential": out.fingerprint, **_cert_detail(out)}, out.at)
    return out


def _cert_detail(out: Enrollment) -> dict[str, str]:
    b = out.broker
    if b.cert_sha256 is None or b.cert_not_after is None:
        return {}
    return {"certificate": b.cert_sha256, "certificate_not_after": b.cert_not_after.isoformat()}


def revoke(
    engine: Engine, admin: BrokerAdmin, gateway: str, *, actor: str,
    now: Callable[[], datetime],
) -> Revocation:
    """Remove the gateway's broker identity: a connected gateway is disconnected at once and
    cannot connect again. The registry row stays (retire it separately); ``enroll`` gives it
    an identity again."""
    with transaction(engine) as s:
        assets.find_gateway(s, gateway)
    commands = dynsec.gateway_revoke(gateway)
    try:
        with _one_at_a_time(gateway):
            _refuse_foreign(admin, gateway)
            answers = dynsec.check(commands, admin.control(commands),
                                   tolerate=dynsec.upsert_tolerates())
    except dynsec.DynsecError as exc:
        raise BrokerFailed(f"gateway {gateway} was NOT revoked: {exc}") from exc
    except BrokerFailed as exc:
        raise BrokerFailed(f"gateway {gateway} was NOT revoked: {exc.reason}") from exc
    removed = not answers[0].get("error")
    at = now()
    with transaction(engine) as s:
        _audit(s, actor, "gateway.revoke", gateway, {"removed": removed}, at)
    return Revocation(gateway=gateway, at=at, removed=removed)


# -- reconciliation ---------------------------------------------------------------------------
def reconcile_plan(
    registry: Mapping[str, str], broker: Mapping[str, str | None]
) -> list[tuple[str, str, bool]]:
    """Compare the registry's gateways (id -> ``active`` or ``retired``) with the broker's
    gateway clients (username -> the gateway its role names, ``None`` if inconsistent).

    Returns ``(gateway, finding, removable)`` sorted by gateway: ``removable`` findings are
    broker identities the registry does not back (unknown, retired, inconsistent roles), which
    ``--fix`` removes; the rest (an active gateway without an identity) need an ``enroll``,
    since only a new secret can fix them."""
    out: list[tuple[str, str, bool]] = []
    for gw in sorted(set(registry) | set(broker)):
        state, held = registry.get(gw), gw in broker
        if held and broker[gw] is None:
            out.append((gw, "broker identity with another gateway's role", True))
        elif held and state is None:
            out.append((gw, "broker identity for a gateway the registry does not know", True))
        elif held and state == "retired":
            out.append((gw, "broker identity for a retired gateway", True))
        elif not held and state == "active":
            out.append((gw, "active in the registry, no broker identity: enroll it", False))
    return out


def reconcile(
    engine: Engine, admin: BrokerAdmin, *, fix: bool, actor: str,
    now: Callable[[], datetime],
) -> ReconcileReport:
    with transaction(engine) as s:
        registry = {g.id: g.status for g in s.scalars(select(Gateway))}
    with broker_errors():
        answers = dynsec.check([dynsec.list_clients()], admin.control([dynsec.list_clients()]))
        held = dynsec.gateway_clients(answers[0])
    items = []
    for gw, finding, removable in reconcile_plan(registry, held):
        fixed = False
        if fix and removable:
            commands = dynsec.gateway_revoke(gw)
            with broker_errors():
                dynsec.check(commands, admin.control(commands),
                             tolerate=dynsec.upsert_tolerates())
            with transaction(engine) as s:
                _audit(s, actor, "gateway.revoke", gw, {"reconcile": finding}, now())
            fixed = True
        items.append(ReconcileItem(gateway=gw, finding=finding, fixed=fixed))
    return ReconcileReport(checked_registry=len(registry), checked_broker=len(held), items=items)


@contextmanager
def broker_errors() -> Iterator[None]:
    """Dynamic-security refusals outside an enrolment (a ``listClients`` refused) as
    :class:`BrokerFailed`."""
    try:
        yield
    except dynsec.DynsecError as exc:
        raise BrokerFailed(str(exc)) from exc


"""Run real mosquitto and influxd as plain processes on free loopback ports in a temp dir.

Used by the pytest fixtures, ``make services`` and ``wardwatch demo``: one implementation of
"start the real services", so tests and the demo exercise the broker and database setup that
``deploy/mosquitto/`` ships for production (the same limits, the same identity model).

Both daemons are started with configs written into ``workdir`` (never /etc), on 127.0.0.1 only,
and are probed at the protocol level (an MQTT CONNACK, an HTTP /ping) with a deadline, because
a TCP connect succeeds even when our daemon died on "address in use" and someone else owns the
port. The broker authenticates and authorises with its dynamic-security plugin (no anonymous
access): service identities with fixed roles, and one client per gateway whose client id is
bound to its username and whose role names its own ``{root}/gw/{site}/{unit}/{gateway}/#``
subtree literally. Size and queue limits are ``BrokerLimits``. Persistence is on with a 1 s
autosave, so queued QoS 1 messages survive even ``kill -9``. With ``tls=True`` the broker has
one TLS listener and no plaintext one, with a throwaway CA and a server certificate for
``localhost``/``127.0.0.1`` made at the first start (``make_test_pki``). InfluxDB runs with
authentication on: an admin, a writer (``ingest``: READ and WRITE on the databases it is given)
and a reader (READ).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from servicekit.dynsec import (
    CONTROL_TOPIC,
    DEFAULT_ACL_ACCESS,
    PROVISIONER,
    RESPONSE_TOPIC,
    SERVICE_ROLES,
    SERVICE_USERS,
    DynsecError,
    GatewayScope,
    check,
    gateway_upsert,
    stored_password,
    upsert_tolerates,
)
from servicekit.mqtt import MqttParams, MqttSession
from servicekit.runner import block_stop_signals, wait_for_stop_signal
from wardwire import topics


class ServiceError(RuntimeError):
    """A service could not be installed, started or reached."""


def free_port() -> int:
    """A currently free loopback TCP port (the daemon start retries if it is taken meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binaries(*names: str) -> None:
    """Fail with a clear message naming what to install when a binary is missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise ServiceError(
            f"missing {', '.join(missing)}: run `make deps` (Debian/Ubuntu: apt-get install "
            "mosquitto mosquitto-clients influxdb influxdb-client)"
        )


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def _stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@dataclass(frozen=True)
class TestPki:
    """File paths of a throwaway CA and the certificates it issued (PEM; keys 0600)."""

    ca_file: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def client_cert(
        self, identity: str, *, now: datetime | None = None, days: float = 2
    ) -> tuple[Path, Path]:
        """A client certificate (CN ``identity``) from this CA: ``(cert_file, key_file)`` under
        ``clients/`` beside the CA. Made once per identity with the default ``now``; with an
        explicit ``now`` (an expired or a not-yet-valid certificate) always a new pair."""
        from servicekit.pki import check_identity, load_ca

        check_identity(identity)
        ca = load_ca(self.ca_file.parent)
        out = self.ca_file.parent / "clients"
        out.mkdir(mode=0o700, exist_ok=True)
        name = identity if now is None else f"{identity}-{secrets.token_hex(4)}"
        cert_file, key_file = out / f"{name}.pem", out / f"{name}.key"
        if now is None and cert_file.exists() and key_file.exists():
            return cert_file, key_file
        pair = ca.client(identity, now=now or datetime.now(UTC), days=days)
        ca.write_pair(cert_file, key_file, pair, replace=True)
        return cert_file, key_file


def make_test_pki(directory: Path, *, days: int = 2) -> TestPki:
    """A test CA and a server certificate (SAN ``localhost``, ``127.0.0.1``), EC P-256
    (``servicekit.pki``, about 15 ms). A CA already in ``directory`` is reused (a broker
    restarted on its workdir keeps its CA); the server certificate is made anew.

    Never for production: the CA key sits beside the certificates.
    """
    try:
        from servicekit.pki import CertificateAuthority, load_ca
    except ImportError as exc:  # pragma: no cover - a server dependency
        raise ServiceError("a TLS devstack needs `pip install cryptography`") from exc

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(UTC)
    if (directory / "ca.pem").exists():
        ca = load_ca(directory)
    else:
        ca = CertificateAuthority.create(
            directory, now=now, days=days, common_name=f"wardwatch test CA {secrets.token_hex(4)}"
        )
    pki = TestPki(ca.cert_file, ca.key_file, directory / "server.pem", directory / "server.key")
    ca.write_pair(
        pki.server_cert,
        pki.server_key,
        ca.server(["localhost", "127.0.0.1"], now=now, days=days),
        replace=True,
    )
    return pki


# -- broker: limits -------------------------------------------------------------------------------
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """The broker's size and queue limits: the same lines in every shipped config (the devstack
    here and ``deploy/mosquitto/mosquitto.conf``; a test keeps them equal).

    Sizing (measured with ``wardwire.models``, JSON as the edge seals it): a maximal legitimate
    ``ObservationBatch`` (5,000 observations with every field at its longest, ASCII reasons) is
    2.84 MB; with 200-character reasons of 4-byte characters 5.84 MB (control characters are
    refused); what the edge
    agent can actually seal (at most 5,000 rows, at most 100 waveform blocks of one 4096-byte
    serial read, about 820 8-bit pleth samples each) at most 3.31 MB; a typical 500-observation
    batch 128 kB. The model's maximal waveform batch (100 blocks x 10,000 full-precision
    samples) is 25.0 MB: one million samples in one message, which no driver produces; it is
    refused. 8 MiB covers every observation batch the model allows.
    """

    #: payload bytes; a larger PUBLISH is dropped (v5: PUBACK 0x95, which paho treats as a
    #: protocol error and disconnects; v3.1.1: PUBACK success and the message silently dropped)
    message_size_limit: int = 8 * MiB
    #: whole packet; a larger one disconnects the client before the broker reads (buffers) it
    max_packet_size: int = 8 * MiB + 64 * KiB
    #: per client, above the in-flight window; whichever bound is reached first drops
    #: ("Outgoing messages are being dropped for client …" in the broker log)
    max_queued_messages: int = 1_000_000
    max_queued_bytes: int = 1 * GiB
    max_inflight_messages: int = 1000
    max_keepalive: int = 600

    def conf(self) -> str:
        """The config lines (global options: they must come before the first ``listener``)."""
        return "".join(f"{f.name} {getattr(self, f.name)}\n" for f in fields(self))


# -- broker: identities and what each may do (dynamic-security plugin) ---------------------------
# The model (roles, ACLs, gateway scopes, the control commands) is servicekit.dynsec's, shared
# with the registry's enrolment and deploy/mosquitto/wardwatch-dynsec.sh.


def dynamic_security_plugin() -> Path:
    """The plugin's shared object (Debian: per architecture under /usr/lib)."""
    for base, pattern in (
        ("/usr/lib", "*/mosquitto_dynamic_security.so"),
        ("/usr/lib", "mosquitto_dynamic_security.so"),
        ("/usr/local/lib", "**/mosquitto_dynamic_security.so"),
    ):
        found = sorted(Path(base).glob(pattern))
        if found:
            return found[0]
    raise ServiceError("mosquitto_dynamic_security.so not found (Debian: package mosquitto)")


@dataclass
class Mosquitto:
    """A real mosquitto broker on a free loopback port.

    Authentication and authorisation are the dynamic-security plugin's: every service identity
    in ``SERVICE_ROLES`` exists from the start; gateways are added with :meth:`add_user`, each
    with its client id bound to its username and literal ACLs for its own subtree. With
    ``tls=True`` the one listener is TLS (a throwaway CA made at the first start; no plaintext
    listener at all); ``port`` is always the broker's only port.

    ``client_certs`` makes that listener mutual TLS (``require_certificate true``): a client
    without a certificate from the broker's CA (or with an expired or not-yet-valid one) fails
    the handshake. ``"password"``: the certificate *and* the dynamic-security password are
    required (the plugin still binds gateways' client ids and revokes at once); ``"identity"``:
    the certificate's CN is the username and any password is ignored
    (``use_identity_as_username``; on 2.0.11 the plugin's password check and client-id binding
    are then skipped, see docs/security.md). Clients get their certificates from
    :meth:`TestPki.client_cert` (``params()`` does it for each user).
    """

    workdir: Path
    passwords: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    tls: bool = False
    pki: TestPki | None = None
    client_certs: str = ""  # "" | "password" | "identity" (mutual TLS; implies tls)
    limits: BrokerLimits = field(default_factory=BrokerLimits)
    gateways: dict[str, GatewayScope] = field(default_factory=dict)

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the TLS listener's certificate (None without TLS)."""
        return self.pki.ca_file if self.pki else None

    @property
    def tls_port(self) -> int:
        """The TLS listener's port: the broker's only port in TLS mode, 0 without TLS."""
        return self.port if self.tls else 0

    def __post_init__(self) -> None:
        if self.client_certs not in ("", "password", "identity"):
            raise ValueError(f"client_certs {self.client_certs!r}: '', 'password' or 'identity'")
        self.tls = self.tls or bool(self.client_certs)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        for user in SERVICE_USERS:
            self.passwords.setdefault(user, secrets.token_urlsafe(12))

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def params(self, user: str, **overrides: Any) -> MqttParams:
        """Connection parameters for ``user`` (TLS with our CA when the broker is TLS-only; with
        ``client_certs``, a client certificate with CN ``user`` too)."""
        cert_file = key_file = None
        if self.client_certs:
            assert self.pki is not None, "client certificates exist once the broker started"
            cert_file, key_file = self.pki.client_cert(user)
        p = MqttParams(
            host=self.host,
            port=self.port,
            username=user,
            password=self.passwords[user],
            ca_file=self.ca_file if self.tls else None,
            cert_file=cert_file,
            key_file=key_file,
        )
        return replace(p, **overrides)

    def _dynsec_config(self) -> dict[str, object]:
        roles: list[dict[str, object]] = []
        clients: list[dict[str, object]] = []
        for user, password in self.passwords.items():
            scope = self.gateways.get(user)
            entry: dict[str, object] = {"username": user, **stored_password(password)}
            if user in SERVICE_ROLES:
                roles.append(
                    {
                        "rolename": f"service-{user}",
                        "acls": [a.as_json() for a in SERVICE_ROLES[user]],
                    }
                )
                entry["roles"] = [{"rolename": f"service-{user}"}]
            elif scope is not None:
                roles.append({"rolename": scope.role, "acls": [a.as_json() for a in scope.acls()]})
                entry["roles"] = [{"rolename": scope.role}]
                entry["clientid"] = scope.gateway
            clients.append(entry)
        return {"clients": clients, "roles": roles, "defaultACLAccess": DEFAULT_ACL_ACCESS}

    def conf(self) -> str:
        """The broker's config file (written into ``workdir``)."""
        conf = f"""\
user root
per_listener_settings false
allow_anonymous false
plugin {dynamic_security_plugin()}
plugin_opt_config_file {self.workdir / "dynamic-security.json"}
persistence true
persistence_location {self.workdir / "data"}/
persistence_file mosquitto.db
autosave_interval 1
{self.limits.conf()}log_dest file {self.workdir / "mosquitto.log"}
log_type error
log_type warning
log_type notice
connection_messages false
listener {self.port} 127.0.0.1
"""
        if self.tls:
            assert self.pki is not None
            conf += f"""\
cafile {self.pki.ca_file}
certfile {self.pki.server_cert}
keyfile {self.pki.server_key}
tls_version tlsv1.2
"""
        if self.client_certs:
            conf += "require_certificate true\n"
        if self.client_certs == "identity":
            conf += "use_identity_as_username true\n"
        return conf

    def _write_files(self) -> None:
        ds = self.workdir / "dynamic-security.json"
        ds.write_text(json.dumps(self._dynsec_config(), indent=1), encoding="utf-8")
        ds.chmod(0o600)
        (self.workdir / "mosquitto.conf").write_text(self.conf(), encoding="utf-8")

    def start(self, deadline_s: float = 15.0) -> None:
        """Start (or restart on the same port) and wait until an MQTT CONNACK succeeds."""
        require_binaries("mosquitto")
        if self.tls and self.pki is None:
            self.pki = make_test_pki(self.workdir / "tls")
        for _ in range(5):
            if not self.port:
                self.port = free_port()
            self._write_files()
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.workdir / "mosquitto.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_ready(deadline_s):
                return
            _stop_process(self.proc, signal.SIGKILL)
            self.port = free_port()
        log = (self.workdir / "mosquitto.log").read_text(errors="replace")[-2000:]
        raise ServiceError(f"mosquitto did not become ready; log tail:\n{log}")

    def _wait_ready(self, deadline_s: float) -> bool:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            assert self.proc is not None
            if not _alive(self.proc):
                return False
            if self.try_connect("probe", self.passwords["probe"], timeout=1.0):
                return True
            time.sleep(0.02)  # poll interval of a readiness probe, not test synchronisation
        return False

    def try_connect(
        self, user: str, password: str, timeout: float = 2.0, *, client_id: str | None = None
    ) -> bool:
        """True when ``user`` gets a successful CONNACK within ``timeout`` (over TLS, verifying
        the server against our CA, when the broker is TLS-only)."""
        done = threading.Event()
        ok: list[bool] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(user, password)
        if self.tls:
            assert self.pki is not None
            cert = self.pki.client_cert(user) if self.client_certs else (None, None)
            client.tls_set(
                ca_certs=str(self.pki.ca_file),
                certfile=str(cert[0]) if cert[0] else None,
                keyfile=str(cert[1]) if cert[1] else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )

        def on_connect(c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
            ok.append(not getattr(rc, "is_failure", True))
            done.set()

        client.on_connect = on_connect
        client.connect_timeout = timeout
        try:
            client.connect(self.host, self.port, keepalive=10)
        except OSError:
            return False
        client.loop_start()
        try:
            done.wait(timeout)
        finally:
            client.disconnect()
            client.loop_stop()
        return bool(ok and ok[0])

    def control(self, *commands: dict[str, Any], timeout: float = 10.0) -> list[dict[str, Any]]:
        """Run dynamic-security commands on the running broker (as ``provisioner``, over the
        ``$CONTROL`` topic: the plugin does not re-read its file on SIGHUP). Returns one
        response per command, in order (an ``error`` key on failure)."""
        cmds = [dict(c, correlationData=secrets.token_hex(8)) for c in commands]
        want = [str(c["correlationData"]) for c in cmds]
        got: dict[str, dict[str, Any]] = {}
        cond = threading.Condition()
        p = self.params(PROVISIONER, session_expiry_s=0)

        def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
            with cond:
                for r in json.loads(m.payload).get("responses", []):
                    got[str(r.get("correlationData"))] = r
                cond.notify_all()

        session = MqttSession(
            p,
            f"{PROVISIONER}-{secrets.token_hex(4)}",
            subscriptions=[(RESPONSE_TOPIC, 1)],
            on_message=on_message,
        )
        try:
            session.start(timeout)
            if not session.subscribed.wait(timeout):
                raise ServiceError(
                    "no SUBACK granting the dynamic-security response topic "
                    f"(refused: {session.refused_filters})"
                )
            session.publish(CONTROL_TOPIC, json.dumps({"commands": cmds}), qos=1)
            with cond:
                if not cond.wait_for(lambda: all(w in got for w in want), timeout):
                    raise ServiceError(f"no dynamic-security response within {timeout} s")
        finally:
            session.stop()
        return [got[w] for w in want]

    def add_user(
        self,
        user: str,
        password: str | None = None,
        *,
        site: str,
        unit: str,
        root: str = topics.ROOT,
    ) -> str:
        """Add (or change) a gateway: username = client id = ``user``, allowed to publish only
        below ``{root}/gw/{site}/{unit}/{user}/``. Applied to a running broker at once."""
        scope = GatewayScope(user, site, unit, root)
        password = password or secrets.token_urlsafe(12)
        self.passwords[user] = password
        self.gateways[user] = scope
        if self.proc is not None and _alive(self.proc):
            commands = gateway_upsert(scope, password)
            try:
                check(commands, self.control(*commands), tolerate=upsert_tolerates())
            except DynsecError as exc:
                raise ServiceError(f"broker did not accept gateway {user!r}: {exc}") from exc
        return password

    def stop(self) -> None:
        """Orderly stop (SIGTERM): mosquitto writes its persistence file."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM)

    def kill(self) -> None:
        """Crash the broker (SIGKILL)."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGKILL)


@dataclass
class Influx:
    """A real influxd (1.x HTTP API) with auth on, on free loopback ports."""

    workdir: Path
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    writer_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    reader_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    port: int = 0
    rpc_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _bootstrapped: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_conf(self) -> None:
        d = self.workdir
        conf = f"""\
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  index-version = "inmem"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = true
  log-enabled = false
  pprof-enabled = false
  max-body-size = 25000000
[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "1s"
[logging]
  level = "warn"
  suppress-logo = true
"""
        (d / "influxdb.conf").write_text(conf, encoding="utf-8")

    def start(self, deadline_s: float = 20.0) -> None:
        """Start (or restart on the same ports) and wait for /ping; bootstrap users once."""
        require_binaries("influxd")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            if not self.port or attempt > 0:
                self.port, self.rpc_port = free_port(), free_port()
            self._write_conf()
            log = open(self.workdir / "influxd.log", "ab")  # noqa: SIM115 - owned by the child
            self.proc = subprocess.Popen(
                ["influxd", "run", "-config", str(self.workdir / "influxdb.conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            log.close()
            if self._wait_ready(deadline_s):
                if not self._bootstrapped:
                    self._bootstrap()
                return
            _stop_process(self.proc, signal.SIGKILL)
        raise ServiceError("influxd did not become ready; see " + str(self.workdir / "influxd.log"))

    def _wait_ready(self, deadline_s: float) -> bool:
        end = time.monotonic() + deadline_s
        with httpx.Client(timeout=1.0) as http:
            while time.monotonic() < end:
                assert self.proc is not None
                if not _alive(self.proc):
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.url}/ping").status_code == 204:
                        return True
                time.sleep(0.02)  # readiness poll interval
        return False

    def _bootstrap(self) -> None:
        self.query(
            f"CREATE USER admin WITH PASSWORD '{self.admin_password}' WITH ALL PRIVILEGES",
            auth=None,
        )
        self.query(f"CREATE USER ingest WITH PASSWORD '{self.writer_password}'")
        self.query(f"CREATE USER reader WITH PASSWORD '{self.reader_password}'")
        self._bootstrapped = True

    def query(
        self, q: str, *, db: str | None = None, auth: tuple[str, str] | bool | None = True
    ) -> dict[str, object]:
        """Run InfluxQL via POST /query (``servicekit.influx.query``) as admin, or as ``auth``
        (``None``: no credentials, for the bootstrap). Raises ``ServiceError``."""
        from servicekit.influx import InfluxError, InfluxTarget
        from servicekit.influx import query as influx_query

        creds = ("admin", self.admin_password) if auth is True else auth or None
        target = InfluxTarget(self.url, db or "", *(creds or (None, None)))
        try:
            with httpx.Client(timeout=30) as http:
                return {"results": influx_query(http, target, q, write=True)}
        except (InfluxError, httpx.HTTPError) as exc:
            raise ServiceError(f"influx query {q[:80]!r} failed: {exc}") from exc

    def create_database(self, name: str) -> None:
        """Create a database (as admin) and grant the service users their privileges on it."""
        self.query(f'CREATE DATABASE "{name}"')
        self.grant_service_users(name)

    def grant_service_users(self, name: str) -> None:
        """``ingest``: READ and WRITE on ``name`` (it writes, and re-runs the 1-minute
        aggregation with ``SELECT … INTO`` for late data); ``reader``: READ. Never admin.

        InfluxDB 1.x keeps one privilege per user and database and a GRANT *replaces* it:
        ``GRANT READ`` then ``GRANT WRITE`` leaves WRITE only (measured on 1.6.7), so READ and
        WRITE together is ``GRANT ALL ON "<db>"`` (database-scoped; SHOW GRANTS prints it as
        ``ALL PRIVILEGES``). The server-wide admin privilege is ``GRANT ALL PRIVILEGES TO``,
        which no service user gets."""
        self.query(f'GRANT ALL ON "{name}" TO "ingest"')
        self.query(f'GRANT READ ON "{name}" TO "reader"')

    def drop_database(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"')

    def count(self, db: str, measurement: str = "obs", where: str = "") -> int:
        """Number of points in a measurement (0 if it does not exist yet)."""
        clause = f" WHERE {where}" if where else ""
        res = self.query(f'SELECT count("value") FROM "{measurement}"{clause}', db=db)
        series = res["results"][0].get("series")  # type: ignore[index]
        if not series:
            return 0
        return int(series[0]["values"][0][1])

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM)

    def kill(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGKILL)


@dataclass
class Stack:
    """Both services, plus the env a wardwatch service process needs to reach them."""

    broker: Mosquitto
    influx: Influx

    def env(self, mqtt_user: str, db: str = "wardwatch") -> dict[str, str]:
        """Environment variables for a service process (read by the services' settings)."""
        tls = {"WM_MQTT_CA_FILE": str(self.broker.ca_file)} if self.broker.tls else {}
        if self.broker.client_certs:
            p = self.broker.params(mqtt_user)
            tls |= {"WM_MQTT_CERT_FILE": str(p.cert_file), "WM_MQTT_KEY_FILE": str(p.key_file)}
        return {
            "WM_MQTT_HOST": self.broker.host,
            "WM_MQTT_PORT": str(self.broker.port),
            **tls,
            "WM_MQTT_USERNAME": mqtt_user,
            "WM_MQTT_PASSWORD": self.broker.passwords[mqtt_user],
            "WM_INFLUX_URL": self.influx.url,
            "WM_INFLUX_DB": db,
            "WM_INFLUX_USERNAME": "ingest" if mqtt_user == "ingest" else "reader",
            "WM_INFLUX_PASSWORD": (
                self.influx.writer_password
                if mqtt_user == "ingest"
                else self.influx.reader_password
            ),
        }

    def stop(self) -> None:
        self.broker.stop()
        self.influx.stop()


@contextlib.contextmanager
def running_stack(
    workdir: Path, *, tls: bool = False, client_certs: str = ""
) -> Iterator[Stack]:
    """Start mosquitto (TLS-only with ``tls``, mutual TLS with ``client_certs``) + influxd
    under ``workdir``; stop both on exit."""
    broker = Mosquitto(workdir / "mosquitto", tls=tls, client_certs=client_certs)
    influx = Influx(workdir / "influxdb")
    stack = Stack(broker, influx)
    try:
        broker.start()
        influx.start()
        yield stack
    finally:
        stack.stop()


def write_env_file(stack: Stack, path: Path, extra: Mapping[str, str] | None = None) -> None:
    """Write every runtime fact (ports, credentials) to one env file for manual work."""
    env = {
        "WM_MQTT_HOST": stack.broker.host,
        "WM_MQTT_PORT": str(stack.broker.port),
        **({"WM_MQTT_CA_FILE": str(stack.broker.ca_file)} if stack.broker.tls else {}),
        "WM_INFLUX_URL": stack.influx.url,
        "WM_INFLUX_ADMIN_PASSWORD": stack.influx.admin_password,
        "WM_INFLUX_WRITER_PASSWORD": stack.influx.writer_password,
        "WM_INFLUX_READER_PASSWORD": stack.influx.reader_password,
    }
    env.update({f"WM_MQTT_PASSWORD_{u.upper()}": p for u, p in stack.broker.passwords.items()})
    env.update(extra or {})
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    path.chmod(0o600)


def main() -> None:
    """``python -m wardwatch.devstack [DIR]``: run both services until Ctrl-C (make services)."""
    import sys

    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else ".run/services").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    with running_stack(workdir) as stack:
        stack.influx.create_database("wardwatch")
        env_path = workdir / "services.env"
        write_env_file(stack, env_path)
        block_stop_signals()  # before the announcement: a stop right after it is not lost
        print(
            json.dumps(
                {
                    "mqtt_port": stack.broker.port,
                    "influx_url": stack.influx.url,
                    "env_file": str(env_path),
                }
            )
        )
        print("services running; Ctrl-C to stop", flush=True)
        wait_for_stop_signal()


if __name__ == "__main__":
    main()

"""Gateway enrolment through the registry (``wardwatch registry gateway enroll|rotate|revoke|
reconcile``) on a real mosquitto (dynamic security, as the devstack and deploy/ configure it),
a real registry database, a real edge agent, ingest and InfluxDB.

Authorisation is checked by delivery, never by the PUBACK alone: an admin watcher subscribed to
everything sees a marker published after each attack, and nothing refused may arrive before it
(``arrived_before``); a positive control in each test proves delivery works.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from device_sims.monitor import SimulatedMonitor
from device_sims.scenarios import Scenario
from edge_agent.config import load_edge_config
from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from registry.cli import app
from servicekit import dynsec
from servicekit.mqtt import BrokerRefused, MqttError, MqttParams, connect_blocking, make_client
from tests.helpers.mqtt import collector, params
from tests.helpers.wait import wait_until
from tests.integration.test_broker_security import Client, arrived_before, not_authorized
from wardwatch.devstack import Mosquitto, Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext

pytestmark = pytest.mark.integration


@dataclass
class Registry:
    """The registry CLI, in process, on a database of this test's own, reaching ``broker`` as
    the registry identity through ``WM_*`` (as an operator's shell would)."""

    db: str
    env: dict[str, str]
    runner: CliRunner
    broker: Mosquitto

    def __call__(self, *args: str, code: int = 0) -> str:
        r = self.runner.invoke(app, [*args, "--db", self.db], env=self.env,
                               catch_exceptions=False)
        assert r.exit_code == code, (args, r.exit_code, r.stdout, r.stderr)
        return r.stdout + r.stderr if code else r.stdout


def make_registry(broker: Mosquitto, tmp: Path, root: str, site: str = "s1") -> Registry:
    pw_file = tmp / "registry.pass"
    pw_file.write_text(broker.passwords["registry"] + "\n")
    pw_file.chmod(0o600)
    env = {"WM_MQTT_HOST": broker.host, "WM_MQTT_PORT": str(broker.port),
           "WM_MQTT_USERNAME": "registry", "WM_MQTT_PASSWORD_FILE": str(pw_file),
           "WM_MQTT_PASSWORD": "", "WM_TOPIC_ROOT": root, "WM_USER": "it-admin"}
    reg = Registry(f"sqlite:///{tmp / 'registry.db'}", env, CliRunner(), broker)
    reg("site", "add", site)
    reg("unit", "add", f"{site}/u1", "--time-zone", "UTC", "--generation", "test")
    reg("unit", "add", f"{site}/u2", "--time-zone", "UTC", "--generation", "test")
    reg("bed", "add", f"{site}/u1/b0")
    return reg


@pytest.fixture
def registry(stack: Stack, tmp_path: Path, topic_root: str) -> Registry:
    return make_registry(stack.broker, tmp_path, topic_root)


def enrolled(reg: Registry, gw: str, *extra: str) -> dict[str, Any]:
    out = json.loads(reg("gateway", "enroll", gw, "--unit", "s1/u1", "--json", *extra))
    reg.broker.passwords[gw] = out["broker"]["password"]  # for the test's own connections
    return out


def test_enroll_gives_a_confined_bound_identity_and_a_config_the_edge_agent_loads(
    registry: Registry, stack: Stack, topic_root: str, tmp_path: Path
) -> None:
    gw, other = f"gw-{uuid.uuid4().hex[:6]}", f"gw-{uuid.uuid4().hex[:6]}"
    out_file = tmp_path / "gw.toml"
    note = registry("gateway", "enroll", gw, "--unit", "u1", "--site", "s1", "--bed", "b0",
                    "--out", str(out_file), "--outbox", str(tmp_path / "ob.db"))
    assert f"config written to {out_file} (0600)" in note
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    cfg = load_edge_config(out_file)  # the printed config, as is
    password = cfg.broker.resolved_password()
    assert password and len(password) >= 40 and password not in note
    assert (cfg.gateway.id, cfg.gateway.site, cfg.gateway.unit) == (gw, "s1", "u1")
    assert cfg.broker.topic_root == topic_root and cfg.broker.port == stack.broker.port
    assert json.loads(registry("bed", "show", "s1/u1/b0", "--json"))["gateway"] == gw
    stack.broker.passwords[gw] = password
    enrolled(registry, other)  # a neighbour in the same unit

    watch = collector(stack.broker, "admin", ["#"])
    c = Client.open(stack.broker.params(gw), gw)
    try:
        own = topics.gateway_obs("s1", "u1", gw, root=topic_root)
        assert not c.publish(own, b"own").is_failure
        c.subscribe("#")  # the SUBACK is no read check: delivery is (below)
        forbidden = [
            topics.gateway_obs("s1", "u1", other, root=topic_root),  # another gateway
            topics.gateway_obs("s2", "u1", gw, root=topic_root),  # another site
            topics.gateway_obs("s1", "u2", gw, root=topic_root),  # another unit
            topics.gateway_obs("s1", "u1", gw, root="xx/v1"),  # another root
            topics.ack_commands("s1", "u1", root=topic_root),  # a command
            topics.alert_events("s1", "u1", root=topic_root),  # an alert
            topics.charting("s1", "u1", root=topic_root),  # a charted set
            topics.context_changed("s1", "u1", root=topic_root),  # a registry event
            dynsec.CONTROL_TOPIC,  # the broker's own admin
        ]
        for t in forbidden:
            assert not_authorized(c.publish(t, b"forbidden " + t.encode())), t
        # what the gateway subscribed to (#) delivers it nothing, even what it published
        watch_admin = Client.open(stack.broker.params("admin"), f"adm-{uuid.uuid4().hex[:6]}")
        watch_admin.publish(topics.score("s1", "u1", "b0", root=topic_root), b"score")
        assert not c.publish(own, b"marker").is_failure
        got = arrived_before(watch, b"marker")
        ours = [p for t, p in got if t.startswith((topic_root, "xx/", "$"))]
        assert ours == [b"own", b"score"]
        watch_admin.close()
        with c.cond:
            assert c.messages == []
        # the client id is bound: the gateway's credentials with another id are refused, and
        # another identity cannot take the gateway's client id
        p = stack.broker.params(gw, session_expiry_s=0)
        with pytest.raises(BrokerRefused):
            connect_blocking(make_client(p, client_id=f"{gw}-2"), p, timeout=5)
        q = stack.broker.params(other, session_expiry_s=0)
        with pytest.raises(BrokerRefused):
            connect_blocking(make_client(q, client_id=gw), q, timeout=5)
        anon = MqttParams(host=stack.broker.host, port=stack.broker.port, session_expiry_s=0)
        with pytest.raises(MqttError, match="refused"):
            connect_blocking(make_client(anon, client_id=gw), anon, timeout=5)
        assert c.client.is_connected()
    finally:
        c.close()
        watch.close()


def test_revoke_kicks_a_connected_gateway_and_it_cannot_come_back(
    registry: Registry, stack: Stack
) -> None:
    gw = f"gw-{uuid.uuid4().hex[:6]}"
    enrolled(registry, gw)
    c = Client.open(stack.broker.params(gw), gw)
    try:
        assert "revoked gateway" in registry("gateway", "revoke", gw)
        with c.cond:
            assert c.cond.wait_for(lambda: c.disconnects, 10), "not disconnected"
        assert not stack.broker.try_connect(gw, stack.broker.passwords[gw], client_id=gw)
        # revoking again is harmless and says so; rotate refuses a revoked gateway
        assert "already revoked" in registry("gateway", "revoke", gw)
        assert "no broker identity" in registry("gateway", "rotate", gw, code=2)
        # enrol again: a new password works, the old one stays refused
        new = enrolled(registry, gw)["broker"]["password"]
        assert stack.broker.try_connect(gw, new, client_id=gw)
    finally:
        c.close()


def test_refusals_are_clear_and_change_nothing(registry: Registry, stack: Stack) -> None:
    gw = f"gw-{uuid.uuid4().hex[:6]}"
    assert "unknown unit" in registry("gateway", "enroll", gw, "--unit", "s1/nope", code=2)
    assert "gateway 'b d' is not an id" in registry("gateway", "enroll", "b d", "--unit",
                                                    "s1/u1", code=2)
    assert "service identity" in registry("gateway", "enroll", "ingest", "--unit", "s1/u1",
                                          code=2)
    assert "unknown gateway" in registry("gateway", "revoke", gw, code=2)
    # an --out that cannot be written is refused before any credential exists
    d = Path(registry.env["WM_MQTT_PASSWORD_FILE"]).parent
    assert "is a directory" in registry("gateway", "enroll", gw, "--unit", "s1/u1", "--out",
                                        str(d), code=2)
    assert "no directory" in registry("gateway", "enroll", gw, "--unit", "s1/u1", "--out",
                                      str(d / "nope" / "gw.toml"), code=2)
    assert "outbox_path" in registry("gateway", "enroll", gw, "--unit", "s1/u1", "--outbox",
                                     "/tmp/a\nb", code=2)
    assert "unknown gateway" in registry("gateway", "show", gw, code=2)
    enrolled(registry, gw)
    assert "serves s1/u1, not s1/u2" in registry("gateway", "enroll", gw, "--unit", "s1/u2",
                                                 code=2)
    # a registry password file others may read is refused; a wrong password is exit 1 and
    # writes nothing
    gw2 = f"gw-{uuid.uuid4().hex[:6]}"
    good = registry.env["WM_MQTT_PASSWORD_FILE"]
    bad = Path(good).with_name("wrong.pass")
    bad.write_text("wrong")
    bad.chmod(0o644)
    registry.env["WM_MQTT_PASSWORD_FILE"] = str(bad)
    assert "lets others read it" in registry("gateway", "enroll", gw2, "--unit", "s1/u1",
                                             code=2)
    bad.chmod(0o600)
    assert "cannot connect to the broker" in registry("gateway", "enroll", gw2, "--unit",
                                                      "s1/u1", code=1)
    registry.env["WM_MQTT_PASSWORD_FILE"] = good
    assert "unknown gateway" in registry("gateway", "show", gw2, code=2)
    # what a crash between the database and the broker leaves (the row, no identity):
    # enrolling again converges
    registry("gateway", "add", "s1/u1", gw2)
    assert not stack.broker.try_connect(gw2, "anything", client_id=gw2)
    enrolled(registry, gw2)
    assert stack.broker.try_connect(gw2, stack.broker.passwords[gw2], client_id=gw2)


def test_reconcile_finds_and_removes_what_the_registry_does_not_back(
    private_broker: Mosquitto, tmp_path: Path
) -> None:
    root = f"r{uuid.uuid4().hex[:6]}/v1"
    reg = make_registry(private_broker, tmp_path, root)
    enrolled(reg, "gw-keep")
    enrolled(reg, "gw-retired")
    reg("gateway", "retire", "gw-retired", "--no-revoke")  # the record only: an orphan left
    # retired the usual way, a gateway's identity goes with it
    enrolled(reg, "gw-gone")
    assert "revoked gateway gw-gone's broker identity" in reg("gateway", "retire", "gw-gone")
    assert not private_broker.try_connect("gw-gone", private_broker.passwords["gw-gone"],
                                          client_id="gw-gone")
    private_broker.add_user("gw-orphan", site="s1", unit="u1", root=root)  # by hand, unknown
    reg("gateway", "add", "s1/u1", "gw-never")  # registered, never enrolled
    report = json.loads(reg("gateway", "reconcile", "--json", code=3))
    assert {(i["gateway"], i["fixed"]) for i in report["items"]} == {
        ("gw-orphan", False), ("gw-retired", False), ("gw-never", False)}
    fixed = reg("gateway", "reconcile", "--fix", code=3)
    assert "gw-orphan: broker identity for a gateway the registry does not know (removed)" \
        in fixed
    assert "gw-never: active in the registry, no broker identity: enroll it" in fixed
    assert not private_broker.try_connect("gw-orphan", private_broker.passwords["gw-orphan"],
                                          client_id="gw-orphan")
    assert private_broker.try_connect("gw-keep", private_broker.passwords["gw-keep"],
                                      client_id="gw-keep")
    enrolled(reg, "gw-never")
    assert "in step" in reg("gateway", "reconcile")


# -- data through the enrolled identity, and a rotation that loses nothing ----------------------
@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[dict[str, SimulatedMonitor]]:
    mons = {
        f"d{i}": SimulatedMonitor(f"d{i}", Scenario("stable", seed=i), tmp_path / "tty" / f"d{i}",
                                  period_s=0.01, max_frames=50)
        for i in range(2)
    }
    for m in mons.values():
        m.open()
    yield mons
    for m in mons.values():
        m.close()


def test_an_enrolled_gateways_data_is_stored_and_rotation_loses_nothing(
    registry: Registry, stack: Stack, topic_root: str, influx_db: str, tmp_path: Path,
    monitors: dict[str, SimulatedMonitor],
) -> None:
    """The edge agent runs as a process on the config the registry printed (its devices from
    the registry's assignments); its readings are stored by ingest. A rotation refuses the
    running agent, which keeps reading into its outbox; it is killed (-9) and started again on
    the rotated config: every reading arrives, once."""
    gw = f"gw-{uuid.uuid4().hex[:6]}"
    for i, (dev, mon) in enumerate(monitors.items()):
        registry("device", "add", dev, "--manufacturer", "WW", "--model", "M1", "--serial",
                 f"SN{uuid.uuid4().hex[:8]}", "--driver", "wwmon", "--port", str(mon.link))
        registry("bed", "add", f"s1/u1/b{i + 10}")
    outbox = tmp_path / "outbox.db"
    enrolled(registry, gw, "--outbox", str(outbox))  # registers the gateway
    for i, dev in enumerate(monitors):
        registry("device", "assign", dev, f"s1/u1/b{i + 10}", "--gateway", gw)
    cfg_v1, cfg_v2 = tmp_path / "v1.toml", tmp_path / "v2.toml"
    registry("gateway", "rotate", gw, "--outbox", str(outbox), "--out", str(cfg_v1))
    assert [d.port for d in load_edge_config(cfg_v1).devices] == [
        str(m.link) for m in monitors.values()]
    ward = UnitContext(site="s1", unit="u1", gateways=[GatewayContext(id=gw)],
                       generation="test",
                       beds=[BedContext(id=f"b{i}", gateway=gw, devices=[d])
                             for i, d in enumerate(monitors)])
    ing = IngestService(params(stack.broker, "ingest"), WardIndex(ward), IngestOptions(
        influx_url=stack.influx.url, influx_db=influx_db, influx_user="ingest",
        influx_password=stack.influx.writer_password, topic_root=topic_root,
        worker_id=f"ingest-{gw}", linger_s=0.05))
    t = threading.Thread(target=ing.run, daemon=True)
    t.start()
    assert ing.ready.wait(10)
    status = collector(stack.broker, "admin", [
        topics.device_status("s1", "u1", gw, "+", root=topic_root)])
    agent = edge_process(cfg_v1, tmp_path / "edge-1.log")
    try:
        def connected(msgs: list[tuple[str, bytes]]) -> bool:
            last = {json.loads(p)["device_id"]: json.loads(p)["state"] for _, p in msgs if p}
            return all(last.get(d) == "connected" for d in monitors)

        assert status.wait_for(connected, timeout=30), "devices not connected"
        first, second = monitors.values()
        first.start()
        assert first.done.wait(30)
        wait_until(lambda: stack.influx.count(influx_db) >= first.emitted, timeout=60)
        # rotate while connected: the running agent's password no longer works
        registry("gateway", "rotate", gw, "--outbox", str(outbox), "--out", str(cfg_v2))
        second.start()  # read while refused: kept in the outbox
        assert second.done.wait(30)
        total = first.emitted + second.emitted
        wait_until(lambda: outbox_rows(outbox) >= total, timeout=30)
        assert stack.influx.count(influx_db) == first.emitted
        agent.kill()  # -9: no drain, no goodbye
        agent.wait(10)
        assert load_edge_config(cfg_v2).broker.password != load_edge_config(
            cfg_v1).broker.password
        agent = edge_process(cfg_v2, tmp_path / "edge-2.log")
        wait_until(lambda: stack.influx.count(influx_db) >= total, timeout=60)
        assert stack.influx.count(influx_db) == total  # every reading, once
    finally:
        agent.kill()
        agent.wait(10)
        status.close()
        ing.stop()
        t.join(30)
    assert ing.counters.dead_lettered == 0
    assert ing.seq.gaps_total == 0


def edge_process(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    """``wardwatch edge run --config CFG`` as the operator runs it."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=Path(__file__).resolve().parents[2])


def outbox_rows(path: Path) -> int:
    """Readings the agent has put in its outbox so far (its rowid sequence), read-only."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'pending'").fetchone()
    return int(row[0]) if row else 0


def test_enrolment_with_a_client_certificate_on_a_mutual_tls_broker(tmp_path: Path) -> None:
    """``--cert``: a client certificate from the registry's CA besides the password; the
    broker's mutual-TLS listener wants both, so the plugin still binds the client id and a
    revocation still refuses (the certificate alone gets nothing)."""
    broker = Mosquitto(tmp_path / "mosquitto", client_certs="password")
    broker.start()
    try:
        assert broker.pki is not None
        root = f"c{uuid.uuid4().hex[:6]}/v1"
        reg = make_registry(broker, tmp_path, root)
        ca_dir = broker.pki.ca_file.parent
        reg.env.update({"WM_MQTT_CA_FILE": str(broker.pki.ca_file)})
        reg.env.update({k: str(v) for k, v in zip(
            ("WM_MQTT_CERT_FILE", "WM_MQTT_KEY_FILE"), broker.pki.client_cert("registry"),
            strict=True)})
        assert "--cert writes the gateway's private key" in reg(
            "gateway", "enroll", "gw-c1", "--unit", "s1/u1", "--cert", "--ca-dir", str(ca_dir),
            code=2)
        out = tmp_path / "gw" / "gw-c1.toml"
        out.parent.mkdir(mode=0o700)
        note = reg("gateway", "enroll", "gw-c1", "--unit", "s1/u1", "--cert", "--ca-dir",
                   str(ca_dir), "--out", str(out))
        assert "client certificate" in note
        cfg = load_edge_config(out)
        tls = cfg.broker.tls
        assert tls is not None and tls.cert_file is not None and tls.key_file is not None
        assert stat.S_IMODE(tls.key_file.stat().st_mode) == 0o600
        p = MqttParams(host=broker.host, port=broker.port, username="gw-c1",
                       password=cfg.broker.resolved_password(), ca_file=tls.ca_file,
                       cert_file=tls.cert_file, key_file=tls.key_file, session_expiry_s=0)
        c = Client.open(p, "gw-c1")
        try:
            assert not c.publish(topics.gateway_obs("s1", "u1", "gw-c1", root=root),
                                 b"x").is_failure
            assert not_authorized(c.publish(topics.gateway_obs("s1", "u1", "gw-c2", root=root),
                                            b"x"))
        finally:
            c.close()
        with pytest.raises(MqttError):  # another client id, the same certificate and password
            connect_blocking(make_client(p, client_id="gw-c1-b"), p, timeout=5)
        reg("gateway", "revoke", "gw-c1")
        with pytest.raises(MqttError):  # the certificate is still valid; the identity is gone
            connect_blocking(make_client(p, client_id="gw-c1"), p, timeout=5)
    finally:
        broker.stop()


def test_service_identities_read_and_write_only_what_they_need(
    stack: Stack, topic_root: str
) -> None:
    """The console reads the gateways, the alert engine and the registry's events (its board),
    nothing else, and publishes nothing; the registry reads no data at all and publishes its
    change events and, for nurses, alert commands and charted sets (not the legacy ack topic)."""
    r = topic_root
    every = {
        "gw": topics.gateway_obs("s1", "u1", "gw-x", root=r),
        "alerting": topics.alert_events("s1", "u1", root=r),
        "registry": topics.context_changed("s1", "u1", root=r),
        "cmd": topics.ack_commands("s1", "u1", root=r),
        "chart": topics.charting("s1", "u1", root=r),
        "tech": topics.technical("s1", "u1", "ingest", root=r),
        "dlq": topics.dead_letter("ingest", root=r),
    }
    admin = Client.open(stack.broker.params("admin"), f"adm-{uuid.uuid4().hex[:6]}")
    readers = {u: Client.open(stack.broker.params(u), f"{u}-{uuid.uuid4().hex[:6]}")
               for u in ("console", "registry")}
    try:
        for c in readers.values():
            c.subscribe(f"{r}/#")  # the SUBACK is no read check: delivery is
            for t in every.values():
                c.subscribe(t)
        for name, t in every.items():
            assert not admin.publish(t, name.encode()).is_failure
        marker = topics.alert_events("s1", "u1", root=r)  # the console reads it
        assert not admin.publish(marker, b"marker").is_failure
        got = {p for _, p in arrived_before(readers["console"], b"marker")}
        assert got == {b"gw", b"alerting", b"registry"}
        reg = readers["registry"]
        assert not reg.publish(every["registry"], b"event").is_failure
        assert not reg.publish(every["chart"], b"a nurse's set").is_failure
        assert not reg.publish(topics.alert_commands("s1", "u1", root=r), b"cmd").is_failure
        for name in ("gw", "alerting", "cmd", "tech", "dlq"):
            assert not_authorized(reg.publish(every[name], b"x")), name
        for name in every:
            assert not_authorized(readers["console"].publish(every[name], b"x")), name
        with reg.cond:
            assert reg.messages == []  # it may read nothing of the data
    finally:
        admin.close()
        for c in readers.values():
            c.close()


def test_concurrent_enrolments_of_one_gateway_leave_the_last_answer_working(
    registry: Registry, stack: Stack, topic_root: str
) -> None:
    """Four requests at once (the API's thread pool): one at a time, so the password answered
    last is the one the broker holds; every earlier one is refused."""
    from registry.db import open_database
    from registry.enroll import AdminSession, BrokerTarget, EnrollRequest, enroll

    gw = f"gw-{uuid.uuid4().hex[:6]}"
    engine = open_database(registry.db)
    done: list[tuple[datetime, str]] = []  # (when it was issued, inside the lock; password)
    lock = threading.Lock()
    target = BrokerTarget(host=stack.broker.host, port=stack.broker.port, topic_root=topic_root)
    try:
        with AdminSession(stack.broker.params("registry")) as admin:
            def one() -> None:
                out = enroll(engine, admin, gw, EnrollRequest(unit="u1", site="s1"),
                             broker=target, actor="t", now=lambda: datetime.now(UTC))
                with lock:
                    done.append((out.at, out.broker.password))

            threads = [threading.Thread(target=one) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
    finally:
        engine.dispose()
    passwords = [pw for _, pw in sorted(done)]
    assert len(set(passwords)) == 4
    assert stack.broker.try_connect(gw, passwords[-1], client_id=gw)
    assert not any(stack.broker.try_connect(gw, pw, client_id=gw) for pw in passwords[:-1])

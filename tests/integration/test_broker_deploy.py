"""The shipped production broker config (``deploy/mosquitto/``) carries the devstack's limits and
identity model, and runs as shipped on real mosquitto: only its paths and port are replaced, the
identities are provisioned with the shipped script through ``mosquitto_ctrl``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from servicekit.mqtt import BrokerRefused, MqttError, MqttParams, connect_blocking, make_client
from tests.helpers.wait import wait_until
from tests.integration.test_broker_security import Client, arrived_before, not_authorized
from tests.integration.test_broker_tls import listening_ports
from wardwatch.devstack import (
    SERVICE_ROLES,
    BrokerLimits,
    Mosquitto,
    dynamic_security_plugin,
    free_port,
    make_test_pki,
)
from wardwire import topics

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
CONF = DEPLOY / "mosquitto.conf"
SCRIPT = DEPLOY / "wardwatch-dynsec.sh"


def conf_lines(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.append((key, value.strip()))
    return out


def test_every_shipped_config_carries_the_same_limits(tmp_path: Path) -> None:
    shipped = dict(conf_lines(CONF.read_text()))
    devstack = dict(conf_lines(Mosquitto(tmp_path / "m").conf()))
    for f in fields(BrokerLimits):
        expected = str(getattr(BrokerLimits(), f.name))
        assert shipped.get(f.name) == expected, f.name
        assert devstack.get(f.name) == expected, f.name


def test_the_shipped_config_has_one_tls_listener_and_no_other_way_in() -> None:
    lines = conf_lines(CONF.read_text())
    keys = [k for k, _ in lines]
    assert keys.count("listener") == 1
    after = keys[keys.index("listener") :]
    assert {"cafile", "certfile", "keyfile"} <= set(after)
    settings = dict(lines)
    assert settings["allow_anonymous"] == "false"
    assert settings["per_listener_settings"] == "false"
    assert settings["plugin"].endswith("mosquitto_dynamic_security.so")
    assert not {"password_file", "acl_file", "use_username_as_clientid"} & set(keys)


@dataclass
class DeployedBroker:
    port: int
    ca_file: Path
    dynsec_file: Path
    ctrl_config: Path
    passwords: dict[str, str]

    def provision(self, *args: str, password: str | None = None) -> None:
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.ctrl_config.parent)}
        if password is not None:
            env["WM_NEW_PASSWORD"] = password
        r = subprocess.run(
            ["sh", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr

    def params(self, user: str) -> MqttParams:
        return MqttParams(
            host="localhost",
            port=self.port,
            username=user,
            password=self.passwords[user],
            ca_file=self.ca_file,
            session_expiry_s=0,
        )


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[DeployedBroker]:
    pki = make_test_pki(tmp_path / "tls")
    data = tmp_path / "data"
    data.mkdir()
    dynsec = data / "dynamic-security.json"
    prov = uuid.uuid4().hex
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(dynsec), "provisioner", prov],
        check=True,
        capture_output=True,
    )
    port = free_port()
    replace = {
        "user": "root",  # the test's temp dir is not readable by user mosquitto
        "plugin": str(dynamic_security_plugin()),
        "plugin_opt_config_file": str(dynsec),
        "persistence_location": f"{data}/",
        "log_dest": f"file {tmp_path / 'mosquitto.log'}",
        "listener": f"{port} 127.0.0.1",
        "cafile": str(pki.ca_file),
        "certfile": str(pki.server_cert),
        "keyfile": str(pki.server_key),
    }
    out = []
    for line in CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        out.append(f"{key} {replace[key]}" if key in replace and not line.startswith("#") else line)
    (tmp_path / "mosquitto.conf").write_text("\n".join(out) + "\n")
    (tmp_path / "xdg").mkdir()
    ctrl = tmp_path / "xdg" / "mosquitto_ctrl"
    ctrl.write_text(f"-h localhost\n-p {port}\n--cafile {pki.ca_file}\n-u provisioner\n-P {prov}\n")
    ctrl.chmod(0o600)
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    b = DeployedBroker(port, pki.ca_file, dynsec, ctrl, {"provisioner": prov})

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
        p = b.params("provisioner")
        c = make_client(p, client_id=f"ready-{uuid.uuid4().hex[:6]}")
        try:
            connect_blocking(c, p, timeout=1)
        except MqttError:
            return False
        c.disconnect()
        c.loop_stop()
        return True

    try:
        wait_until(ready, timeout=15)
        assert listening_ports(proc.pid) == {port}
        yield b
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_the_shipped_config_and_script_confine_and_bind_gateways(
    deployed: DeployedBroker,
) -> None:
    b = deployed
    b.passwords.update({"ingest": uuid.uuid4().hex, "gw-d0": uuid.uuid4().hex})
    b.passwords["gw-d1"] = uuid.uuid4().hex
    b.provision("roles")
    b.provision("service", "ingest", "ingest", password=b.passwords["ingest"])
    b.provision("gateway", "gw-d0", "s1", "u1", password=b.passwords["gw-d0"])
    b.provision("gateway", "gw-d1", "s1", "u1", password=b.passwords["gw-d1"])

    # the roles the script made are the devstack's, with the production root
    saved = json.loads(b.dynsec_file.read_text())
    roles = {r["rolename"]: r.get("acls", []) for r in saved["roles"]}
    for name in ("ingest", "alerting", "console", "registry"):
        got = {(a["acltype"], a["topic"]) for a in roles[name]}
        want = {(a.acltype, a.topic.replace("+/v1/", "wm/v1/")) for a in SERVICE_ROLES[name]}
        assert got == want, name
    assert {(a["acltype"], a["topic"]) for a in roles["gateway-gw-d0"]} == {
        ("publishClientSend", "wm/v1/gw/s1/u1/gw-d0/#")
    }

    watch = Client.open(b.params("ingest"), f"ingest-{uuid.uuid4().hex[:4]}")
    assert not watch.subscribe("wm/v1/gw/#").is_failure
    gw = Client.open(b.params("gw-d0"), "gw-d0")
    try:
        own = topics.gateway_obs("s1", "u1", "gw-d0")
        assert not gw.publish(own, b"own").is_failure
        for t in (
            topics.gateway_obs("othersite", "u1", "gw-d0"),
            topics.gateway_obs("s1", "otherunit", "gw-d0"),
            topics.gateway_obs("s1", "u1", "gw-d0", root="xx/v1"),
            topics.gateway_obs("s1", "u1", "gw-d1"),
        ):
            assert not_authorized(gw.publish(t, b"forbidden")), t
        # gw-d1's credentials cannot take gw-d0's client id (gw-d0 stays connected)
        p = b.params("gw-d1")
        with pytest.raises(BrokerRefused):
            connect_blocking(make_client(p, client_id="gw-d0"), p, timeout=5)
        assert gw.client.is_connected()
        # a message over the size limit reaches no one
        big = Client.open(b.params("gw-d1"), "gw-d1")
        big.client.publish(
            topics.gateway_obs("s1", "u1", "gw-d1"),
            b"x" * (BrokerLimits().message_size_limit + 1),
            qos=1,
        )
        with big.cond:
            assert big.cond.wait_for(lambda: big.disconnects, 20)
        big.client.loop_stop()
        assert not gw.publish(own, b"marker").is_failure
        assert arrived_before(watch, b"marker") == [(own, b"own")]
        # revoking a gateway disconnects it and keeps it out
        b.provision("revoke-gateway", "gw-d0")
        with gw.cond:
            assert gw.cond.wait_for(lambda: gw.disconnects, 10)
        gw.client.loop_stop()
        p = b.params("gw-d0")
        with pytest.raises(BrokerRefused):
            connect_blocking(make_client(p, client_id="gw-d0"), p, timeout=5)
    finally:
        gw.client.disconnect()
        gw.client.loop_stop()
        watch.close()


def test_the_script_refuses_wildcards(deployed: DeployedBroker) -> None:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(deployed.ctrl_config.parent),
        "WM_NEW_PASSWORD": "x",
    }
    for args, extra in (
        (["gateway", "gw-x", "+", "u1"], {}),
        (["gateway", "gw-x", "s1", "#"], {}),
        (["gateway", "+", "s1", "u1"], {}),
        (["gateway", "gw-x", "s1", "u1"], {"WM_TOPIC_ROOT": "+/v1"}),
    ):
        r = subprocess.run(
            ["sh", str(SCRIPT), *args], env={**env, **extra}, capture_output=True, text=True
        )
        assert r.returncode == 2, (args, r.stderr)
    saved = json.loads(deployed.dynsec_file.read_text())
    assert [c["username"] for c in saved["clients"]] == ["provisioner"]

"""The devstack's TLS mode is TLS only (issue 9): it once kept the plaintext listener, with the
same logins, beside the TLS one. Now the broker listens on exactly one port, with TLS; plaintext
MQTT gets no CONNACK there and there is no other port to try."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicekit.mqtt import BrokerRefused, BrokerUnreachable, connect_blocking, make_client
from tests.integration.test_broker_security import Client
from wardwatch.devstack import Mosquitto
from wardwire import topics

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mosquitto", tls=True)
    b.start()
    yield b
    b.stop()


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on (its socket inodes matched in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_a_tls_broker_listens_only_with_tls(tls_broker: Mosquitto, topic_root: str) -> None:
    broker = tls_broker
    assert broker.proc is not None and broker.ca_file is not None
    assert listening_ports(broker.proc.pid) == {broker.port}
    assert broker.tls_port == broker.port
    assert "cafile" in broker.conf() and broker.conf().count("listener ") == 1

    # plaintext MQTT with valid credentials on the only port: the TLS layer reads garbage and
    # the broker closes the connection; there is never a CONNACK
    p = broker.params("admin", ca_file=None, session_expiry_s=0)
    plain = make_client(p, client_id=f"plain-{uuid.uuid4().hex[:6]}")
    with pytest.raises(BrokerUnreachable):
        connect_blocking(plain, p, timeout=5)
    # a raw MQTT CONNECT: the connection is closed, never a CONNACK (0x20)
    with socket.create_connection((broker.host, broker.port), timeout=5) as s:
        s.sendall(bytes.fromhex("101000044d5154540402003c000474657374"))
        reply = b""
        with contextlib.suppress(ConnectionResetError):  # what 2.0.11 does: a reset
            while chunk := s.recv(4096):
                reply += chunk
        assert not reply.startswith(b"\x20"), reply

    # over TLS, with the test CA: services and gateways work, bad passwords do not
    gw = "gw-tls-only"
    broker.add_user(gw, site="s1", unit="u1", root=topic_root)
    c = Client.connect(broker, gw, gw)
    try:
        assert not c.publish(topics.gateway_obs("s1", "u1", gw, root=topic_root), b"x").is_failure
    finally:
        c.close()
    bad = broker.params("admin", password="wrong", session_expiry_s=0)
    with pytest.raises(BrokerRefused):
        connect_blocking(make_client(bad, client_id=f"bad-{uuid.uuid4().hex[:6]}"), bad)


def test_a_plain_broker_has_one_plaintext_listener(private_broker: Mosquitto) -> None:
    assert private_broker.proc is not None
    assert listening_ports(private_broker.proc.pid) == {private_broker.port}
    assert private_broker.tls_port == 0 and "cafile" not in private_broker.conf()

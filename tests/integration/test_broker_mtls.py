"""Mutual TLS on real mosquitto 2.0.11 (issue 16): the devstack's broker with one TLS listener
that requires a client certificate from its CA, in both of its modes.

``client_certs="password"`` (what the demo and the docs use): a certificate from the CA *and*
the dynamic-security password. Refused before any CONNACK: a certificate from another CA, an
expired one, a not-yet-valid one, none at all, and plaintext; refused at CONNECT: no username
(anonymous) or a wrong password, even with a good certificate.

``client_certs="identity"`` (``use_identity_as_username``): pinned here because it is why the
password mode is the default. The certificate's CN becomes the username and the password is
ignored, so a gateway's certificate presented with the admin's credentials is still that
gateway; but the plugin's password check is skipped altogether, and with it the client-id
binding: another identity's certificate may take a gateway's client id (and its session).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from servicekit.mqtt import (
    BrokerRefused,
    MqttError,
    MqttParams,
    TlsFailed,
    connect_blocking,
    make_client,
)
from tests.integration.test_broker_security import Client
from tests.integration.test_broker_tls import listening_ports
from wardwatch import devstack
from wardwatch.certs import init_pki
from wardwatch.devstack import Mosquitto, make_test_pki
from wardwire import topics

pytestmark = pytest.mark.integration

SITE, UNIT = "s1", "u1"


def _broker(tmp: Path, mode: str) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp / "mosquitto", client_certs=mode)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    yield from _broker(tmp_path_factory.mktemp("mtls"), "password")


@pytest.fixture(scope="module")
def identity_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    yield from _broker(tmp_path_factory.mktemp("mtls-identity"), "identity")


def _cid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _refused(p: MqttParams, exc: type[MqttError] = MqttError, timeout: float = 5) -> MqttError:
    """Connecting with ``p`` fails (no successful CONNACK); returns the error."""
    client = make_client(p, client_id=_cid("x"))
    with pytest.raises(exc) as info:
        connect_blocking(client, p, timeout=timeout)
    client.loop_stop()
    return info.value


def test_a_good_client_certificate_connects_and_publishes(
    mtls_broker: Mosquitto, topic_root: str
) -> None:
    broker, gw = mtls_broker, f"gw-{uuid.uuid4().hex[:6]}"
    assert broker.proc is not None
    assert listening_ports(broker.proc.pid) == {broker.port}  # one listener: TLS, mutual
    assert "require_certificate true" in broker.conf()
    broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    p = broker.params(gw, session_expiry_s=0)
    assert p.cert_file is not None and p.key_file is not None and p.ca_file is not None
    assert p.key_file.stat().st_mode & 0o777 == 0o600
    c = Client.open(p, gw)
    try:
        rc = c.publish(topics.gateway_obs(SITE, UNIT, gw, root=topic_root), b"{}")
        assert not rc.is_failure
        # the password still names who it is: the gateway's ACLs hold under mutual TLS
        other = topics.gateway_obs(SITE, UNIT, "gw-other", root=topic_root)
        assert c.publish(other, b"{}").is_failure
    finally:
        c.close()
    # a service identity works the same way (what ingest, alerting and console do)
    s = Client.connect(mtls_broker, "ingest", _cid("ingest"))
    s.close()


def test_a_certificate_from_another_ca_is_refused(mtls_broker: Mosquitto, tmp_path: Path) -> None:
    stranger = make_test_pki(tmp_path / "other-ca")
    cert, key = stranger.client_cert("admin")
    p = replace(mtls_broker.params("admin", session_expiry_s=0), cert_file=cert, key_file=key)
    err = _refused(p, TlsFailed)
    assert "unknown ca" in str(err) and str(cert) in str(err), err


@pytest.mark.parametrize(
    ("alert", "now", "days"),
    [
        ("certificate expired", datetime.now(UTC) - timedelta(days=3), 1),
        ("bad certificate", datetime.now(UTC) + timedelta(days=1), 2),  # not yet valid
    ],
)
def test_a_client_certificate_outside_its_validity_is_refused(
    mtls_broker: Mosquitto, alert: str, now: datetime, days: int
) -> None:
    assert mtls_broker.pki is not None
    cert, key = mtls_broker.pki.client_cert("admin", now=now, days=days)
    p = replace(mtls_broker.params("admin", session_expiry_s=0), cert_file=cert, key_file=key)
    assert alert in str(_refused(p, TlsFailed))
    # the same identity with a current certificate is let in: only the validity differed
    Client.connect(mtls_broker, "admin", _cid("admin")).close()


def test_no_client_certificate_is_refused(mtls_broker: Mosquitto) -> None:
    p = replace(mtls_broker.params("admin", session_expiry_s=0), cert_file=None, key_file=None)
    assert "certificate required" in str(_refused(p, TlsFailed))


def test_plaintext_is_refused(mtls_broker: Mosquitto) -> None:
    p = replace(
        mtls_broker.params("admin", session_expiry_s=0), ca_file=None, cert_file=None,
        key_file=None,
    )
    _refused(p, timeout=2)  # no TLS layer: the broker closes the connection, never a CONNACK


def test_anonymous_and_wrong_passwords_are_refused_even_with_a_good_certificate(
    mtls_broker: Mosquitto,
) -> None:
    good = mtls_broker.params("admin", session_expiry_s=0)
    _refused(replace(good, username=None, password=None), BrokerRefused)
    _refused(replace(good, password="wrong"), BrokerRefused)


def test_identity_mode_takes_the_username_from_the_certificate(
    identity_broker: Mosquitto, topic_root: str
) -> None:
    broker, gw = identity_broker, f"gw-{uuid.uuid4().hex[:6]}"
    broker.add_user(gw, site=SITE, unit=UNIT, root=topic_root)
    own = topics.gateway_obs(SITE, UNIT, gw, root=topic_root)
    elsewhere = topics.gateway_obs(SITE, UNIT, "gw-other", root=topic_root)

    # no password at all: the certificate is the credential
    p = replace(broker.params(gw, session_expiry_s=0), username=None, password=None)
    c = Client.open(p, gw)
    try:
        assert not c.publish(own, b"{}").is_failure
        assert c.publish(elsewhere, b"{}").is_failure
    finally:
        c.close()
    # the gateway's certificate with the admin's name and password is still the gateway
    admin = broker.params("admin", session_expiry_s=0)
    p = replace(admin, cert_file=broker.params(gw).cert_file, key_file=broker.params(gw).key_file)
    c = Client.open(p, _cid("claims-admin"))
    try:
        assert c.publish(elsewhere, b"{}").is_failure
    finally:
        c.close()
    # what this mode loses on 2.0.11: the client-id binding (the plugin's password check, which
    # enforces it, is skipped), so another identity's certificate may take the gateway's id
    c = Client.open(replace(admin, password="ignored"), gw)
    c.close()
    # and a certificate from the CA for an identity the plugin does not know still connects,
    # with no rights at all
    assert broker.pki is not None
    cert, key = broker.pki.client_cert("nobody-known")
    c = Client.open(replace(admin, username=None, password=None, cert_file=cert, key_file=key),
                    _cid("nobody"))
    try:
        assert c.publish(own, b"{}").is_failure
    finally:
        c.close()
    # a certificate is still required: without one the handshake fails
    _refused(replace(admin, cert_file=None, key_file=None), TlsFailed)


def test_what_certs_init_makes_serves_a_mutual_tls_broker(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    init_pki(d, clients=("admin",), now=datetime.now(UTC))
    pki = devstack.TestPki(d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key")
    b = Mosquitto(tmp_path / "mosquitto", client_certs="password", pki=pki)
    b.start()
    try:
        p = b.params("admin", session_expiry_s=0)
        assert p.cert_file == d / "clients" / "admin.pem"  # the one certs init issued
        Client.open(p, _cid("admin")).close()
    finally:
        b.stop()


def test_a_refused_certificate_on_a_background_reconnect_is_counted_and_said(
    mtls_broker: Mosquitto,
) -> None:
    """A gateway running on paho's reconnect loop (broker away at start, or its certificate
    expired while it ran) is told by the broker's TLS alert; the session counts and logs it."""
    from servicekit.mqtt import MqttSession
    from tests.helpers.wait import wait_until

    assert mtls_broker.pki is not None
    cert, key = mtls_broker.pki.client_cert(
        "admin", now=datetime.now(UTC) - timedelta(days=3), days=1)
    p = replace(mtls_broker.params("admin", session_expiry_s=0), cert_file=cert, key_file=key)
    session = MqttSession(p, _cid("expired"))
    session.start_in_background()
    try:
        wait_until(lambda: session.tls_refusals >= 1, timeout=15)
        assert session.last_tls_error and "certificate expired" in session.last_tls_error
        assert not session.connected.is_set()
    finally:
        session.stop()
    # connected, a session carries no log hook (paho would format every debug line for it)
    good = MqttSession(mtls_broker.params("admin", session_expiry_s=0), _cid("good"))
    good.start()
    try:
        assert good.client.on_log is None and good.tls_refusals == 0
    finally:
        good.stop()


def test_a_service_connects_with_the_certificate_its_settings_name(
    mtls_broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WM_MQTT_CA_FILE, WM_MQTT_CERT_FILE and WM_MQTT_KEY_FILE (what Stack.env gives a service
    process, and what an operator sets) reach the connection."""
    from servicekit.mqtt import MqttSession
    from servicekit.settings import ServiceSettings

    env = devstack.Stack(mtls_broker, devstack.Influx(tmp_path / "influx-unused")).env("ingest")
    assert env["WM_MQTT_CERT_FILE"].endswith("ingest.pem") and env["WM_MQTT_KEY_FILE"]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    p = ServiceSettings().mqtt_params()
    assert p.cert_file is not None and p.key_file is not None
    session = MqttSession(replace(p, session_expiry_s=0), _cid("ingest"))
    session.start()
    session.stop()
    monkeypatch.delenv("WM_MQTT_CERT_FILE")
    monkeypatch.delenv("WM_MQTT_KEY_FILE")
    _refused(replace(ServiceSettings().mqtt_params(), session_expiry_s=0), TlsFailed)

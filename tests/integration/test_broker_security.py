"""The broker as the devstack (and deploy/mosquitto/) configures it, attacked on real mosquitto:
no anonymous access, a gateway's client id bound to its username, and each gateway confined to
its own ``{root}/gw/{site}/{unit}/{gateway}/`` subtree (issue 9, items 2 and 3).

Authorisation is checked by delivery, never by SUBACK or by PUBACK alone: a watcher that may
read everything is subscribed to every topic a test aims at, and each test ends with a marker
published after the attack, so "nothing else arrived before the marker" is a bounded,
sleep-free check that the refused messages were never delivered.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from servicekit.mqtt import BrokerRefused, MqttError, MqttParams, connect_blocking, make_client
from tests.helpers.mqtt import Collector, collector
from wardwatch.devstack import GatewayScope, Mosquitto, Stack
from wardwire import topics

pytestmark = pytest.mark.integration


@dataclass
class Client:
    """A connected MQTT client that records PUBACK reason codes and disconnects."""

    client: mqtt.Client
    params: MqttParams
    acks: dict[int, Any] = field(default_factory=dict)
    disconnects: list[Any] = field(default_factory=list)
    subacks: dict[int, Any] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def connect(
        cls,
        broker: Mosquitto,
        user: str,
        client_id: str,
        *,
        will: tuple[str, bytes] | None = None,
        session_expiry_s: int = 0,
    ) -> Client:
        return cls.open(
            broker.params(user, session_expiry_s=session_expiry_s), client_id, will=will
        )

    @classmethod
    def open(
        cls, p: MqttParams, client_id: str, *, will: tuple[str, bytes] | None = None
    ) -> Client:
        c = cls(make_client(p, client_id=client_id, will=will), p)
        c.client.on_publish = c._on_publish
        c.client.on_disconnect = c._on_disconnect
        c.client.on_subscribe = c._on_subscribe
        c.client.on_message = c._on_message
        connect_blocking(c.client, p)
        return c

    def _on_subscribe(self, cl: mqtt.Client, u: Any, mid: int, rcs: Any, pr: Any) -> None:
        with self.cond:
            self.subacks[mid] = rcs
            self.cond.notify_all()

    def _on_message(self, cl: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((m.topic, m.payload))
            self.cond.notify_all()

    def subscribe(self, topic_filter: str) -> Any:
        """Subscribe at QoS 1 and return the SUBACK's reason code."""
        rc, mid = self.client.subscribe(topic_filter, qos=1)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.subacks, 10), "no SUBACK"
            return self.subacks[mid][0]

    def wait_for(
        self, pred: Callable[[list[tuple[str, bytes]]], bool], timeout: float = 30.0
    ) -> bool:
        """Wait until ``pred(messages)`` holds (the same contract as a ``Collector``)."""
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.messages), timeout)

    def _on_publish(self, cl: mqtt.Client, u: Any, mid: int, rc: Any, pr: Any) -> None:
        with self.cond:
            self.acks[mid] = rc
            self.cond.notify_all()

    def _on_disconnect(self, cl: mqtt.Client, u: Any, f: Any, rc: Any, pr: Any) -> None:
        with self.cond:
            self.disconnects.append(rc)
            self.cond.notify_all()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> Any:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        with self.cond:
            assert self.cond.wait_for(lambda: info.mid in self.acks, 10), "no PUBACK"
            return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def not_authorized(rc: Any) -> bool:
    return getattr(rc, "value", None) == 0x87


def arrived_before(watch: Collector | Client, marker: bytes) -> list[tuple[str, bytes]]:
    """Everything ``watch`` received up to (without) ``marker``, waiting for the marker."""
    assert watch.wait_for(lambda m: any(p == marker for _, p in m), timeout=10)
    with watch.cond:
        got = list(watch.messages)
    return got[: [p for _, p in got].index(marker)]


def test_anonymous_and_wrong_password_are_refused(stack: Stack) -> None:
    for user, pw in ((None, None), ("admin", "wrong")):
        p = MqttParams(
            host=stack.broker.host,
            port=stack.broker.port,
            username=user,
            password=pw,
            session_expiry_s=0,
        )
        c = make_client(p, client_id=f"anon-{uuid.uuid4().hex[:6]}")
        with pytest.raises(MqttError, match="refused"):
            connect_blocking(c, p, timeout=5)


def test_a_gateway_may_publish_only_in_its_own_site_unit_and_root(
    stack: Stack, topic_root: str
) -> None:
    """The old ACL pattern ``+/v1/gw/+/+/%u/#`` let a gateway publish under its own id in any
    site, unit and root. Now every one of those is PUBACK 0x87 and reaches no subscriber."""
    other_root = f"t{uuid.uuid4().hex[:10]}/v1"
    gw = "gw-conf-0"
    stack.broker.add_user(gw, site="s1", unit="u1", root=topic_root)
    watch = collector(stack.broker, "admin", [f"{topic_root}/#", f"{other_root}/#"])
    c = Client.connect(stack.broker, gw, gw)
    try:
        own = topics.gateway_obs("s1", "u1", gw, root=topic_root)
        assert not c.publish(own, b"own").is_failure
        status = topics.gateway_status("s1", "u1", gw, root=topic_root)
        assert not c.publish(status, b"st").is_failure
        assert not c.publish(
            topics.device_status("s1", "u1", gw, "d1", root=topic_root), b"dev"
        ).is_failure
        forbidden = [
            topics.gateway_obs("othersite", "u1", gw, root=topic_root),
            topics.gateway_obs("s1", "otherunit", gw, root=topic_root),
            topics.gateway_obs("othersite", "otherunit", gw, root=topic_root),
            topics.gateway_obs("s1", "u1", gw, root=other_root),
            topics.gateway_obs("s1", "u1", "gw-conf-1", root=topic_root),
            topics.score("s1", "u1", "b1", root=topic_root),
            topics.ack_commands("s1", "u1", root=topic_root),
            topics.dead_letter("ingest", root=topic_root),
            f"{topic_root}/gw/s1/u1",
        ]
        for t in forbidden:
            assert not_authorized(c.publish(t, b"forbidden " + t.encode())), t
        assert not c.publish(own, b"marker").is_failure
        got = arrived_before(watch, b"marker")
        assert [p for _, p in got] == [b"own", b"st", b"dev"]
    finally:
        c.close()
        watch.close()


def test_a_last_will_outside_the_gateways_subtree_is_never_delivered(
    stack: Stack, topic_root: str
) -> None:
    gw = "gw-will-0"
    stack.broker.add_user(gw, site="s1", unit="u1", root=topic_root)
    foreign = topics.gateway_status("s1", "u1", "gw-will-1", root=topic_root)
    watch = collector(stack.broker, "admin", [f"{topic_root}/#"])
    c = Client.connect(stack.broker, gw, gw, will=(foreign, b"spoofed will"))
    try:
        # MQTT v5 reason 0x04: the broker publishes the will as if the gateway had vanished
        will_now = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        c.client.disconnect(reasoncode=will_now)
        with c.cond:
            assert c.cond.wait_for(lambda: c.disconnects, 10)
        c.client.loop_stop()
        again = Client.connect(stack.broker, gw, gw)
        try:
            assert not again.publish(
                topics.gateway_obs("s1", "u1", gw, root=topic_root), b"marker"
            ).is_failure
            assert arrived_before(watch, b"marker") == []
        finally:
            again.close()
    finally:
        watch.close()


def test_another_gateways_credentials_cannot_take_over_its_client_id(
    stack: Stack, topic_root: str
) -> None:
    """gw-01's credentials with client id ``gw-00`` once took gw-00's session over (its last
    will fired and the two fought). The connect is refused; gw-00 stays connected, silent."""
    victim_id, attacker_id = "gw-bind-00", "gw-bind-01"
    stack.broker.add_user(victim_id, site="s1", unit="u1", root=topic_root)
    stack.broker.add_user(attacker_id, site="s1", unit="u1", root=topic_root)
    status = topics.gateway_status("s1", "u1", victim_id, root=topic_root)
    watch = collector(stack.broker, "admin", [f"{topic_root}/#"])
    victim = Client.connect(
        stack.broker, victim_id, victim_id, will=(status, b"offline/lwt"), session_expiry_s=600
    )
    try:
        for attempt in range(3):  # retrying changes nothing
            p = stack.broker.params(attacker_id, session_expiry_s=600)
            attacker = make_client(p, client_id=victim_id)
            with pytest.raises(BrokerRefused, match="Not authorized"):
                connect_blocking(attacker, p, timeout=5)
            attacker.loop_stop()
            assert victim.client.is_connected(), f"attempt {attempt}"
        # the victim's connection still works, and nothing (no last will) came before this
        assert not victim.publish(status, b"marker").is_failure
        assert arrived_before(watch, b"marker") == []
        assert victim.disconnects == []
    finally:
        victim.close()
        watch.close()


def test_a_gateway_must_connect_with_its_own_client_id(stack: Stack, topic_root: str) -> None:
    gw = "gw-bind-10"
    password = stack.broker.add_user(gw, site="s1", unit="u1", root=topic_root)
    assert stack.broker.try_connect(gw, password, client_id=gw)
    for other in (f"{gw}-x", "gw-bind-11", "ingest-1", f"probe-{uuid.uuid4().hex[:4]}"):
        assert not stack.broker.try_connect(gw, password, client_id=other), other


def test_a_service_identity_may_hold_several_connections(stack: Stack, topic_root: str) -> None:
    """Why the binding is per gateway, not ``use_username_as_clientid`` for everyone: that
    option (measured on 2.0.11, and only when set after the ``listener`` line) turns every
    client id of a user into the username, so an ingest worker and its seq auditor, or two
    units' alerting, would take each other's sessions over."""
    clients = []
    try:
        for user, cid in (
            ("ingest", "ingest-1"),
            ("ingest", "ingest-1-seq-audit"),
            ("ingest", "ingest-2"),
            ("alerting", "alerting-s1-u1"),
            ("alerting", "alerting-s1-u2"),
        ):
            clients.append(Client.connect(stack.broker, user, f"{cid}-{uuid.uuid4().hex[:4]}"))
        assert all(c.client.is_connected() for c in clients)
        assert all(c.disconnects == [] for c in clients)
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize(
    ("site", "unit", "root"),
    [
        ("+", "u1", "wm/v1"),
        ("s1", "#", "wm/v1"),
        ("s1", "u1", "+/v1"),
        ("s1", "u1", "wm/#"),
        ("s1", "u1", ""),
        ("s/x", "u1", "wm/v1"),
    ],
)
def test_a_gateway_never_gets_a_wildcard_scope(site: str, unit: str, root: str) -> None:
    with pytest.raises(ValueError):
        GatewayScope("gw-x", site, unit, root)
    with pytest.raises(ValueError, match="service identity"):
        GatewayScope("ingest", "s1", "u1", "wm/v1")
    assert GatewayScope("gw-x", "s1", "u1", "wm/v1").acls()[0].topic == "wm/v1/gw/s1/u1/gw-x/#"

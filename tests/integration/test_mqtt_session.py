"""servicekit.mqtt.MqttSession on a real mosquitto: completions, reason codes, resubscription."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from servicekit.mqtt import BrokerRefused, MqttSession
from tests.helpers.mqtt import params
from tests.helpers.wait import wait_until
from wardwatch.devstack import Mosquitto, Stack
from wardwire import topics

pytestmark = pytest.mark.integration


class Answers:
    """Completions by message, counting how often each fired."""

    def __init__(self) -> None:
        self.by_key: dict[int, list[ReasonCode]] = {}
        self.cond = threading.Condition()

    def done(self, key: int) -> object:
        def on_done(rc: ReasonCode) -> None:
            with self.cond:
                self.by_key.setdefault(key, []).append(rc)
                self.cond.notify_all()

        return on_done

    def wait(self, n: int, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.by_key) >= n, timeout)


def test_every_publish_is_answered_once_with_its_own_reason_code(
    stack: Stack, topic_root: str
) -> None:
    b = stack.broker
    pw = b.add_user("gw-sess", site="s", unit="u", root=topic_root)
    p = replace(b.params("gw-sess"), password=pw)
    session = MqttSession(p, "gw-sess")
    answers = Answers()
    session.start()
    try:
        own = topics.gateway_obs("s", "u", "gw-sess", root=topic_root)
        other = topics.gateway_obs("s", "u", "gw-other", root=topic_root)
        # Interleave allowed and forbidden topics: each answer must land on its own message.
        for i in range(200):
            session.publish(own if i % 3 else other, b"{}", on_done=answers.done(i))
        assert answers.wait(200)
        assert all(len(rcs) == 1 for rcs in answers.by_key.values())
        refused = sorted(i for i, rcs in answers.by_key.items() if rcs[0].is_failure)
        assert refused == [i for i in range(200) if i % 3 == 0]
        assert session.refused_publishes == len(refused)
        assert session.pending_completions() == 0
    finally:
        session.stop()


def test_a_completion_needs_qos_1(stack: Stack) -> None:
    session = MqttSession(params(stack.broker, "ingest"), f"q0-{uuid.uuid4().hex[:6]}")
    with pytest.raises(ValueError, match="QoS"):
        session.publish("x/y", b"", qos=0, on_done=lambda rc: None)


def test_a_refused_subscription_is_reported_not_taken_for_ready(
    stack: Stack, topic_root: str
) -> None:
    b = stack.broker
    pw = b.add_user("gw-nosub", site="s", unit="u", root=topic_root)
    p = replace(b.params("gw-nosub"), password=pw, session_expiry_s=0)
    # A gateway may not read another unit's traffic.
    forbidden = topics.gateway_obs("s", "other", "+", root=topic_root)
    session = MqttSession(p, "gw-nosub", subscriptions=[(forbidden, 1)])
    session.start()
    try:
        wait_until(lambda: session.refused_filters == [forbidden], timeout=10)
        assert not session.subscribed.is_set()
    finally:
        session.stop()


def test_bad_credentials_raise_broker_refused(stack: Stack) -> None:
    p = replace(params(stack.broker, "ingest"), password="wrong")
    with pytest.raises(BrokerRefused):
        MqttSession(p, f"bad-{uuid.uuid4().hex[:6]}").start()


def test_subscriptions_come_back_after_a_broker_restart_and_queued_publishes_are_answered(
    private_broker: Mosquitto, topic_root: str
) -> None:
    b = private_broker
    gw_pw = b.add_user("gw-r", site="s", unit="u", root=topic_root)
    obs = topics.gateway_obs("s", "u", "gw-r", root=topic_root)
    received: list[bytes] = []
    got = threading.Condition()

    def on_message(c: object, u: object, m: object) -> None:
        with got:
            received.append(bytes(m.payload))  # type: ignore[attr-defined]
            got.notify_all()

    # A consumer without a persistent session: only re-subscribing on CONNACK brings it back.
    consumer = MqttSession(
        replace(params(b, "ingest"), session_expiry_s=0),
        f"ingest-{uuid.uuid4().hex[:6]}",
        subscriptions=[(obs, 1)],
        on_message=on_message,
    )
    gw = MqttSession(replace(b.params("gw-r"), password=gw_pw), "gw-r")
    answers = Answers()
    consumer.start()
    gw.start()
    try:
        wait_until(consumer.subscribed.is_set, timeout=10)
        b.stop()
        wait_until(lambda: not gw.connected.is_set() and not consumer.connected.is_set(),
                   timeout=20)
        consumer.subscribed.clear()
        gw.publish(obs, b"while-down", on_done=answers.done(1))
        assert 1 not in answers.by_key  # kept by paho until the broker is back
        b.start()
        wait_until(lambda: consumer.subscribed.is_set() and gw.connected.is_set(), timeout=40)
        assert answers.wait(1, timeout=40)
        assert not answers.by_key[1][0].is_failure
        # The queued message was sent on reconnect, possibly before the consumer
        # re-subscribed; a fresh one must arrive now that the subscription is back.
        gw.publish(obs, b"after", on_done=answers.done(2))
        with got:
            assert got.wait_for(lambda: b"after" in received, 20)
    finally:
        gw.stop()
        consumer.stop()

"""The broker as the devstack (and docs/architecture.md) configures it: no anonymous access,
each gateway confined to its own topic subtree."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.helpers.mqtt import collector, params
from wardwatch.devstack import Stack
from wardwatch.mqtt import MqttError, MqttParams, connect_blocking, make_client
from wardwire import topics

pytestmark = pytest.mark.integration


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


def test_a_gateway_may_publish_only_below_its_own_subtree(stack: Stack, topic_root: str) -> None:
    stack.broker.add_user("gw-sec-1", "pw-sec-1")
    p = replace(params(stack.broker, "gw-sec-1"), session_expiry_s=0)
    c = make_client(p, client_id="gw-sec-1")
    codes: dict[int, Any] = {}
    done = threading.Event()

    def on_publish(cl: mqtt.Client, u: Any, mid: int, rc: Any, pr: Any) -> None:
        codes[mid] = rc
        if len(codes) == 2:
            done.set()

    c.on_publish = on_publish
    connect_blocking(c, p)
    watch = collector(stack.broker, "admin", [f"{topic_root}/gw/#"])
    try:
        own = c.publish(topics.gateway_obs("s", "u", "gw-sec-1", root=topic_root), b"x", qos=1)
        other = c.publish(topics.gateway_obs("s", "u", "gw-sec-2", root=topic_root), b"y", qos=1)
        assert done.wait(10)
        assert not codes[own.mid].is_failure
        assert codes[other.mid].is_failure  # PUBACK 0x87 not authorized
        assert watch.wait_for(lambda m: len(m) >= 1)
        assert [t for t, _ in watch.messages] == [
            topics.gateway_obs("s", "u", "gw-sec-1", root=topic_root)
        ]
    finally:
        watch.close()
        c.disconnect()
        c.loop_stop()

"""Test-side MQTT helpers: a collecting subscriber with deadlines (never sleeps)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from servicekit.mqtt import MqttParams, connect_blocking, make_client
from wardwatch.devstack import Mosquitto


def params(broker: Mosquitto, user: str) -> MqttParams:
    """``user``'s connection to ``broker`` (over TLS with the test CA on a TLS-only broker)."""
    return broker.params(user)


@dataclass
class Collector:
    """Subscribes to filters and collects (topic, payload) with a condition variable."""

    client: mqtt.Client
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(
        self, pred: Callable[[list[tuple[str, bytes]]], bool], timeout: float = 30.0
    ) -> bool:
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.messages):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def collector(broker: Mosquitto, user: str, filters: list[str], timeout: float = 10.0) -> Collector:
    p = params(broker, user)
    from dataclasses import replace

    client = make_client(replace(p, session_expiry_s=0), client_id=f"col-{uuid.uuid4().hex[:8]}")
    col = Collector(client)
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, pr: Any) -> None:
        c.subscribe([(t, 1) for t in filters])

    def on_subscribe(*a: Any) -> None:
        subscribed.set()

    def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        with col.cond:
            col.messages.append((m.topic, m.payload))
            col.cond.notify_all()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    connect_blocking(client, p)
    if not subscribed.wait(timeout):
        raise TimeoutError("no SUBACK")
    return col

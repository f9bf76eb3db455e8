"""The one way wardwatch services open an MQTT v5 connection (paho-mqtt 2.x).

Every service gets the same safe defaults, the ones whose absence silently loses messages
(see docs/architecture.md, "lossless by construction"):

* a stable client id and ``clean_start=False`` with a session expiry, so the broker keeps the
  session (queued QoS 1 messages, un-acked deliveries) across disconnects and restarts -- paho's
  v5 default ``MQTT_CLEAN_START_FIRST_ONLY`` would wipe it;
* an explicit CONNACK deadline (``connect_blocking``), never hope;
* paho's own reconnect loop with capped backoff (``reconnect_delay_set``).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class MqttError(RuntimeError):
    """Could not connect, or the broker refused us."""


@dataclass(frozen=True, slots=True)
class MqttParams:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 1000


def make_client(
    params: MqttParams,
    client_id: str,
    *,
    manual_ack: bool = False,
    will: tuple[str, bytes] | None = None,
) -> mqtt.Client:
    """A configured (not yet connected) paho v5 client."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if params.username is not None:
        client.username_pw_set(params.username, params.password)
    if params.ca_file is not None:
        client.tls_set(
            ca_certs=str(params.ca_file),
            certfile=str(params.cert_file) if params.cert_file else None,
            keyfile=str(params.key_file) if params.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)
    return client


def connect_properties(params: MqttParams) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = params.session_expiry_s
    props.ReceiveMaximum = params.receive_maximum
    return props


def connect_blocking(client: mqtt.Client, params: MqttParams, timeout: float = 10.0) -> bool:
    """Connect with a persistent session, start the network thread, wait for CONNACK.

    Returns whether the broker still had our session. Raises ``MqttError`` when the broker
    refuses (bad credentials) or does not answer in time. The caller's own ``on_connect`` (set
    before calling) still runs on every (re)connect.
    """
    done = threading.Event()
    outcome: dict[str, object] = {}
    user_on_connect: Any = client.on_connect

    def on_connect(
        c: mqtt.Client, userdata: object, flags: object, rc: object, props: object
    ) -> None:
        if not done.is_set():
            outcome["rc"] = rc
            outcome["session_present"] = bool(getattr(flags, "session_present", False))
            done.set()
        if user_on_connect is not None:
            user_on_connect(c, userdata, flags, rc, props)

    client.on_connect = on_connect
    try:
        client.connect(
            params.host,
            params.port,
            keepalive=params.keepalive_s,
            clean_start=False,
            properties=connect_properties(params),
        )
    except OSError as exc:
        raise MqttError(f"cannot reach broker {params.host}:{params.port}: {exc}") from exc
    client.loop_start()
    if not done.wait(timeout):
        client.loop_stop()
        raise MqttError(f"no CONNACK from {params.host}:{params.port} within {timeout} s")
    rc = outcome["rc"]
    if getattr(rc, "is_failure", False):
        client.loop_stop()
        raise MqttError(f"broker refused connection: {rc}")
    return bool(outcome["session_present"])

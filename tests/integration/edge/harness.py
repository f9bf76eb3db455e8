"""Edge durability harness: a persistent recorder of everything a gateway publishes, the edge
config of a test gateway, and the checks every replay test applies (no loss, no seq gap,
per-device order kept, duplicates byte-identical)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.config import (
    BrokerSection,
    DeviceSection,
    EdgeConfig,
    GatewaySection,
    OutboxSection,
    TlsSection,
)
from servicekit.backoff import Backoff
from servicekit.mqtt import connect_blocking, make_client
from wardwatch.devstack import Mosquitto
from wardwire import topics
from wardwire.models import GatewayStatus, Generation, ObservationBatch

SITE, UNIT = "s1", "u1"
#: Test clients reconnect quickly; the agent's own schedule is the production default unless a
#: test passes another.
FAST = Backoff(initial_s=0.05, cap_s=0.5)


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival
    seq: int | None = None  # for observation batches (read cheaply, validated at the end)
    n_obs: int = 0


@dataclass
class Recorder:
    """A persistent-session subscriber (``clean_start=False``, session expiry) that records
    every message, so it also receives what was queued for it while it or the broker was away."""

    client: mqtt.Client
    messages: list[Message] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, pred: Callable[[list[Message]], Any], timeout: float = 30.0) -> Any:
        """Wait until ``pred(messages)`` is truthy; raise ``TimeoutError`` at the deadline."""
        end = time.monotonic() + timeout
        with self.cond:
            while not (value := pred(self.messages)):
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"recorder: condition not met within {timeout} s")
                self.cond.wait(left)
            return value

    def snapshot(self) -> list[Message]:
        with self.cond:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_recorder(broker: Mosquitto, filters: list[str], client_id: str | None = None) -> Recorder:
    # the broker's own parameters for admin: its CA when TLS-only, a client certificate too
    # when it requires one
    p = broker.params("admin", session_expiry_s=3600, reconnect=FAST)
    client = make_client(p, client_id=client_id or f"rec-{uuid.uuid4().hex[:8]}")
    rec = Recorder(client)
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, pr: Any) -> None:
        c.subscribe([(t, 1) for t in filters])  # the session keeps it; renewing is harmless

    def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        msg = Message(m.topic, m.payload, bool(m.retain), time.monotonic())
        if m.topic.endswith("/obs"):
            body = json.loads(m.payload)
            msg.seq, msg.n_obs = int(body["seq"]), len(body["observations"])
        with rec.cond:
            rec.messages.append(msg)
            rec.cond.notify_all()

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    connect_blocking(client, p)
    assert subscribed.wait(10), "no SUBACK"
    return rec


def obs_topic(root: str, gw: str) -> str:
    return topics.gateway_obs(SITE, UNIT, gw, root=root)


def status_topic(root: str, gw: str) -> str:
    return topics.gateway_status(SITE, UNIT, gw, root=root)


def edge_config(
    broker: Mosquitto,
    gw: str,
    root: str,
    outbox: Path,
    devices: dict[str, Path],
    *,
    password: str,
    tls: bool = False,
    ca_file: Path | None = None,
    heartbeat_s: float = 10.0,
    **outbox_opts: Any,
) -> EdgeConfig:
    return EdgeConfig(
        gateway=GatewaySection(id=gw, site=SITE, unit=UNIT, generation=Generation.TEST),
        broker=BrokerSection(
            host=broker.host,
            port=broker.tls_port if tls else broker.port,
            username=gw,
            password=password,
            topic_root=root,
            tls=TlsSection(ca_file=ca_file or broker.ca_file) if tls else None,
        ),
        outbox=OutboxSection(path=outbox, **outbox_opts),
        heartbeat_s=heartbeat_s,
        devices=[DeviceSection(id=d, driver="wwmon", port=str(p)) for d, p in devices.items()],
    )


# -- the replay checks ---------------------------------------------------------------------------
def batches(messages: list[Message], topic: str) -> list[tuple[int, bytes]]:
    """(seq, payload) of every copy received on ``topic``, in arrival order."""
    out = []
    for m in messages:
        if m.topic == topic:
            out.append((ObservationBatch.model_validate_json(m.payload).seq, m.payload))
    return out


def observations_received(messages: list[Message]) -> int:
    """Observations in distinct batches received so far (duplicates counted once)."""
    seen: dict[int, int] = {}
    for m in messages:
        if m.seq is not None:
            seen.setdefault(m.seq, m.n_obs)
    return sum(seen.values())


@dataclass(frozen=True)
class ReplayReport:
    batches: int
    duplicates: int
    observations: int


def check_replay(copies: list[tuple[int, bytes]], emitted: int) -> ReplayReport:
    """Zero loss, zero seq gaps, per-device order, and byte-identical duplicates."""
    first: dict[int, bytes] = {}
    duplicates = 0
    for seq, payload in copies:
        if seq in first:
            duplicates += 1
            assert payload == first[seq], f"seq {seq} was republished with different bytes"
        else:
            first[seq] = payload
    seqs = sorted(first)
    assert seqs == list(range(len(seqs))), "seq gaps: missing " + str(
        sorted(set(range(seqs[-1] + 1)) - set(seqs))[:20]
    )
    last: dict[str, Any] = {}
    n = 0
    for seq in seqs:
        for o in ObservationBatch.model_validate_json(first[seq]).observations:
            prev = last.get(o.device_id)
            assert prev is None or o.measured_at >= prev, (
                f"device {o.device_id}: {o.measured_at} after {prev} (seq {seq})"
            )
            last[o.device_id] = o.measured_at
            n += 1
    assert n == emitted, f"{n} observations delivered, the devices sent {emitted}"
    return ReplayReport(len(seqs), duplicates, n)


def last_status(messages: list[Message], topic: str) -> GatewayStatus | None:
    for m in reversed(messages):
        if m.topic == topic:
            return GatewayStatus.model_validate_json(m.payload)
    return None

"""Ingest on real mosquitto + influxd: dead letters, unknown devices, ack only after write."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from servicekit.faults import ServiceFailed
from servicekit.mqtt import connect_blocking, make_client
from tests.helpers.mqtt import Collector, collector, params
from tests.helpers.wait import wait_until
from wardwatch.devstack import Influx, Mosquitto, Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation, Observation, ObservationBatch

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1",
    unit="u1",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1"), GatewayContext(id="gw2")],
    beds=[
        BedContext(id="b1", gateway="gw1", devices=["d1"]),
        BedContext(id="b2", gateway="gw2", devices=["d2"]),
    ],
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def batch(gw: str, dev: str, seq: int, n: int = 4) -> bytes:
    obs = [
        Observation(
            device_id=dev,
            code="HR",
            value=100.0 + i,
            unit="/min",
            measured_at=T0 + timedelta(seconds=seq * n + i),
            received_at=T0 + timedelta(seconds=seq * n + i),
        )
        for i in range(n)
    ]
    b = ObservationBatch(
        gateway_id=gw, seq=seq, sent_at=T0, generation=Generation.TEST, observations=obs
    )
    return b.model_dump_json().encode()


class Publisher:
    def __init__(self, broker: Mosquitto) -> None:
        p = replace(params(broker, "admin"), session_expiry_s=0)
        self.client = make_client(p, client_id="test-pub")
        connect_blocking(self.client, p)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_ingest(
    broker: Mosquitto, influx: Influx, db: str, root: str, worker: str = "ingest-t"
) -> tuple[IngestService, threading.Thread]:
    opts = IngestOptions(
        influx_url=influx.url,
        influx_db=db,
        influx_user="ingest",
        influx_password=influx.writer_password,
        topic_root=root,
        worker_id=worker,
        linger_s=0.05,
    )
    svc = IngestService(params(broker, "ingest"), WardIndex(WARD), opts)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            svc.run()
        except ServiceFailed as exc:  # what a dead network thread must lead to
            failures.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.failures = failures  # type: ignore[attr-defined]
    t.start()
    assert svc.ready.wait(10), "ingest did not subscribe"
    return svc, t


@pytest.fixture
def dlq(stack: Stack, topic_root: str) -> Iterator[Collector]:
    col = collector(stack.broker, "admin", [topics.dead_letter("ingest", root=topic_root)])
    yield col
    col.close()


def test_malformed_payloads_are_dead_lettered_and_never_stall(
    stack: Stack, topic_root: str, influx_db: str, dlq: Collector
) -> None:
    svc, t = run_ingest(stack.broker, stack.influx, influx_db, topic_root)
    pub = Publisher(stack.broker)
    topic = topics.gateway_obs("s1", "u1", "gw1", root=topic_root)
    bad = [b"not json", b"{}", b'{"schema_version": 2}', batch("gw1", "d1", 99)[:-5]]
    try:
        for seq in range(20):
            pub.publish(topic, batch("gw1", "d1", seq))
            pub.publish(topic, bad[seq % len(bad)])
        assert dlq.wait_for(lambda m: len(m) == 20)
        wait_until(lambda: stack.influx.count(influx_db) >= 80, timeout=30)
    finally:
        pub.close()
        svc.stop()
        t.join(30)
    reasons = [json.loads(p)["reason"] for _, p in dlq.messages]
    assert all(r.startswith("malformed:") for r in reasons), reasons
    originals = {base64.b64decode(json.loads(p)["payload_b64"]) for _, p in dlq.messages}
    assert originals == set(bad)
    assert svc.counters.dead_lettered == 20
    assert stack.influx.count(influx_db) == 80
    assert svc.counters.written_obs == 80


def test_unknown_gateway_and_device_are_rejected_visibly(
    stack: Stack, topic_root: str, influx_db: str, dlq: Collector
) -> None:
    svc, t = run_ingest(stack.broker, stack.influx, influx_db, topic_root)
    pub = Publisher(stack.broker)
    try:
        pub.publish(topics.gateway_obs("s1", "u1", "gw-x", root=topic_root), batch("gw-x", "d1", 0))
        # gw2 may only carry d2: d1 on gw2 is an unknown device.
        mixed = json.loads(batch("gw2", "d2", 0))
        mixed["observations"] += json.loads(batch("gw2", "d1", 1))["observations"]
        pub.publish(
            topics.gateway_obs("s1", "u1", "gw2", root=topic_root), json.dumps(mixed).encode()
        )
        assert dlq.wait_for(lambda m: len(m) == 2), dlq.messages
        wait_until(lambda: stack.influx.count(influx_db) == 4, timeout=30)
    finally:
        pub.close()
        svc.stop()
        t.join(30)
    reasons = sorted(json.loads(p)["reason"] for _, p in dlq.messages)
    assert reasons[0].startswith("unknown_device: not registered: d1 (4)")
    assert reasons[1].startswith("unknown_gateway:")
    res = stack.influx.query('SELECT count("value") FROM obs GROUP BY "bed"', db=influx_db)
    series = res["results"][0]["series"]  # type: ignore[index]
    assert [(s["tags"]["bed"], s["values"][0][1]) for s in series] == [("b2", 4)]


def test_nothing_is_acknowledged_while_influx_is_down(
    tmp_path: Path, private_broker: Mosquitto, topic_root: str
) -> None:
    influx = Influx(tmp_path / "influx")
    influx.start()
    influx.create_database("w")
    svc, t = run_ingest(private_broker, influx, "w", topic_root)
    pub = Publisher(private_broker)
    topic = topics.gateway_obs("s1", "u1", "gw1", root=topic_root)
    try:
        for seq in range(10):
            pub.publish(topic, batch("gw1", "d1", seq))
        wait_until(lambda: influx.count("w") == 40)
        influx.stop()
        for seq in range(10, 60):
            pub.publish(topic, batch("gw1", "d1", seq))
        wait_until(lambda: svc.counters.write_failures >= 2)
        acked_before = svc.counters.written_obs
        assert acked_before == 40
        influx.start()
        wait_until(lambda: influx.count("w") == 240, timeout=60, interval=0.2)
    finally:
        pub.close()
        svc.stop()
        t.join(30)
        influx.stop()
    assert svc.counters.written_obs == 240


def test_a_restarted_worker_gets_unacknowledged_messages_again(
    tmp_path: Path, private_broker: Mosquitto, topic_root: str
) -> None:
    """Un-acked messages stay with the broker (persistent session, manual ack)."""
    influx = Influx(tmp_path / "influx")
    influx.start()
    influx.create_database("w")
    svc, _t = run_ingest(private_broker, influx, "w", topic_root, worker="ingest-r")
    pub = Publisher(private_broker)
    topic = topics.gateway_obs("s1", "u1", "gw1", root=topic_root)
    try:
        influx.stop()  # the worker receives but can never write: nothing gets acked
        for seq in range(25):
            pub.publish(topic, batch("gw1", "d1", seq))
        wait_until(lambda: svc.counters.received == 25 and svc.counters.write_failures >= 1)
        # Worker dies without acking (its network thread stops, no DISCONNECT is sent).
        svc.client.loop_stop()
        svc.client.socket().close()  # type: ignore[union-attr]
        # Readiness is liveness: the service notices its dead loop and exits non-zero.
        assert not svc.is_ready()
        _t.join(30)
        assert not _t.is_alive()
        assert _t.failures and "mqtt stopped" in str(_t.failures[0])  # type: ignore[attr-defined]
        influx.start()
        svc2, t2 = run_ingest(private_broker, influx, "w", topic_root, worker="ingest-r")
        wait_until(lambda: influx.count("w") == 100, timeout=60, interval=0.2)
        svc2.stop()
        t2.join(30)
    finally:
        pub.close()
        influx.stop()
    svc.stop_event.set()


def test_an_influx_outage_never_blocks_the_network_thread(
    tmp_path: Path, private_broker: Mosquitto, topic_root: str
) -> None:
    """Issue 9, finding 5: during an InfluxDB outage the consumer's queue filled, paho's
    network thread blocked on it, missed keepalives and was dropped by the broker (and the
    redelivered batches were written twice). Flow control is the broker's receive maximum:
    the network thread keeps answering keepalives however long the outage lasts."""
    influx = Influx(tmp_path / "influx")
    influx.start()
    influx.create_database("w")
    opts = IngestOptions(
        influx_url=influx.url,
        influx_db="w",
        influx_user="ingest",
        influx_password=influx.writer_password,
        topic_root=topic_root,
        worker_id="ingest-k",
        linger_s=0.05,
        max_pending_msgs=20,
    )
    p = replace(params(private_broker, "ingest"), keepalive_s=1, receive_maximum=50)
    svc = IngestService(p, WardIndex(WARD), opts)
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10)
    pub = Publisher(private_broker)
    topic = topics.gateway_obs("s1", "u1", "gw1", root=topic_root)
    try:
        influx.stop()
        for seq in range(200):  # 4x the receive maximum, 10x the old queue
            pub.publish(topic, batch("gw1", "d1", seq))
        # the broker holds back what we may not receive yet
        wait_until(lambda: svc.counters.received >= 50 and svc.counters.write_failures >= 3)
        assert svc.counters.received <= 50
        # several keepalive periods pass, answered by the network thread (the broker drops a
        # client silent for 1.5 keepalives)
        wait_until(lambda: svc.counters.write_failures >= 8, timeout=60)
        assert svc.counters.disconnects == 0
        assert svc.counters.queue_full_waits == 0
        influx.start()
        wait_until(lambda: influx.count("w") == 800, timeout=60, interval=0.2)
        assert svc.counters.disconnects == 0
        assert svc.counters.seq_duplicates == 0
    finally:
        svc.stop()
        t.join(30)
        pub.close()
        influx.stop()

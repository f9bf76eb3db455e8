"""Size and queue limits on real mosquitto 2.0.11 (issue 9, item 6): a message over
``message_size_limit`` reaches no subscriber, a packet over ``max_packet_size`` is cut off before
the broker buffers it, a slow consumer's queue is bounded in bytes, and the largest batch a
gateway may legitimately send still goes through."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.helpers.mqtt import collector
from tests.integration.test_broker_security import Client, arrived_before
from wardwatch.devstack import BrokerLimits, KiB, MiB, Mosquitto, Stack
from wardwire import topics
from wardwire.models import (
    MAX_BATCH_OBSERVATIONS,
    MAX_BATCH_SAMPLES,
    MAX_BATCH_WAVEFORMS,
    MAX_WAVEFORM_SAMPLES,
    Generation,
    Observation,
    ObservationBatch,
    Quality,
    Source,
    TimeSource,
    WaveformBlock,
)
from wardwire.params import PARAMETERS, ParamKind

pytestmark = pytest.mark.integration

LIMIT = BrokerLimits().message_size_limit
T = datetime(2026, 12, 2, 10, 11, 12, 123456, tzinfo=UTC)
DEVICE_T = datetime(
    2026, 12, 2, 10, 11, 12, 123456, tzinfo=timezone(timedelta(hours=-13, minutes=-45))
)
#: samples of one Nonin pleth block: the driver reads 4096 bytes at most, 5 bytes a sample
EDGE_BLOCK_SAMPLES = 4096 // 5


def _longest(kind_waveform: bool) -> tuple[str, str]:
    ps = [p for p in PARAMETERS if (p.kind is ParamKind.WAVEFORM) == kind_waveform]
    p = max(ps, key=lambda p: len(p.code) + len(p.ucum))
    return p.code, p.ucum


def worst_observation(reason_char: str = "x") -> Observation:
    """Every field at its longest: 64-character ids, a 200-character reason, a re-timed value
    with a device time, the longest float repr (an implausible value kept as invalid)."""
    code, unit = _longest(False)
    return Observation(
        device_id="D" * 64,
        code=code,
        value=-1.2345678901234567e300,
        unit=unit,
        measured_at=T,
        received_at=T,
        quality=Quality.INVALID,
        quality_reason=reason_char * 200,
        source=Source.MEASURED,
        time_source=TimeSource.GATEWAY,
        device_time=DEVICE_T,
    )


def wave_block(samples: int, value: float) -> WaveformBlock:
    code, unit = _longest(True)
    return WaveformBlock(
        device_id="D" * 64,
        code=code,
        unit=unit,
        start=T,
        received_at=T,
        sample_rate_hz=9999.123456789,
        samples=[value] * samples,
        quality=Quality.QUESTIONABLE,
        time_source=TimeSource.GATEWAY,
        device_time=DEVICE_T,
    )


def batch_bytes(
    gw: str, observations: list[Observation], waves: list[WaveformBlock] | None = None
) -> bytes:
    b = ObservationBatch(
        gateway_id=gw,
        seq=2**63 - 1,
        epoch="E" * 64,
        sent_at=T,
        generation=Generation.DEMO,
        observations=observations,
        waveforms=waves or [],
    )
    return b.model_dump_json().encode()


def test_the_limit_covers_every_legitimate_batch_and_refuses_the_absurd() -> None:
    """The numbers behind ``BrokerLimits`` (also in its docstring and the architecture doc)."""
    gw = "G" * 64
    ascii_max = len(batch_bytes(gw, [worst_observation()] * MAX_BATCH_OBSERVATIONS))
    # reasons are printable (the contract refuses control characters); the longest encoding
    # of a printable character is 4 bytes of UTF-8 (model_dump_json does not \u-escape)
    escaped_max = len(batch_bytes(gw, [worst_observation("\U0001f600")] * MAX_BATCH_OBSERVATIONS))
    edge_max = len(
        batch_bytes(
            gw,
            [worst_observation()] * (MAX_BATCH_OBSERVATIONS - MAX_BATCH_WAVEFORMS),
            [wave_block(EDGE_BLOCK_SAMPLES, 255.0)] * MAX_BATCH_WAVEFORMS,
        )
    )
    # the contract caps a batch at MAX_BATCH_SAMPLES (it once allowed 100 x 10,000 = 25 MB)
    n_blocks = MAX_BATCH_SAMPLES // MAX_WAVEFORM_SAMPLES
    model_wave_max = len(
        batch_bytes(gw, [], [wave_block(MAX_WAVEFORM_SAMPLES, -1.2345678901234567e300)] * n_blocks)
    )
    with pytest.raises(ValidationError, match="waveform samples"):
        batch_bytes(gw, [], [wave_block(MAX_WAVEFORM_SAMPLES, 1.0)] * (n_blocks + 1))
    assert 2_800_000 < ascii_max < 2_900_000
    assert 5_800_000 < escaped_max < 5_900_000 < LIMIT
    assert 3_250_000 < edge_max < 3_350_000
    assert 2_400_000 < model_wave_max < 2_600_000 < LIMIT
    limits = BrokerLimits()
    assert limits.max_packet_size - limits.message_size_limit >= 64 * KiB  # topic + properties


def test_the_largest_legitimate_batches_go_through(stack: Stack, topic_root: str) -> None:
    gw = "gw-big-0"
    stack.broker.add_user(gw, site="s1", unit="u1", root=topic_root)
    topic = topics.gateway_obs("s1", "u1", gw, root=topic_root)
    payloads = [
        batch_bytes(gw, [worst_observation("\U0001f600")] * MAX_BATCH_OBSERVATIONS),
        batch_bytes(
            gw,
            [worst_observation()] * (MAX_BATCH_OBSERVATIONS - MAX_BATCH_WAVEFORMS),
            [wave_block(EDGE_BLOCK_SAMPLES, 255.0)] * MAX_BATCH_WAVEFORMS,
        ),
    ]
    watch = collector(stack.broker, "admin", [topic])
    c = Client.connect(stack.broker, gw, gw)
    try:
        for p in payloads:
            assert not c.publish(topic, p).is_failure
        assert watch.wait_for(lambda m: len(m) == len(payloads), timeout=30)
        assert [p for _, p in watch.messages] == payloads
    finally:
        c.close()
        watch.close()


def test_a_message_over_the_size_limit_reaches_no_one_and_disconnects_the_publisher(
    stack: Stack, topic_root: str
) -> None:
    """mosquitto drops it ("Dropped too large PUBLISH") and answers PUBACK 0x95 (packet too
    large), a code the MQTT v5 spec does not allow in a PUBACK; paho takes that as a protocol
    error and drops the connection. Either way: nothing is delivered."""
    gw = "gw-big-1"
    stack.broker.add_user(gw, site="s1", unit="u1", root=topic_root)
    topic = topics.gateway_obs("s1", "u1", gw, root=topic_root)
    watch = collector(stack.broker, "admin", [topic])
    c = Client.connect(stack.broker, gw, gw)
    try:
        assert not c.publish(topic, b"a" * LIMIT).is_failure  # exactly at the limit: fine
        info = c.client.publish(topic, b"b" * (LIMIT + 1), qos=1)
        with c.cond:
            assert c.cond.wait_for(lambda: c.disconnects, 20), "publisher not disconnected"
        c.client.loop_stop()  # paho would reconnect and resend the same message forever
        assert info.mid not in c.acks or c.acks[info.mid].is_failure
        assert c.disconnects[0].is_failure
        marker = Client.connect(stack.broker, gw, gw)
        try:
            assert not marker.publish(topic, b"marker").is_failure
        finally:
            marker.close()
        got = arrived_before(watch, b"marker")
        assert [len(p) for _, p in got] == [LIMIT]
    finally:
        c.client.disconnect()
        watch.close()


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_huge_message_is_cut_off_before_the_broker_buffers_it(
    private_broker: Mosquitto, topic_root: str
) -> None:
    """Without ``max_packet_size`` mosquitto read a 128 MiB PUBLISH whole (peak RSS 141 MB)
    before refusing it; with it, the client is disconnected on the packet's length header
    ("Client … disconnected due to oversize packet", with connection messages logged) and the
    broker's peak RSS stays small."""
    broker, gw = private_broker, "gw-huge"
    broker.add_user(gw, site="s1", unit="u1", root=topic_root)
    topic = topics.gateway_obs("s1", "u1", gw, root=topic_root)
    watch = collector(broker, "admin", [topic])
    c = Client.connect(broker, gw, gw)
    try:
        c.client.publish(topic, b"h" * (64 * MiB), qos=1)
        with c.cond:
            assert c.cond.wait_for(lambda: c.disconnects, 30), "publisher not disconnected"
        c.client.loop_stop()
        assert broker.proc is not None
        assert _peak_rss_bytes(broker.proc.pid) < 32 * MiB
        again = Client.connect(broker, gw, gw)
        try:
            assert not again.publish(topic, b"marker").is_failure
        finally:
            again.close()
        assert arrived_before(watch, b"marker") == []
        assert broker.proc.poll() is None
    finally:
        c.client.disconnect()
        watch.close()


def test_a_slow_consumers_queue_is_bounded_in_bytes(tmp_path: Path, topic_root: str) -> None:
    """A persistent subscriber away while 40 messages of 8 KiB arrive, with a 64 KiB byte bound
    (and the count bound far away): the broker keeps what fits and drops the rest, logging it.
    The publisher is not told (PUBACK success): that is why the bound is sized generously and
    ingest's seq audit reports gaps."""
    broker = Mosquitto(tmp_path / "mosquitto", limits=BrokerLimits(max_queued_bytes=64 * KiB))
    broker.start()
    try:
        topic = f"{topic_root}/gw/s1/u1/gw-q/obs"
        sub_id = f"slow-{uuid.uuid4().hex[:6]}"
        slow = Client.connect(broker, "ingest", sub_id, session_expiry_s=600)
        assert not slow.subscribe(topic).is_failure
        slow.close()
        pub = Client.connect(broker, "admin", f"pub-{uuid.uuid4().hex[:6]}")
        try:
            for i in range(40):
                assert not pub.publish(topic, f"{i:04d}".encode() + b"q" * (8 * KiB)).is_failure
            back = Client.connect(broker, "ingest", sub_id, session_expiry_s=600)  # resumes
            try:
                assert not pub.publish(topic, b"marker").is_failure
                got = arrived_before(back, b"marker")
            finally:
                back.close()
        finally:
            pub.close()
        kept = len(got)
        assert 1 <= kept <= 64 // 8 + 1, kept
        assert [p[:4] for _, p in got] == [f"{i:04d}".encode() for i in range(kept)]
        log = (broker.workdir / "mosquitto.log").read_text(errors="replace")
        assert f"Outgoing messages are being dropped for client {sub_id}" in log
    finally:
        broker.stop()

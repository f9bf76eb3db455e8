"""The agent's driver sink (``EdgeAgent._on_readings``): one implausible value, device clock
or driver bug is data for that value, never a driver fault; the counters reach the status.

The agent is built on a temporary outbox and never connects: the sink and the status builders
need no broker. The retained device statuses are published to a recording stand-in of paho's
``publish`` (the real broker path is covered by the edge integration tests).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.agent import EdgeAgent
from edge_agent.config import ClockSection, DeviceSection, EdgeConfig, GatewaySection, OutboxSection
from edge_agent.drivers import SerialDriver, SinkReport
from edge_agent.links import ByteLink, LinkLost
from edge_agent.protocols.base import Reading, WaveformChunk
from edge_agent.protocols.wwmon import WwmonEncoder
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from tests.helpers.wait import until
from wardwire.models import (
    DeviceState,
    DeviceStatus,
    GatewayState,
    Generation,
    ObservationBatch,
    Quality,
    TimeSource,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def make_agent(tmp_path: Path, clock: ClockSection | None = None) -> EdgeAgent:
    cfg = EdgeConfig(
        gateway=GatewaySection(id="gw1", site="s", unit="u", generation=Generation.TEST),
        outbox=OutboxSection(path=tmp_path / "outbox.db"),
        clock=clock or ClockSection(),
        devices=[DeviceSection(id="mon1", driver="wwmon", port="scripted")],
    )
    return EdgeAgent(cfg, clock=lambda: NOW)


def sealed(agent: EdgeAgent) -> ObservationBatch:
    agent.step(flush=True)
    (batch,) = agent.outbox.sealed()
    assert agent.outbox.stats().quarantined == 0
    return ObservationBatch.model_validate_json(batch.payload)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[EdgeAgent]:
    a = make_agent(tmp_path)
    yield a
    a.outbox.close()


def test_spo2_101_and_temp_14_are_kept_as_invalid_beside_the_frames_other_values(
    agent: EdgeAgent,
) -> None:
    frame: list[Reading | WaveformChunk] = [
        Reading("HR", 120.0, "/min", NOW),
        Reading("SPO2", 101.0, "%", NOW),
        Reading("TEMP", 14.0, "Cel", NOW),
        Reading("RR", 30.0, "/min", NOW),
    ]
    assert agent._on_readings("mon1", frame, NOW) == SinkReport(invalid=2)
    obs = {o.code: o for o in sealed(agent).observations}
    assert set(obs) == {"HR", "SPO2", "TEMP", "RR"}
    assert (obs["SPO2"].quality, obs["SPO2"].quality_reason) == (
        Quality.INVALID,
        "SPO2=101 outside the physical range [0, 100]",
    )
    assert (obs["TEMP"].quality, obs["TEMP"].quality_reason) == (
        Quality.INVALID,
        "TEMP=14 outside the physical range [15, 47]",
    )
    assert obs["HR"].quality is Quality.VALID and obs["HR"].value == 120.0


def test_a_value_the_contract_cannot_carry_is_refused_alone_and_logged_once(
    agent: EdgeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    frame: list[Reading | WaveformChunk] = [
        Reading("HR", 80.0, "/min", NOW),
        Reading("SPO2", math.nan, "%", NOW),  # a parser bug
        Reading("RR", 25.0, "/min", NOW),
    ]
    with caplog.at_level(logging.DEBUG, logger="edge_agent.agent"):
        assert agent._on_readings("mon1", frame, NOW) == SinkReport(refused=1)
        assert agent._on_readings("mon1", frame, NOW) == SinkReport(refused=1)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "SPO2 value refused" in errors[0].getMessage()
    assert sorted(o.code for o in sealed(agent).observations) == ["HR", "HR", "RR", "RR"]


def test_implausible_device_time_is_retimed_and_warned_about_once(
    agent: EdgeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    chunk = WaveformChunk("PLETH", "{unitless}", 75.0, (1.0,) * 25, EPOCH)
    frame: list[Reading | WaveformChunk] = [Reading("HR", 80.0, "/min", EPOCH), chunk]
    later = NOW + timedelta(seconds=1)
    with caplog.at_level(logging.WARNING, logger="edge_agent.agent"):
        assert agent._on_readings("mon1", frame, NOW) == SinkReport(retimed=2)
        assert agent._on_readings("mon1", frame, later) == SinkReport(retimed=2)
        good: list[Reading | WaveformChunk] = [
            Reading("HR", 81.0, "/min", later - timedelta(seconds=1))
        ]
        assert agent._on_readings("mon1", good, later) == SinkReport()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "mon1: clock implausible" in warnings[0] and "1970" in warnings[0]
    assert "clock plausible again" in warnings[1]
    batch = sealed(agent)
    first, second, third = batch.observations
    assert (first.measured_at, first.time_source, first.device_time) == (
        NOW,
        TimeSource.GATEWAY,
        EPOCH,
    )
    assert (second.measured_at, second.time_source) == (later, TimeSource.GATEWAY)
    assert (third.measured_at, third.time_source, third.device_time) == (
        later - timedelta(seconds=1),
        TimeSource.DEVICE,
        None,
    )
    w = batch.waveforms[0]
    assert (w.start, w.time_source, w.device_time) == (
        NOW - timedelta(seconds=25 / 75),
        TimeSource.GATEWAY,
        EPOCH,
    )


def test_clock_bounds_come_from_the_config(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, ClockSection(max_ahead_s=10, max_age_s=60))
    frame: list[Reading | WaveformChunk] = [
        Reading("HR", 80.0, "/min", NOW + timedelta(seconds=11)),
        Reading("HR", 80.0, "/min", NOW + timedelta(seconds=10)),
        Reading("HR", 80.0, "/min", NOW - timedelta(seconds=61)),
    ]
    assert agent._on_readings("mon1", frame, NOW) == SinkReport(retimed=2)
    agent.outbox.close()


# -- the driver folds the report into its counters; the status shows them ------------------
class ScriptedLink:
    """A ``ByteLink`` that returns scripted chunks, then hangs until the test stops."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.opens = 0

    async def read(self, max_bytes: int = 4096) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        await asyncio.Event().wait()
        raise LinkLost("unreachable")

    async def write(self, data: bytes) -> None:
        del data

    async def aclose(self) -> None:
        pass


def wwmon(at: datetime, **values: float) -> bytes:
    return WwmonEncoder().encode_frame(at, dict(values))


@dataclass
class PublishRecorder:
    """Records what ``_publish_device_statuses`` hands to the MQTT session's ``publish``."""

    published: list[tuple[str, bytes]] = field(default_factory=list)

    @dataclass
    class Info:
        mid: int

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> PublishRecorder.Info:
        assert qos == 1 and retain
        self.published.append((topic, payload.encode()))
        return PublishRecorder.Info(len(self.published))


def test_driver_stays_connected_and_counts_what_the_sink_made_of_its_values(
    tmp_path: Path,
) -> None:
    agent = make_agent(tmp_path)
    opens: list[ScriptedLink] = []
    frames = [
        wwmon(NOW, HR=120, SPO2=101, TEMP=14, RR=30),
        wwmon(NOW, HR=121, SPO2=97, TEMP=36.6, RR=31),
        wwmon(EPOCH, HR=122, SPO2=96),  # clock reset
    ]

    async def open_link(dev: DeviceSection) -> ByteLink:
        opens.append(ScriptedLink(frames))
        return opens[-1]

    (old,) = agent.drivers
    drv = SerialDriver(
        old.device, agent._on_readings, agent.clock, StopFlag(),
        backoff=Backoff(0.001, 0.005), open_link=open_link,
    )  # fmt: skip
    agent.drivers = [drv]

    async def run() -> None:
        task = asyncio.create_task(drv.run_async())
        try:
            await until(lambda: drv.health.readings >= 10, within=5)
        finally:
            drv.stop.set()
            await task

    asyncio.run(run())
    h = drv.health
    assert len(opens) == 1, "the port was reopened"
    assert (h.state, h.detail, h.reconnects) == (DeviceState.CONNECTED, "", 0)
    assert (h.values_invalid, h.values_retimed, h.values_refused) == (2, 2, 0)

    status = agent._status(GatewayState.ONLINE, "heartbeat")
    (dev,) = status.devices
    assert (dev.readings, dev.values_invalid, dev.values_retimed, dev.values_refused) == (
        10,
        2,
        2,
        0,
    )
    assert (dev.frames_rejected, dev.reconnects, dev.state) == (0, 0, DeviceState.CONNECTED)
    # the latest device time was 1970: the skew shows it (milliseconds, gateway - device)
    assert status.clock_skew_ms["mon1"] == pytest.approx((NOW - EPOCH).total_seconds() * 1000)
    assert len(sealed(agent).observations) == 10

    # The retained device status: at once on a state change, then at a heartbeat only when
    # the counters moved.
    rec = PublishRecorder()
    agent.mqtt = rec  # type: ignore[assignment]
    agent._publish_device_statuses()
    agent._publish_device_statuses(refresh=True)  # nothing moved since
    (topic, payload), = rec.published  # fmt: skip
    assert topic.endswith("/gw/s/u/gw1/dev/mon1/status")
    retained = DeviceStatus.model_validate_json(payload)
    assert (retained.values_invalid, retained.values_retimed, retained.readings) == (2, 2, 10)
    with drv.lock:
        drv.health.frames_rejected += 1
    agent._publish_device_statuses()  # no state change: not yet
    assert len(rec.published) == 1
    agent._publish_device_statuses(refresh=True)
    assert DeviceStatus.model_validate_json(rec.published[-1][1]).frames_rejected == 1
    agent.mqtt = None
    agent.outbox.close()

"""Edge agent -> mosquitto -> ingest -> InfluxDB, on real services, with a pty monitor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from device_sims.monitor import SimulatedMonitor
from device_sims.scenarios import Scenario
from edge_agent.agent import EdgeAgent
from edge_agent.config import (
    BrokerSection,
    DeviceSection,
    EdgeConfig,
    GatewaySection,
    OutboxSection,
)
from ingest.core import WardIndex
from ingest.service import IngestOptions, IngestService
from ingest.storage import DownsamplingPlan, setup_database
from servicekit.influx import InfluxTarget
from tests.helpers.mqtt import params
from tests.helpers.wait import wait_until
from wardwatch.devstack import Stack
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import DeviceState, Generation

pytestmark = pytest.mark.integration
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def make_ward(gw: str, devices: list[str]) -> UnitContext:
    return UnitContext(
        site="s1",
        unit="u1",
        generation=Generation.TEST,
        gateways=[GatewayContext(id=gw)],
        beds=[BedContext(id=f"b{i}", gateway=gw, devices=[d]) for i, d in enumerate(devices)],
    )


@dataclass
class Running:
    agent: EdgeAgent
    ingest: IngestService
    threads: list[threading.Thread]

    def stop(self) -> None:
        self.agent.stop()
        self.threads[0].join(30)
        self.ingest.stop()
        self.threads[1].join(30)


def start(
    stack: Stack, root: str, db: str, tmp: Path, gw: str, devices: dict[str, Path]
) -> Running:
    password = stack.broker.add_user(gw, site="s1", unit="u1", root=root)
    cfg = EdgeConfig(
        gateway=GatewaySection(id=gw, site="s1", unit="u1", generation=Generation.TEST),
        broker=BrokerSection(
            host=stack.broker.host,
            port=stack.broker.port,
            username=gw,
            password=password,
            topic_root=root,
        ),
        outbox=OutboxSection(path=tmp / f"{gw}.db", linger_ms=100),
        devices=[DeviceSection(id=d, driver="wwmon", port=str(p)) for d, p in devices.items()],
    )
    agent = EdgeAgent(cfg)
    ward = make_ward(gw, list(devices))
    opts = IngestOptions(
        influx_url=stack.influx.url,
        influx_db=db,
        influx_user="ingest",
        influx_password=stack.influx.writer_password,
        topic_root=root,
        worker_id=f"ingest-{gw}",
        linger_s=0.05,
    )
    ing = IngestService(params(stack.broker, "ingest"), WardIndex(ward), opts)
    threads = [
        threading.Thread(target=agent.run, daemon=True),
        threading.Thread(target=ing.run, daemon=True),
    ]
    for t in threads:
        t.start()
    assert ing.ready.wait(10), "ingest did not subscribe"
    return Running(agent, ing, threads)


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[dict[str, SimulatedMonitor]]:
    mons = {
        f"d{i}": SimulatedMonitor(
            f"d{i}",
            Scenario("stable", seed=i),
            tmp_path / "tty" / f"d{i}",
            period_s=0.01,
            max_frames=200,
        )
        for i in range(3)
    }
    for m in mons.values():
        m.open()
    yield mons
    for m in mons.values():
        m.close()


def test_every_reading_reaches_influx(
    stack: Stack,
    topic_root: str,
    influx_db: str,
    tmp_path: Path,
    monitors: dict[str, SimulatedMonitor],
) -> None:
    run = start(
        stack, topic_root, influx_db, tmp_path, "gw-it1", {d: m.link for d, m in monitors.items()}
    )
    try:
        wait_until(lambda: all(d.health.state is DeviceState.CONNECTED for d in run.agent.drivers))
        for m in monitors.values():
            m.start()
        for m in monitors.values():
            assert m.done.wait(30)
        emitted = sum(m.emitted for m in monitors.values())
        assert emitted == 3 * 200 * 4
        wait_until(lambda: stack.influx.count(influx_db) >= emitted, timeout=60, interval=0.2)
        assert stack.influx.count(influx_db) == emitted
        wait_until(lambda: run.agent.outbox.stats().depth == 0)
    finally:
        run.stop()
    assert run.ingest.counters.dead_lettered == 0
    assert run.ingest.seq.gaps_total == 0


class ResetClockMonitor(SimulatedMonitor):
    """A WWMON monitor whose clock reset to 1970 (as after a flat backup battery)."""

    _n = 0

    def frame(self, t: float) -> tuple[bytes, int]:
        values = self.scenario.values(t)
        self._n += 1
        stamp = EPOCH + timedelta(seconds=self._n)
        return self.encoder.encode_frame(stamp, dict(values)), len(values)


def test_a_device_clock_reset_to_1970_is_stored_re_timed_with_retention_in_place(
    stack: Stack, topic_root: str, influx_db: str, tmp_path: Path
) -> None:
    """Issue 8, finding 2, end to end: with `ingest setup-db` retention in place, a device
    whose clock reset to 1970 made InfluxDB refuse its points ("beyond retention policy") and
    the writer retried the body for ever, stopping storage for the unit. The gateway re-times
    such values (its receive time, the device's reading kept), so every one is stored."""
    admin = InfluxTarget(stack.influx.url, influx_db, "admin", stack.influx.admin_password)
    with httpx.Client(timeout=10) as http:
        setup_database(http, admin, DownsamplingPlan(influx_db, raw_retention="1h"))
    mon = ResetClockMonitor("d0", Scenario("stable", seed=1), tmp_path / "tty" / "d0",
                            period_s=0.05, max_frames=20)
    mon.open()
    run = start(stack, topic_root, influx_db, tmp_path, "gw-clk", {"d0": mon.link})
    try:
        wait_until(lambda: all(d.health.state is DeviceState.CONNECTED for d in run.agent.drivers))
        mon.start()
        assert mon.done.wait(30)
        wait_until(lambda: stack.influx.count(influx_db) >= mon.emitted, timeout=60)
        assert stack.influx.count(influx_db) == mon.emitted == 20 * 4
        assert stack.influx.count(influx_db, where="time_source = 'gateway'") == mon.emitted
        rows: Any = stack.influx.query(
            "SELECT device_time FROM obs WHERE time_source = 'gateway' LIMIT 1", db=influx_db
        )
        assert rows["results"][0]["series"][0]["values"][0][1].startswith("1970-01-01T00:00")
        assert run.ingest.counters.refused_points == 0
        assert run.agent.drivers[0].health.values_retimed == mon.emitted
    finally:
        run.stop()
        mon.close()

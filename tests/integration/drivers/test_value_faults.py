"""Bad values in good frames, through a real driver on a pty into the agent's outbox.

A frame with a valid checksum may still carry a value no patient can have (SpO2 101, TEMP 14)
or a device time from a clock that reset to 1970. Each is data for that value: kept as invalid
with the reason, or re-timed with the gateway's receive time. The device stays connected, the
port is not reopened, the frames that follow are not lost, and every batch seals valid.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_sims.scenarios import Scenario
from device_sims.serial_devices import MasimoSim, SerialDeviceSim, WwmonSim
from edge_agent.agent import EdgeAgent
from edge_agent.config import DeviceSection, EdgeConfig, GatewaySection, OutboxSection
from edge_agent.protocols.masimo_ascii import MasimoAscii1Encoder
from edge_agent.protocols.wwmon import WwmonEncoder
from servicekit.backoff import Backoff
from tests.integration.drivers.conftest import running, utcnow, wait_health
from wardwire.models import (
    DeviceState,
    GatewayState,
    Generation,
    Observation,
    ObservationBatch,
    Quality,
    TimeSource,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def make_agent(tmp_path: Path, driver: str, port: Path) -> EdgeAgent:
    cfg = EdgeConfig(
        gateway=GatewaySection(id="gw1", site="s", unit="u", generation=Generation.TEST),
        outbox=OutboxSection(path=tmp_path / "outbox.db"),
        devices=[DeviceSection(id="dev1", driver=driver, port=str(port))],
    )
    agent = EdgeAgent(cfg)
    agent.drivers[0].backoff = Backoff(initial_s=0.02, cap_s=0.2)
    return agent


@pytest.fixture
def sims() -> Iterator[list[SerialDeviceSim]]:
    made: list[SerialDeviceSim] = []
    yield made
    for s in made:
        s.close()


def drain(agent: EdgeAgent) -> list[Observation]:
    """Seal everything pending; every batch must validate (no poison pill, nothing set aside)."""
    agent.step(flush=True)
    assert agent.outbox.stats().quarantined == 0
    assert agent.outbox.stats().pending == 0
    out: list[Observation] = []
    for b in agent.outbox.sealed(limit=1000):
        out += ObservationBatch.model_validate_json(b.payload).observations
    return out


def no_driver_fault(caplog: pytest.LogCaptureFixture) -> None:
    faults = [r.getMessage() for r in caplog.records if "driver fault" in r.getMessage()]
    assert not faults, faults


def test_wwmon_implausible_values_and_a_clock_reset_to_1970(
    tmp_path: Path, sims: list[SerialDeviceSim], caplog: pytest.LogCaptureFixture
) -> None:
    sim = WwmonSim("mon", Scenario("stable", seed=1), tmp_path / "tty")
    sims.append(sim)
    agent = make_agent(tmp_path, "wwmon", sim.open())
    (drv,) = agent.drivers
    enc = WwmonEncoder()
    with running(drv):
        assert drv.connected_event.wait(5)
        t0 = utcnow()
        for i, (spo2, temp) in enumerate([(98, 36.8), (101, 14), (97, 36.9), (96, 37.0)]):
            values: dict[str, float | None] = {"HR": 120 + i, "SPO2": spo2, "TEMP": temp, "RR": 30}
            assert sim.inject(enc.encode_frame(t0 + timedelta(seconds=i), values))
        wait_health(drv, lambda: drv.health.readings >= 16)  # the frames after it too
        # The monitor's clock resets to 1970 (WWMON carries device time, ms since the epoch).
        for i in range(2):
            assert sim.inject(enc.encode_frame(EPOCH + timedelta(seconds=i), {"HR": 90, "RR": 25}))
        wait_health(drv, lambda: drv.health.readings >= 20)
        status = agent._status(GatewayState.ONLINE, "heartbeat")
        h = drv.health
        assert (h.state, h.detail, h.reconnects, h.frames_rejected) == (
            DeviceState.CONNECTED, "", 0, 0,
        )  # fmt: skip
    no_driver_fault(caplog)
    (dev,) = status.devices
    assert dev.state is DeviceState.CONNECTED
    assert (dev.readings, dev.values_invalid, dev.values_retimed, dev.values_refused) == (
        20, 2, 4, 0,
    )  # fmt: skip
    assert (dev.reconnects, dev.frames_rejected) == (0, 0)
    # the device's clock skew (gateway minus device, ms) shows the reset
    skew_s = status.clock_skew_ms["dev1"] / 1000
    assert abs(skew_s - (utcnow() - EPOCH).total_seconds()) < 600

    obs = drain(agent)
    assert len(obs) == 20
    invalid = {o.code: o.quality_reason for o in obs if o.quality is Quality.INVALID}
    assert invalid == {
        "SPO2": "SPO2=101 outside the physical range [0, 100]",
        "TEMP": "TEMP=14 outside the physical range [15, 47]",
    }
    assert [o.value for o in obs if o.code == "HR"][:4] == [120, 121, 122, 123]
    retimed = [o for o in obs if o.time_source is TimeSource.GATEWAY]
    assert len(retimed) == 4
    assert [o.device_time for o in retimed] == [EPOCH] * 2 + [EPOCH + timedelta(seconds=1)] * 2
    for o in retimed:
        # the receive time; readings of one read stay distinct points, 1 us apart
        assert timedelta(0) <= o.received_at - o.measured_at < timedelta(milliseconds=1)
        assert o.measured_at > t0
    assert all(o.time_source is TimeSource.DEVICE for o in obs[:16])
    agent.outbox.close()


def test_masimo_spo2_101_is_kept_invalid_and_the_next_records_arrive(
    tmp_path: Path, sims: list[SerialDeviceSim], caplog: pytest.LogCaptureFixture
) -> None:
    sim = MasimoSim("oxi", Scenario("stable", seed=2), tmp_path / "tty")
    sims.append(sim)
    agent = make_agent(tmp_path, "masimo_ascii1", sim.open())
    (drv,) = agent.drivers
    enc = MasimoAscii1Encoder(layout="radical7")

    def record(spo2: int) -> bytes:
        line = enc.encode_line(utcnow(), spo2=min(spo2, 100), pulse_rate=130, pi=2.5)
        return line.replace(b"SPO2=100%", f"SPO2={spo2:03d}%".encode())

    with running(drv):
        assert drv.connected_event.wait(5)
        for spo2 in (97, 101, 98, 99):
            assert sim.inject(record(spo2))
        wait_health(drv, lambda: drv.health.readings >= 12)
        h = drv.health
        assert (h.state, h.reconnects, h.values_invalid) == (DeviceState.CONNECTED, 0, 1)
    no_driver_fault(caplog)
    obs = drain(agent)
    assert [o.value for o in obs if o.code == "SPO2"] == [97, 101, 98, 99]
    (bad,) = [o for o in obs if o.quality is Quality.INVALID]
    assert bad.code == "SPO2"
    assert bad.quality_reason == "SPO2=101 outside the physical range [0, 100]"
    assert {o.code for o in obs if o.quality is Quality.VALID} == {"SPO2", "PR", "PI"}
    agent.outbox.close()


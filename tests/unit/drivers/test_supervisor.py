"""The supervisor's policy, against scripted links that implement ``ByteLink``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from edge_agent.config import DeviceSection
from edge_agent.drivers import (
    RECOVERY,
    DeviceDriver,
    DeviceTimeout,
    DriverError,
    DriverUnavailable,
    LinkLost,
    SerialDriver,
    UnknownDriver,
    recovery_for,
)
from edge_agent.links import ByteLink
from edge_agent.protocols.base import DeviceCondition, Reading, WaveformChunk
from edge_agent.protocols.nonin_oem import NoninFormat2Encoder
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from tests.helpers.wait import until
from wardwire.models import DeviceState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PACKET = NoninFormat2Encoder().encode_packet(spo2=97, pulse_rate=100, pleth=[128] * 25)


class ScriptedLink:
    """A ByteLink that returns scripted chunks, then raises ``LinkLost``."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.closed = False

    async def read(self, max_bytes: int = 4096) -> bytes:
        if not self.chunks:
            raise LinkLost("scripted hang-up")
        return self.chunks.pop(0)

    async def write(self, data: bytes) -> None:
        del data

    async def aclose(self) -> None:
        self.closed = True


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[Reading | WaveformChunk]] = []

    def __call__(
        self, device_id: str, values: list[Reading | WaveformChunk], now: datetime
    ) -> None:
        self.calls.append(values)


def make(script: list[Exception | list[bytes]], driver: str = "nonin_format2") -> SerialDriver:
    """A driver whose successive opens fail or return scripted links, in order."""
    opens = iter(script)

    async def open_link(dev: DeviceSection) -> ByteLink:
        step = next(opens, None)
        if step is None:
            await asyncio.Event().wait()  # no more script: hang until stopped
        if isinstance(step, Exception):
            raise step
        assert step is not None
        return ScriptedLink(step)

    dev = DeviceSection(id="d1", driver=driver, port="scripted")
    drv = SerialDriver(
        dev, Recorder(), lambda: NOW, StopFlag(), backoff=Backoff(0.001, 0.005),
        open_link=open_link,
    )  # fmt: skip
    drv.states: list[DeviceState] = []  # type: ignore[attr-defined]
    set_ = drv._set

    def record(state: DeviceState, detail: str) -> None:
        if not drv.states or drv.states[-1] is not state:  # type: ignore[attr-defined]
            drv.states.append(state)  # type: ignore[attr-defined]
        set_(state, detail)

    drv._set = record  # type: ignore[method-assign]
    return drv


async def run_until(drv: DeviceDriver, pred: Callable[[], object], within: float = 5.0) -> None:
    task = asyncio.create_task(drv.run_async())
    try:
        await until(pred, within=within, interval=0.001)
    except AssertionError:
        raise AssertionError(f"never happened; health: {drv.health}") from None
    finally:
        drv.stop.set()
        await task


def test_policy_table_reads_off_the_error_type() -> None:
    assert recovery_for(DriverUnavailable("x")).state is DeviceState.DISCONNECTED
    assert recovery_for(LinkLost("x")).reconnect
    assert recovery_for(DeviceTimeout("x")).state is DeviceState.NO_SIGNAL
    assert not recovery_for(UnknownDriver("x")).retry

    class Subclass(LinkLost):
        pass

    assert recovery_for(Subclass("x")) is RECOVERY[LinkLost]
    assert recovery_for(DriverError("x")).state is DeviceState.ERROR


def test_backoff_is_exponential_capped_and_jittered() -> None:
    b = Backoff(initial_s=0.5, cap_s=10.0, jitter=0.2)
    rng = random.Random(1)
    delays = [b.delay(n, rng) for n in range(12)]
    assert all(0.4 <= d <= 10.0 for d in delays)
    assert delays[0] < delays[2] < delays[4]
    assert delays[-1] <= 10.0 and delays[-1] >= 8.0
    assert len({round(b.delay(3, rng), 6) for _ in range(5)}) > 1  # jitter


def test_unavailable_then_lost_then_back() -> None:
    drv = make([DriverUnavailable("absent"), DriverUnavailable("absent"), [PACKET], [PACKET]])
    asyncio.run(run_until(drv, lambda: len(drv.sink.calls) >= 2))  # type: ignore[attr-defined]
    assert drv.health.reconnects >= 1
    assert drv.states[:3] == [  # type: ignore[attr-defined]
        DeviceState.DISCONNECTED,
        DeviceState.CONNECTED,
        DeviceState.DISCONNECTED,
    ]


def test_configuration_errors_are_reported_not_retried() -> None:
    drv = make([[PACKET]], driver="no_such_driver")
    asyncio.run(run_until(drv, lambda: drv.health.state is DeviceState.ERROR))
    assert "unknown driver" in drv.health.detail
    assert drv.health.reconnects == 0


def test_a_bug_in_a_driver_is_visible_and_retried() -> None:
    drv = make([ZeroDivisionError("bug"), [PACKET]])  # type: ignore[list-item]
    asyncio.run(run_until(drv, lambda: drv.sink.calls))  # type: ignore[attr-defined]
    assert DeviceState.ERROR in drv.states  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("events", "state"),
    [
        ([Reading("SPO2", 97, "%")], DeviceState.CONNECTED),
        (
            [Reading("SPO2", 97, "%"), DeviceCondition(DeviceState.LOW_BATTERY, "low battery")],
            DeviceState.LOW_BATTERY,
        ),
        ([DeviceCondition(DeviceState.CONNECTED, battery_pct=10)], DeviceState.LOW_BATTERY),
        (
            [
                DeviceCondition(DeviceState.NO_SIGNAL, "SPO2: no value"),
                DeviceCondition(DeviceState.LOW_BATTERY),
            ],
            DeviceState.NO_SIGNAL,
        ),
    ],
)
def test_state_of_a_batch(events: list[Reading | DeviceCondition], state: DeviceState) -> None:
    drv = make([])
    asyncio.run(drv._handle(list(events), NOW))
    assert drv.health.state is state


def test_waveform_chunks_of_one_read_are_merged() -> None:
    drv = make([])
    chunk = WaveformChunk("PLETH", "{unitless}", 75.0, (1.0,) * 25)
    asyncio.run(drv._handle([chunk, Reading("PR", 90, "/min"), chunk, chunk], NOW))
    [values] = drv.sink.calls  # type: ignore[attr-defined]
    assert [len(v.samples) for v in values if isinstance(v, WaveformChunk)] == [25, 50]

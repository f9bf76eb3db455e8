"""One device's failure never stalls another device's readings (the gateway's one event loop).

Several drivers run as tasks of one loop, as the agent runs them. The good devices stream a
scripted set of WWMON frames; the bad ones misbehave in a way hypothesis picks: refusing to
open, hanging up after a few reads, going silent, sending garbage, a sink (outbox) that raises
for that device, a sink write that never completes, a parser that raises. Whatever the mix,
every good device's readings all reach the sink and the device ends ``connected``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config import DeviceSection
from edge_agent.drivers import DriverUnavailable, LinkLost, SerialDriver, SinkReport
from edge_agent.links import ByteLink
from edge_agent.protocols.base import ParserEvent, Reading, WaveformChunk
from edge_agent.protocols.wwmon import WwmonEncoder, WwmonParser
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from wardwire.models import DeviceState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FRAMES = 20
FAULTS = ("no_open", "hang_up", "silent", "garbage", "sink_raises", "sink_stuck", "parser_bug")


def frames(n: int) -> list[bytes]:
    enc = WwmonEncoder()
    return [
        enc.encode_frame(NOW + timedelta(seconds=i), {"HR": 100 + i % 7, "SPO2": 97})
        for i in range(n)
    ]


class Link:
    """A ByteLink serving scripted chunks, then staying open and quiet until closed."""

    def __init__(self, chunks: list[bytes], *, hang_up_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.hang_up_after = hang_up_after
        self.reads = 0
        self.closed = asyncio.Event()

    async def read(self, max_bytes: int = 4096) -> bytes:
        if self.hang_up_after is not None and self.reads >= self.hang_up_after:
            raise LinkLost("scripted hang-up")
        self.reads += 1
        if self.chunks:
            await asyncio.sleep(0)  # let the other devices run between frames
            return self.chunks.pop(0)
        await self.closed.wait()  # quiet, as a device between readings
        return b""

    async def write(self, data: bytes) -> None:
        del data

    async def aclose(self) -> None:
        self.closed.set()


class BuggyParser(WwmonParser):
    def feed(self, data: bytes) -> list[ParserEvent]:
        raise RuntimeError("parser bug")


@dataclass
class Sink:
    """The outbox stand-in: counts each device's readings; misbehaves for the chosen ones."""

    raising: set[str] = field(default_factory=set)
    stuck: set[str] = field(default_factory=set)
    got: dict[str, int] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    want: dict[str, int] = field(default_factory=dict)

    def __call__(
        self, device_id: str, values: list[Reading | WaveformChunk], now: datetime
    ) -> Awaitable[SinkReport]:
        return self._store(device_id, values)

    async def _store(self, device_id: str, values: list[Reading | WaveformChunk]) -> SinkReport:
        if device_id in self.raising:
            raise OSError("disk full (for this device's rows only)")
        if device_id in self.stuck:
            await asyncio.Event().wait()  # a write that never completes
        self.got[device_id] = self.got.get(device_id, 0) + len(values)
        if all(self.got.get(d, 0) >= n for d, n in self.want.items()):
            self.done.set()
        return SinkReport()


def driver(dev_id: str, fault: str | None, sink: Sink, stop: StopFlag) -> SerialDriver:
    good = b"".join(frames(FRAMES))

    async def open_link(dev: DeviceSection) -> ByteLink:
        if fault == "no_open":
            raise DriverUnavailable("unplugged")
        if fault == "hang_up":
            return Link(frames(3), hang_up_after=2)
        if fault == "silent":
            return Link([])
        if fault == "garbage":
            return Link([bytes(range(256)) * 4] * 5)
        # one frame per read, as a slow serial line delivers them
        return Link([good[i : i + 64] for i in range(0, len(good), 64)])

    return SerialDriver(
        DeviceSection(id=dev_id, driver="wwmon", port="scripted"),
        sink,
        lambda: NOW,
        stop,
        backoff=Backoff(0.001, 0.005),
        silence_s=0.05 if fault == "silent" else None,
        store_settle_s=0.01,  # the stuck write never settles; don't wait for it at stop
        open_link=open_link,
        parser_factory=BuggyParser if fault == "parser_bug" else WwmonParser,
    )


@settings(max_examples=40, deadline=None)
@given(
    good=st.integers(min_value=1, max_value=3),
    bad=st.lists(st.sampled_from(FAULTS), min_size=1, max_size=4),
)
def test_a_failing_device_never_stalls_another(good: int, bad: list[str]) -> None:
    async def scenario() -> None:
        stop = StopFlag()
        sink = Sink()
        drivers = []
        for i, fault in enumerate(bad):
            dev = f"bad{i}"
            if fault == "sink_raises":
                sink.raising.add(dev)
            if fault == "sink_stuck":
                sink.stuck.add(dev)
            fault_of_link = None if fault in ("sink_raises", "sink_stuck") else fault
            drivers.append(driver(dev, fault_of_link, sink, stop))
        for i in range(good):
            sink.want[f"good{i}"] = FRAMES * 2  # HR and SPO2 per frame
            drivers.append(driver(f"good{i}", None, sink, stop))
        tasks = [asyncio.create_task(d.run_async()) for d in drivers]
        try:
            # Generous: an event, not a timing; only a stall would exhaust it.
            await asyncio.wait_for(sink.done.wait(), timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        for d in drivers:
            if d.device.id.startswith("good"):
                assert d.health.state is DeviceState.CONNECTED, d.health
                assert d.health.readings == FRAMES * 2

    asyncio.run(scenario())


def test_a_store_under_way_at_stop_is_finished_and_counted() -> None:
    """The disk thread completes a write the driver started; the device's counters must say
    so, or stored and published values would be missing from its readings count."""

    async def scenario() -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_store(
            device_id: str, values: list[Reading | WaveformChunk]
        ) -> SinkReport:
            entered.set()
            await release.wait()  # the write is under way when the stop comes
            return SinkReport()

        drv = driver("d", None, Sink(), StopFlag())
        drv.sink = lambda dev, values, now: slow_store(dev, values)
        drv.store_settle_s = 10.0
        task = asyncio.create_task(drv.run_async())
        await asyncio.wait_for(entered.wait(), timeout=10)
        task.cancel()  # as the agent's task group stops its devices
        for _ in range(20):  # let the cancellation reach the store's await
            await asyncio.sleep(0)
        assert drv.health.readings == 0 and not task.done()  # still settling the write
        release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        assert drv.health.readings > 0

    asyncio.run(scenario())

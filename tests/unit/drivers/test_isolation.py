"""One device's failure never stalls another device's readings (the gateway's one event loop).

Several drivers run as tasks of one loop, as the agent runs them. The good devices stream a
scripted set of WWMON frames; the bad ones misbehave in a way hypothesis picks: refusing to
open, hanging up after a few reads, going silent, sending garbage, a sink (outbox) that raises
for that device, a sink write that never completes, a parser that raises, frames with no
value (probe off). Whatever the mix, every good device's readings all reach the sink and the
device ends ``connected``.

The fake links of the property suspend on every read. The flood tests at the end drop that
assumption: a link that always has bytes ready (a ``ByteLink`` may return at once; the
production ``SerialLink`` does for a ``socket://`` port whose socket holds data) and whose
bytes carry no value must not hold the loop either.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config import DeviceSection
from edge_agent.drivers import DriverUnavailable, LinkLost, SerialDriver, SinkReport
from edge_agent.links import ByteLink, SerialLink
from edge_agent.protocols.base import ParserEvent, Reading, WaveformChunk
from edge_agent.protocols.wwmon import WwmonEncoder, WwmonParser
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from tests.helpers.wait import next_tick
from wardwire.models import DeviceState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FRAMES = 20
FAULTS = (
    "no_open", "hang_up", "silent", "garbage", "sink_raises", "sink_stuck", "parser_bug",
    "probe_off",  # valid frames with no value in them (every value '---'): no sink call
)


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
            await next_tick()  # let the other devices run between frames
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
        if fault == "probe_off":
            off = WwmonEncoder().encode_frame(NOW, {"HR": None, "SPO2": None})
            return Link([off * 20] * 50)
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
            await next_tick()
        assert drv.health.readings == 0 and not task.done()  # still settling the write
        release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        assert drv.health.readings > 0

    asyncio.run(scenario())


# -- a device that always has bytes ready ------------------------------------------------------
class FloodLink:
    """A device whose link always has bytes buffered: each read returns at once, as the
    ``ByteLink`` contract allows ("wait for at least one byte": none to wait for) and as
    ``SerialLink.read`` does for a URL port (``socket://`` device server) while its socket
    holds data. After ``burst`` reads it is drained and waits like a quiet port."""

    def __init__(self, chunk: bytes, burst: int) -> None:
        self.chunk, self.left, self.reads = chunk, burst, 0

    async def read(self, max_bytes: int = 4096) -> bytes:
        if self.left:
            self.left -= 1
            self.reads += 1
            return self.chunk
        await asyncio.Event().wait()
        return b""

    async def write(self, data: bytes) -> None:
        del data

    async def aclose(self) -> None:
        pass


FLOOD_READS = 20_000


def flood_reads_before_a_steady_reading(chunk: bytes) -> int:
    """A flooding device beside a steady one on one loop: how many of the flood's reads had
    been served when the steady device's first reading reached the sink."""
    flood = FloodLink(chunk, FLOOD_READS)
    seen_at: list[int] = []

    async def scenario() -> None:
        stop = StopFlag()
        sink = Sink(want={"steady": 2})
        steady = driver("steady", None, sink, stop)
        steady.open_link = _one_frame_link
        store = steady.sink

        def watched(dev: str, values: list[Reading | WaveformChunk], now: datetime) -> object:
            seen_at.append(flood.reads)
            return store(dev, values, now)

        steady.sink = watched  # type: ignore[assignment]
        noisy = driver("flood", None, sink, stop)

        async def open_flood(dev: DeviceSection) -> ByteLink:
            return flood

        noisy.open_link = open_flood
        tasks = [asyncio.create_task(d.run_async()) for d in (noisy, steady)]
        try:
            await asyncio.wait_for(sink.done.wait(), timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)

    asyncio.run(scenario())
    assert flood.reads > 0  # it did flood
    return seen_at[0]


async def _one_frame_link(dev: DeviceSection) -> ByteLink:
    return Link(frames(1))


@pytest.mark.parametrize(
    "chunk",
    [
        pytest.param(b"\x00line noise\r\n" * 40, id="garbage"),
        # a monitor whose probe is off: valid frames, every value '---', so no value
        pytest.param(
            WwmonEncoder().encode_frame(NOW, {"HR": None, "SPO2": None, "RR": None}) * 40,
            id="probe-off-frames",
        ),
    ],
)
def test_a_device_that_always_has_bytes_does_not_starve_the_others(chunk: bytes) -> None:
    """While a device floods bytes that carry no value, the other devices are still served.

    Nothing in ``DeviceDriver._stream`` gives the loop back by itself: it suspends only when
    the link's read does or when the sink is awaited, and bytes without a value never reach
    the sink. So a link that always has data holds the one event loop until its flood ends;
    every other device (and ``stop()``, and the silence watchdog) waits for it.
    """
    at = flood_reads_before_a_steady_reading(chunk)
    assert at < FLOOD_READS, (
        f"the steady device's first reading reached the sink only after all {FLOOD_READS} "
        "reads of the flooding device: it held the event loop for the whole flood"
    )


class CountingLink:
    """The production ``SerialLink`` with a count of the bytes its reads returned."""

    def __init__(self, link: SerialLink) -> None:
        self.link, self.bytes = link, 0

    async def read(self, max_bytes: int = 4096) -> bytes:
        data = await self.link.read(max_bytes)
        self.bytes += len(data)
        return data

    async def write(self, data: bytes) -> None:
        await self.link.write(data)

    async def aclose(self) -> None:
        await self.link.aclose()


def test_a_serial_device_server_with_a_backlog_of_frames_without_values_does_not_starve_the_others() -> (  # noqa: E501
    None
):
    """The same over the production ``SerialLink`` and a real ``socket://`` port (a serial
    device server, as the hospital deployment uses). The server has queued a backlog of
    probe-off frames (no value in any of them) before the driver reads; ``SerialLink.read``
    returns without suspending while its socket holds data, so the driver parses the whole
    backlog without giving the loop back. The steady device, which starts streaming just as
    the flood does, must get its reading in while most of the backlog is still unread.

    Deterministic: the backlog is written (to EAGAIN) before the driver reads and nothing is
    added afterwards; the server's send buffer is tiny, so almost all of it waits in the
    driver's receive buffer, where every read finds data at once.
    """
    probe_off = WwmonEncoder().encode_frame(NOW, {"HR": None, "SPO2": None, "RR": None})
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    filled, release = threading.Event(), threading.Event()
    prefilled: list[int] = []

    def device_server() -> None:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            conn.setblocking(False)
            block, sent = probe_off * 64, 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    sent += conn.send(block)
            prefilled.append(sent)
            filled.set()
            release.wait(60)

    feeder = threading.Thread(target=device_server, name="device-server", daemon=True)
    feeder.start()
    links: list[CountingLink] = []
    seen_at: list[int] = []

    async def scenario() -> None:
        stop = StopFlag()
        flooding = asyncio.Event()
        sink = Sink(want={"steady": 2})

        async def open_flood(dev: DeviceSection) -> ByteLink:
            link = SerialLink.open(f"socket://127.0.0.1:{port}", baudrate=115200)
            assert await asyncio.to_thread(filled.wait, 30), "the device server never filled"
            links.append(CountingLink(link))
            flooding.set()
            return links[-1]

        async def open_steady(dev: DeviceSection) -> ByteLink:
            await flooding.wait()
            return Link(frames(1))

        noisy = driver("flood", None, sink, stop)
        noisy.open_link = open_flood
        steady = driver("steady", None, sink, stop)
        steady.open_link = open_steady
        store = steady.sink

        def watched(dev: str, values: list[Reading | WaveformChunk], now: datetime) -> object:
            seen_at.append(links[0].bytes)
            return store(dev, values, now)

        steady.sink = watched  # type: ignore[assignment]
        tasks = [asyncio.create_task(d.run_async()) for d in (noisy, steady)]
        try:
            await asyncio.wait_for(sink.done.wait(), timeout=60)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        feeder.join(10)
        server.close()
    (backlog,) = prefilled
    assert backlog > 16 * 4096, backlog  # many reads' worth
    assert seen_at[0] < backlog // 2, (
        f"the steady device's first reading reached the sink after the flooding device had "
        f"read {seen_at[0]} of the {backlog} bytes of its backlog: SerialLink.read "
        "(socket://) never suspends while data is buffered and DeviceDriver._stream never "
        "yields, so the flood held the event loop"
    )

"""Device drivers: a link + a sans-IO decoder, registered by name, loaded lazily, supervised.

Theory of operation
-------------------
A driver turns one configured device into calls of ``sink(device_id, values, now)`` (the
outbox) and a :class:`DeviceHealth` the agent reports. The sink judges the values (an
implausible value or device clock is data, see ``edge_agent.admission``) and returns a
:class:`SinkReport` that the driver adds to the device's counters; it never raises for a value,
so an exception out of it is a fault of the gateway (e.g. its disk), handled as below. A driver
is built from two halves:

* a **session opener** (the I/O): a serial :class:`~edge_agent.links.SerialLink` feeding a
  parser (``SerialDriver``), or a BLE central subscribed to GATT characteristics
  (``edge_agent.ble.driver.BleDriver``). A session yields lists of parser events until it
  raises a :class:`~edge_agent.links.DriverError`;
* the **supervisor** (:meth:`DeviceDriver.run_async`, shared): open, stream, and when a
  ``DriverError`` ends the session, look its type up in :data:`RECOVERY` to decide the status
  to report, whether and how soon to retry. Delays are capped exponential backoff with jitter
  (:class:`Backoff`). A configuration error is reported and parked, never spun on; an
  unexpected exception is logged with its traceback, reported as ``error`` and retried, so a
  dead sensor is always a visible technical alert, never a silent dead loop.

Drivers register by name in :data:`DRIVERS` and import their parser (or GATT profile) on first
use, so a gateway without a BLE stack still runs its serial drivers. The agent runs every driver's
``run_async()`` as a task of its one event loop; ``run()`` gives a driver a loop of its own (tools,
tests). A driver stops when its ``stop`` flag is set or its task is cancelled; nothing polls.
Links, parsers and BLE centrals can always be injected.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from edge_agent.config import DeviceSection
from edge_agent.links import (
    ByteLink,
    DeviceTimeout,
    DriverError,
    DriverMisconfigured,
    DriverUnavailable,
    LinkLost,
    SerialLink,
    UnknownDriver,
)
from edge_agent.protocols.base import (
    DeviceCondition,
    FrameRejected,
    Parser,
    ParserEvent,
    Reading,
    WaveformChunk,
)
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from wardwire.models import DeviceState

__all__ = [
    "DRIVERS",
    "RECOVERY",
    "SERIAL_DEFAULT_BAUDRATE",
    "DeviceDriver",
    "DeviceHealth",
    "DeviceTimeout",
    "DriverError",
    "DriverMisconfigured",
    "DriverUnavailable",
    "EventSink",
    "LinkLost",
    "Recovery",
    "SerialDriver",
    "Session",
    "SinkReport",
    "UnknownDriver",
    "device_counters",
    "load_parser",
    "make_driver",
    "recovery_for",
]

log = logging.getLogger(__name__)

#: name -> (module, attribute, transport). The attribute is the parser class of a serial
#: driver, or the ``GattProfile`` of a BLE driver (``edge_agent.ble.profiles``).
DRIVERS: dict[str, tuple[str, str, str]] = {
    "wwmon": ("edge_agent.protocols.wwmon", "WwmonParser", "serial"),
    "masimo_ascii1": ("edge_agent.protocols.masimo_ascii", "MasimoAscii1Parser", "serial"),
    "nonin_format2": ("edge_agent.protocols.nonin_oem", "NoninFormat2Parser", "serial"),
    "ble_heart_rate": ("edge_agent.ble.profiles", "HEART_RATE", "ble"),
    "ble_pulse_oximeter": ("edge_agent.ble.profiles", "PULSE_OXIMETER", "ble"),
    "ble_thermometer": ("edge_agent.ble.profiles", "THERMOMETER", "ble"),
    "ble_blood_pressure": ("edge_agent.ble.profiles", "BLOOD_PRESSURE", "ble"),
}

#: The line speed each serial protocol's document specifies (8N1 for all three); used when
#: the device section does not set ``baudrate``. Masimo: Rad-87 manual ch. 7
#: (ASCII 1, 9600 8N1); Nonin: OEM III spec (9600 8N1); WWMON: docs/protocols/wwmon.md.
SERIAL_DEFAULT_BAUDRATE: dict[str, int] = {
    "wwmon": 115200,
    "masimo_ascii1": 9600,
    "nonin_format2": 9600,
}
#: for a serial driver whose protocol names no speed
FALLBACK_BAUDRATE = 115200

#: Battery level (0x2A19, percent) below which a BLE device reports ``low_battery``. The
#: Battery Service defines no "low"; 20 % is the usual phone/wearable warning level and a
#: gateway policy, not a clinical threshold.
LOW_BATTERY_PCT = 20.0

def _registered(name: str) -> tuple[str, str, str]:
    try:
        return DRIVERS[name]
    except KeyError:
        raise UnknownDriver(
            f"unknown driver {name!r}; known: {', '.join(sorted(DRIVERS))}"
        ) from None


def transport_of(name: str) -> str:
    """``"serial"`` or ``"ble"`` for a registered driver (raises ``UnknownDriver``)."""
    return _registered(name)[2]


def load_attribute(name: str) -> Any:
    """The registered attribute (parser class or GATT profile), imported on first use."""
    module_name, attr, _ = _registered(name)
    return getattr(importlib.import_module(module_name), attr)


def load_parser(name: str) -> Parser:
    """Instantiate the parser of a registered serial driver (imported on first use)."""
    if transport_of(name) != "serial":
        raise UnknownDriver(f"driver {name!r} is not a byte-stream (serial) driver")
    parser: Parser = load_attribute(name)()
    return parser


@dataclass
class DeviceHealth:
    """What the gateway knows about one device, reported in status messages."""

    state: DeviceState = DeviceState.DISCONNECTED
    detail: str = "not opened yet"
    battery_pct: float | None = None
    last_reading_at: datetime | None = None
    frames_rejected: int = 0
    readings: int = 0
    reconnects: int = 0
    dropped: int = 0
    #: what the sink made of the values (``SinkReport``): kept as invalid, re-timed, refused
    values_invalid: int = 0
    values_retimed: int = 0
    values_refused: int = 0
    skew_ms: float | None = None
    changed: bool = True


def device_counters(h: DeviceHealth) -> dict[str, int]:
    """The counters of a device's health, as ``DeviceStatus`` and ``/metrics`` carry them."""
    return {
        "readings": h.readings,
        "frames_rejected": h.frames_rejected,
        "values_invalid": h.values_invalid,
        "values_retimed": h.values_retimed,
        "values_refused": h.values_refused,
        "values_dropped": h.dropped,
        "reconnects": h.reconnects,
    }


@dataclass(frozen=True, slots=True)
class SinkReport:
    """What the sink made of one call's values, added to the device's counters.

    A sink never raises for a value: an implausible value is kept (``invalid``), a value with
    an implausible device time is re-timed (``retimed``), a value the wire contract cannot
    carry is refused on its own (``refused``). None of them is a driver fault.
    """

    invalid: int = 0
    retimed: int = 0
    refused: int = 0


EventSink = Callable[
    [str, list[Reading | WaveformChunk], datetime],
    SinkReport | Awaitable[SinkReport | None] | None,
]
"""``sink(device_id, values, now)``; returns a ``SinkReport`` (or None: nothing to count), or an
awaitable of one: the driver reads on only once it is done (the agent's sink returns when the
values are durable in the outbox, written off the event loop)."""


class Session(Protocol):
    """One open connection to a device, as the supervisor sees it."""

    async def next_events(self) -> list[ParserEvent]:
        """Wait for the next data; return its events (maybe none: a partial frame).

        Raises:
            LinkLost: The connection broke.
        """
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Recovery:
    """What the supervisor does after a session ends with an error of some type.

    Attributes:
        state: The device state to report.
        retry: False for configuration errors: report, log once, wait for stop.
        fresh_start: The link had worked, so restart the backoff from its first step.
        reconnect: Count it in ``DeviceHealth.reconnects``.
    """

    state: DeviceState
    retry: bool = True
    fresh_start: bool = False
    reconnect: bool = False


RECOVERY: Mapping[type[DriverError], Recovery] = {
    DriverError: Recovery(DeviceState.ERROR),
    DriverUnavailable: Recovery(DeviceState.DISCONNECTED),
    LinkLost: Recovery(DeviceState.DISCONNECTED, fresh_start=True, reconnect=True),
    DeviceTimeout: Recovery(DeviceState.NO_SIGNAL, fresh_start=True, reconnect=True),
    UnknownDriver: Recovery(DeviceState.ERROR, retry=False),
    DriverMisconfigured: Recovery(DeviceState.ERROR, retry=False),
}
"""Reconnect policy by error type (the most specific class in the MRO wins)."""


def recovery_for(exc: DriverError) -> Recovery:
    """The policy row for ``exc``'s type."""
    for cls in type(exc).__mro__:
        if cls in RECOVERY:
            return RECOVERY[cls]
    return RECOVERY[DriverError]


def _coalesce(values: list[Reading | WaveformChunk]) -> list[Reading | WaveformChunk]:
    """Merge adjacent chunks of one waveform (several packets read at once) into one."""
    out: list[Reading | WaveformChunk] = []
    for v in values:
        prev = out[-1] if out else None
        if (
            isinstance(v, WaveformChunk)
            and isinstance(prev, WaveformChunk)
            and (prev.code, prev.unit, prev.sample_rate_hz) == (v.code, v.unit, v.sample_rate_hz)
            and v.device_time is None
        ):
            out[-1] = WaveformChunk(
                prev.code,
                prev.unit,
                prev.sample_rate_hz,
                prev.samples + v.samples,
                prev.device_time,
            )
        else:
            out.append(v)
    return out


@dataclass
class DeviceDriver:
    """The supervisor shared by all drivers; subclasses say how to open a session."""

    device: DeviceSection
    sink: EventSink
    clock: Callable[[], datetime]
    stop: StopFlag
    silence_s: float | None = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    low_battery_pct: float = LOW_BATTERY_PCT
    rng: random.Random = field(default_factory=random.Random)
    health: DeviceHealth = field(default_factory=DeviceHealth)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connected_event: threading.Event = field(default_factory=threading.Event)
    #: called (on the driver's loop) whenever ``health`` changed state or detail
    on_change: Callable[[], None] | None = None
    #: on stop, how long a store already under way may take to finish and be counted
    store_settle_s: float = 5.0
    # After a DeviceTimeout, a reopened link is not "connected" until data flows again.
    _quiet: bool = field(default=False, init=False)

    # -- subclass hooks ----------------------------------------------------------------------
    async def open_session(self) -> Session:
        """Open the link and return a session; raise a ``DriverError`` subclass on failure."""
        raise NotImplementedError

    async def release(self) -> None:
        """Release resources that outlive sessions (a BLE central); called once at stop."""

    def silence_limit(self) -> float | None:
        """Seconds without data before ``DeviceTimeout``; None disables the watchdog."""
        return self.silence_s

    # -- supervisor --------------------------------------------------------------------------
    def run(self) -> None:
        """Supervise on a loop of its own until ``stop`` (tools and tests that want a thread;
        the agent runs every driver's :meth:`run_async` on its one loop)."""
        asyncio.run(self.run_async())

    async def run_async(self) -> None:
        """Supervise on the running loop until ``stop`` is set or the task is cancelled."""
        task = asyncio.create_task(self._supervise(), name=f"driver-{self.device.id}")
        stop = asyncio.create_task(self.stop.wait_async(), name=f"stop-{self.device.id}")
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
            stop.cancel()
            await asyncio.gather(task, stop, return_exceptions=True)
            await self.release()

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            try:
                await self._connect_and_stream()
            except DriverError as exc:
                attempt = await self._recover(exc, attempt)
            except Exception as exc:  # a bug must not kill the device loop silently
                log.exception("device %s: driver fault", self.device.id)
                attempt = await self._recover(DriverError(f"driver fault: {exc!r}"), attempt)

    async def _connect_and_stream(self) -> None:
        session = await self.open_session()
        try:
            self.connected_event.set()
            if not self._quiet:
                self._set(DeviceState.CONNECTED, "")
            await self._stream(session)
        finally:
            self.connected_event.clear()
            await session.aclose()

    async def _stream(self, session: Session) -> None:
        limit = self.silence_limit()
        while True:
            try:
                async with asyncio.timeout(limit):
                    events = await session.next_events()
            except TimeoutError:
                raise DeviceTimeout(f"no data for {limit:g} s") from None
            await self._handle(events, self.clock())
            # Every device shares one loop: a link that always has bytes ready (a socket://
            # backlog, line noise, probe-off frames that never reach the sink) must not hold
            # it. One yield per read lets the other devices, stop() and the watchdog run.
            await asyncio.sleep(0)

    async def _recover(self, exc: DriverError, attempt: int) -> int:
        rec = recovery_for(exc)
        with self.lock:
            if rec.reconnect:
                self.health.reconnects += 1
        self._quiet = rec.state is DeviceState.NO_SIGNAL
        self._set(rec.state, str(exc))
        if not rec.retry:
            log.error("device %s: %s (not retried: fix the configuration)", self.device.id, exc)
            await asyncio.Event().wait()  # parked, visibly in error, until stopped
        log.warning("device %s: %s", self.device.id, exc)
        if rec.fresh_start:
            attempt = 0
        await asyncio.sleep(self.backoff.delay(attempt, self.rng))
        return attempt + 1

    # -- events -> sink and health -----------------------------------------------------------
    def _set(self, state: DeviceState, detail: str) -> None:
        with self.lock:
            changed = (self.health.state, self.health.detail) != (state, detail)
            if changed:
                self.health.state, self.health.detail = state, detail
                self.health.changed = True
        if changed and self.on_change is not None:
            self.on_change()

    def _count(
        self, values: list[Reading | WaveformChunk], report: SinkReport | None, now: datetime
    ) -> None:
        with self.lock:
            self.health.readings += len(values)
            self.health.last_reading_at = now
            if report is not None:
                self.health.values_invalid += report.invalid
                self.health.values_retimed += report.retimed
                self.health.values_refused += report.refused
            # The latest device time read, so a clock that just reset shows at once (a
            # naive one, a parser bug, is re-timed by the sink and has no skew).
            dt = next((v.device_time for v in reversed(values) if v.device_time is not None), None)
            if dt is not None and dt.utcoffset() is not None:
                self.health.skew_ms = (now - dt).total_seconds() * 1000

    async def _settled(
        self,
        outcome: Awaitable[SinkReport | None],
        values: list[Reading | WaveformChunk],
        now: datetime,
    ) -> None:
        """Await the sink; if the driver is stopped meanwhile, let a write already under way
        finish (for at most ``store_settle_s``) and count it before stopping. The disk thread
        completes a started write anyway: uncounted, its values would be stored and published
        while the device status said they were never read."""
        store = asyncio.ensure_future(outcome)
        try:
            report = await asyncio.shield(store)
        except asyncio.CancelledError:
            try:
                report = await asyncio.wait_for(store, self.store_settle_s)
            except TimeoutError:
                log.warning("device %s: a store did not finish within %g s of the stop",
                            self.device.id, self.store_settle_s)
            except Exception:  # it failed: nothing was stored, nothing to count
                log.exception("device %s: a store failed while stopping", self.device.id)
            else:
                self._count(values, report, now)
            raise  # the cancellation, always: the driver is stopping
        self._count(values, report, now)

    async def _handle(self, events: list[ParserEvent], now: datetime) -> None:
        values: list[Reading | WaveformChunk] = []
        conditions: dict[DeviceState, list[str]] = {}
        battery_pct: float | None = None
        rejected = 0
        for ev in events:
            if isinstance(ev, Reading | WaveformChunk):
                values.append(ev)
            elif isinstance(ev, DeviceCondition):
                if ev.battery_pct is not None:
                    battery_pct = ev.battery_pct
                if ev.state is not DeviceState.CONNECTED:
                    conditions.setdefault(ev.state, []).append(ev.detail)
            elif isinstance(ev, FrameRejected):
                rejected += 1
                log.info("device %s: frame rejected: %s", self.device.id, ev.reason)
        with self.lock:
            self.health.frames_rejected += rejected
            if battery_pct is not None:
                self.health.battery_pct = battery_pct
            low_pct = self.health.battery_pct
        if values:
            values = _coalesce(values)
            outcome = self.sink(self.device.id, values, now)
            if inspect.isawaitable(outcome):
                await self._settled(outcome, values, now)
            else:
                self._count(values, outcome, now)
        if low_pct is not None and low_pct < self.low_battery_pct:
            conditions.setdefault(DeviceState.LOW_BATTERY, []).append(f"battery {low_pct:g} %")
        if not (values or conditions or battery_pct is not None):
            return  # a partial frame or noise only: nothing new to say about the device
        self._quiet = False
        for state in (DeviceState.ERROR, DeviceState.NO_SIGNAL, DeviceState.LOW_BATTERY):
            if state in conditions:
                details = sorted({d for d in conditions[state] if d})
                self._set(state, ", ".join(details))
                return
        self._set(DeviceState.CONNECTED, "")


class _ByteSession:
    """A byte link feeding a fresh parser (a reconnect never glues old and new bytes)."""

    def __init__(self, link: ByteLink, parser: Parser) -> None:
        self.link, self.parser = link, parser

    async def next_events(self) -> list[ParserEvent]:
        data = await self.link.read(4096)
        if not data:
            raise LinkLost("end of stream")
        return self.parser.feed(data)

    async def aclose(self) -> None:
        await self.link.aclose()


LinkOpener = Callable[[DeviceSection], Awaitable[ByteLink]]


@dataclass
class SerialDriver(DeviceDriver):
    """A byte-stream device: a pyserial URL (or an injected link) plus the driver's parser."""

    open_link: LinkOpener | None = None
    parser_factory: Callable[[], Parser] | None = None

    def baudrate(self) -> int:
        """The configured speed, or the protocol's documented default when none was set."""
        if self.device.baudrate is not None:
            return self.device.baudrate
        return SERIAL_DEFAULT_BAUDRATE.get(self.device.driver, FALLBACK_BAUDRATE)

    async def open_session(self) -> Session:
        parser = (self.parser_factory or (lambda: load_parser(self.device.driver)))()
        if self.open_link is not None:
            link = await self.open_link(self.device)
        elif self.device.port is None:
            raise DriverMisconfigured(f"device {self.device.id} has no port")
        else:
            link = SerialLink.open(self.device.port, baudrate=self.baudrate())
        return _ByteSession(link, parser)


def make_driver(
    device: DeviceSection,
    sink: EventSink,
    clock: Callable[[], datetime],
    stop: StopFlag,
    **options: Any,
) -> DeviceDriver:
    """The driver for ``device`` by its transport (BLE code is imported only when used).

    An unknown driver name still yields a (serial) driver, which reports the error as its
    device status instead of stopping the gateway.
    """
    try:
        transport = transport_of(device.driver)
    except UnknownDriver:
        transport = "serial"
    if transport == "ble":
        from edge_agent.ble.driver import BleDriver

        return BleDriver(device, sink, clock, stop, **options)
    return SerialDriver(device, sink, clock, stop, **options)

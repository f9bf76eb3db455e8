"""Device drivers: a byte link + a sans-IO parser, supervised, one thread per device.

Drivers register by name and import lazily, so a gateway without a BLE stack still runs its
serial drivers. A serial link opens a pyserial URL: ``/dev/ttyUSB0`` on the ward, a serial
device server (``socket://host:port``, ``rfc2217://``) in the hospital, a pty in CI.

The supervisor never dies silently: failing to open (``DriverUnavailable``) and a link breaking
mid-stream (``LinkLost``) are both reported as device status and retried with capped backoff;
a device that stays silent is reported as ``no_signal``.
"""

from __future__ import annotations

import importlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import serial

from edge_agent.protocols.base import (
    DeviceCondition,
    FrameRejected,
    Parser,
    ParserEvent,
    Reading,
    WaveformChunk,
)
from wardwire.config import DeviceSection
from wardwire.models import DeviceState

log = logging.getLogger(__name__)

#: name -> (module, parser class, transport)
DRIVERS: dict[str, tuple[str, str, str]] = {
    "wwmon": ("edge_agent.protocols.wwmon", "WwmonParser", "serial"),
}


class DriverError(Exception):
    """Root of driver errors."""


class DriverUnavailable(DriverError):
    """The link could not be opened (unplugged, wrong path, refused)."""


class LinkLost(DriverError):
    """The link was streaming and broke."""


class UnknownDriver(DriverError):
    """No driver registered under that name."""


def load_parser(name: str) -> Parser:
    """Instantiate the parser of a registered driver (imported on first use)."""
    try:
        module_name, cls_name, _ = DRIVERS[name]
    except KeyError:
        raise UnknownDriver(
            f"unknown driver {name!r}; known: {', '.join(sorted(DRIVERS))}"
        ) from None
    cls = getattr(importlib.import_module(module_name), cls_name)
    parser: Parser = cls()
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
    skew_ms: float | None = None
    changed: bool = True


EventSink = Callable[[str, list[Reading | WaveformChunk], datetime], None]


@dataclass
class SerialDriver:
    """Reads one serial device and hands decoded readings to ``sink`` (the outbox)."""

    device: DeviceSection
    sink: EventSink
    clock: Callable[[], datetime]
    stop: threading.Event
    silence_s: float = 10.0
    backoff_max_s: float = 10.0
    health: DeviceHealth = field(default_factory=DeviceHealth)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _set(self, state: DeviceState, detail: str) -> None:
        with self.lock:
            if (self.health.state, self.health.detail) != (state, detail):
                self.health.state, self.health.detail = state, detail
                self.health.changed = True

    def _open(self) -> serial.SerialBase:
        assert self.device.port is not None
        try:
            return serial.serial_for_url(
                self.device.port, baudrate=self.device.baudrate, timeout=0.25
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DriverUnavailable(f"cannot open {self.device.port}: {exc}") from exc

    def run(self) -> None:
        """Supervise: open, stream, and on any link failure report it and retry."""
        backoff = 0.5
        while not self.stop.is_set():
            try:
                link = self._open()
            except DriverUnavailable as exc:
                self._set(DeviceState.DISCONNECTED, str(exc))
                log.warning("device %s: %s", self.device.id, exc)
                self.stop.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            backoff = 0.5
            self._set(DeviceState.CONNECTED, "")
            try:
                self._stream(link)
            except LinkLost as exc:
                with self.lock:
                    self.health.reconnects += 1
                self._set(DeviceState.DISCONNECTED, str(exc))
                log.warning("device %s: %s", self.device.id, exc)
            finally:
                link.close()

    def _stream(self, link: serial.SerialBase) -> None:
        parser = load_parser(self.device.driver)
        last_data = self.clock()
        while not self.stop.is_set():
            try:
                data = link.read(4096)
            except (serial.SerialException, OSError) as exc:
                raise LinkLost(f"read failed on {self.device.port}: {exc}") from exc
            now = self.clock()
            if not data:
                if (now - last_data).total_seconds() > self.silence_s:
                    self._set(DeviceState.NO_SIGNAL, f"no data for {self.silence_s:.0f} s")
                continue
            last_data = now
            self._handle(parser.feed(data), now)

    def _handle(self, events: list[ParserEvent], now: datetime) -> None:
        values: list[Reading | WaveformChunk] = []
        no_signal: list[str] = []
        for ev in events:
            if isinstance(ev, Reading | WaveformChunk):
                values.append(ev)
            elif isinstance(ev, DeviceCondition):
                if ev.battery_pct is not None:
                    with self.lock:
                        self.health.battery_pct = ev.battery_pct
                if ev.state is DeviceState.NO_SIGNAL:
                    no_signal.append(ev.detail)
                elif ev.state is not DeviceState.CONNECTED:
                    self._set(ev.state, ev.detail)
            elif isinstance(ev, FrameRejected):
                with self.lock:
                    self.health.frames_rejected += 1
                log.info("device %s: frame rejected: %s", self.device.id, ev.reason)
        if values:
            self.sink(self.device.id, values, now)
            with self.lock:
                self.health.readings += len(values)
                self.health.last_reading_at = now
                dt = next((v.device_time for v in values if v.device_time is not None), None)
                if dt is not None:
                    self.health.skew_ms = (now - dt).total_seconds() * 1000
        if no_signal:
            self._set(DeviceState.NO_SIGNAL, "no valid " + ",".join(sorted(set(no_signal))))
        elif values:
            self._set(DeviceState.CONNECTED, "")

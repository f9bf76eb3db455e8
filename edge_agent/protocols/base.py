"""Events that sans-IO device protocol parsers emit, and the parser protocol itself.

A parser is fed bytes exactly as they came off the link (any chunking) and returns events. It
holds no port, clock, logger or task: the driver shell owns I/O and stamps receive times. Line
noise is data (a ``FrameRejected`` event the shell counts), never an exception; buffers are
bounded and the parser resynchronises on the next frame boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from wardwire.models import DeviceState, Quality


@dataclass(frozen=True, slots=True)
class Reading:
    """One numeric value decoded from a device frame.

    ``device_time`` is the device's own timestamp when the protocol carries one; the shell
    falls back to the receive time (and reports the skew) when it is ``None``.
    """

    code: str
    value: float
    unit: str
    device_time: datetime | None = None
    quality: Quality = Quality.VALID


@dataclass(frozen=True, slots=True)
class WaveformChunk:
    """Consecutive samples of one waveform, in arrival order."""

    code: str
    unit: str
    sample_rate_hz: float
    samples: tuple[float, ...]
    device_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceCondition:
    """A device-reported condition (probe off, no signal, low battery...)."""

    state: DeviceState
    detail: str = ""
    battery_pct: float | None = None


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """Bytes that did not form a valid frame (bad checksum, garbage, overlong line)."""

    reason: str
    data: bytes


ParserEvent = Reading | WaveformChunk | DeviceCondition | FrameRejected


class Parser(Protocol):
    """A sans-IO protocol parser."""

    def feed(self, data: bytes) -> list[ParserEvent]:
        """Consume bytes (any chunk size, possibly empty); return the events they complete."""
        ...

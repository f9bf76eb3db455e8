"""Nonin serial Data Format #2: 5-byte binary frames, 75 per second, with SpO2, pulse and pleth.

Specification: Nonin Medical, "OEM III Module Specifications and Technical Information",
section "Serial Data Format #2" (the Xpod and WristOx2 3150 "Specifications and Technical
Information" documents describe the same packet; their Data Format #7 differs only in a 16-bit
pleth). We could not obtain the document itself to cite a revision, so the layout below is the
one that two independent public implementations agree on: the Pufferfish ventilator firmware
(pez-globo/pufferfish-software, Apache-2.0; its unit-test packet is replayed here as a golden
capture) and Oxford IBME's ``NoninPacket``/``NoninFrame`` (WristOx2). Nothing was copied.

Theory of operation
-------------------
A **frame** is 5 bytes, sent 75 times a second::

    byte 1  0x01                 start byte
    byte 2  STATUS               bit 7 always 1; 6 SNSD sensor disconnect; 5 ARTF artifact;
                                 4 OOT out of track; 3 SNSA sensor alarm; 2 RPRF / 1 GPRF
                                 perfusion (both = yellow); 0 SYNC (first frame of a packet)
    byte 3  PLETH                one 8-bit plethysmogram sample
    byte 4  FLOAT                one byte of the packet's data (see below)
    byte 5  CHK                  (byte1 + byte2 + byte3 + byte4) mod 256

A **packet** is 25 frames (1/3 s), starting at the frame whose SYNC bit is set. Its 25 FLOAT
bytes carry, by frame number (1-based): 1-2 HR MSB/LSB (4-beat pulse rate, 9 bits, bits 8-7 in
the MSB), 3 SpO2 (4-beat), 4 firmware revision, 6-7 timer, 8 STAT2, 9 SpO2-D, 10 SpO2 fast,
11 SpO2 beat-to-beat, 14-15 E-HR, 16 E-SpO2, 17 E-SpO2-D, 20-21 HR-D, 22-23 E-HR-D. We report
the 4-beat "formatted for recording" values (frames 1-3): the "-D" display values hold the
last number for 10 s after the finger is removed, which must not reach a chart.

The parser slides byte by byte until 5 bytes form a valid frame (start byte, status bit 7,
checksum), then consumes frame by frame; bytes that are not part of a valid frame come out as
one ``FrameRejected`` when the next valid frame starts (or every ``MAX_JUNK`` bytes). Frames are
gathered into the packet opened by the last SYNC frame; a packet cut short by a new SYNC, and
frames that arrive with no open packet, are rejected. Nothing is buffered beyond one packet.

Per complete packet the parser emits one ``WaveformChunk`` (PLETH, 25 samples at 75 Hz) and:

* PR (/min) and SPO2 (%), unless the device's "no value" markers are present (HR 511, SpO2
  127) or any frame of the packet reports SNSD, OOT or SNSA: then no number, and a
  ``DeviceCondition(NO_SIGNAL)`` naming the cause. Numbers are ``QUESTIONABLE`` when any frame
  reports artifact (ARTF) or red (low) perfusion.
* ``DeviceCondition(LOW_BATTERY)`` when STAT2 bit 0 is set. That bit is documented for the
  battery-powered WristOx2 (per Oxford's implementation); on a host-powered OEM III module we
  expect it to stay 0, which is unverified.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.protocols.base import (
    DeviceCondition,
    FrameRejected,
    ParserEvent,
    Reading,
    WaveformChunk,
)
from wardwire.models import DeviceState, Quality

FRAME_LEN = 5
FRAMES_PER_PACKET = 25
FRAME_RATE_HZ = 75.0
START = 0x01
MAX_JUNK = 256

STATUS_ALWAYS = 0x80
SNSD, ARTF, OOT, SNSA, RPRF, GPRF, SYNC = 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
NO_SIGNAL_BITS: tuple[tuple[int, str], ...] = (
    (SNSD, "sensor disconnected"),
    (OOT, "out of track"),
    (SNSA, "sensor alarm"),
)
HR_MISSING = 511
SPO2_MISSING = 127
STAT2_LOW_BATTERY = 0x01

# 0-based frame indexes of the FLOAT bytes we use.
I_HR_MSB, I_HR_LSB, I_SPO2, I_STAT2 = 0, 1, 2, 7


def checksum(frame: bytes | bytearray) -> int:
    """The CHK byte of a frame: the sum of its first four bytes, modulo 256."""
    return sum(frame[:4]) & 0xFF


def _is_frame(buf: bytearray, i: int) -> bool:
    return (
        buf[i] == START
        and buf[i + 1] & STATUS_ALWAYS != 0
        and sum(buf[i : i + 4]) & 0xFF == buf[i + 4]
    )


class NoninFormat2Parser:
    """Sans-IO parser for Nonin Data Format #2. Feed it bytes; it returns events."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._junk = bytearray()
        self._packet: list[bytes] | None = None  # None: no SYNC seen since the last packet
        self._orphans = bytearray()

    def feed(self, data: bytes) -> list[ParserEvent]:
        """Consume bytes (any chunking); return the events of every completed packet."""
        self._buf += data
        events: list[ParserEvent] = []
        i = 0
        while len(self._buf) - i >= FRAME_LEN:
            if _is_frame(self._buf, i):
                self._flush_junk(events)
                events.extend(self._on_frame(bytes(self._buf[i : i + FRAME_LEN])))
                i += FRAME_LEN
            else:
                self._junk.append(self._buf[i])
                i += 1
                if len(self._junk) >= MAX_JUNK:
                    self._flush_junk(events)
        del self._buf[:i]
        return events

    def _flush_junk(self, events: list[ParserEvent]) -> None:
        if self._junk:
            events.append(FrameRejected("bytes outside a valid frame", bytes(self._junk)))
            self._junk.clear()

    def _on_frame(self, frame: bytes) -> list[ParserEvent]:
        events: list[ParserEvent] = []
        if frame[1] & SYNC:
            if self._orphans:
                events.append(FrameRejected("frames outside a packet", bytes(self._orphans)))
                self._orphans.clear()
            if self._packet:
                events.append(FrameRejected("incomplete packet", b"".join(self._packet)))
            self._packet = [frame]
        elif self._packet is not None:
            self._packet.append(frame)
        else:
            self._orphans += frame
            if len(self._orphans) >= FRAMES_PER_PACKET * FRAME_LEN:
                events.append(FrameRejected("frames outside a packet", bytes(self._orphans)))
                self._orphans.clear()
        if self._packet is not None and len(self._packet) == FRAMES_PER_PACKET:
            events.extend(decode_packet(self._packet))
            self._packet = None
        return events


def decode_packet(frames: Sequence[bytes]) -> list[ParserEvent]:
    """The events of one complete, checksum-valid 25-frame packet (see the module docstring)."""
    status = 0
    for frame in frames:
        status |= frame[1]
    data = [frame[3] for frame in frames]
    events: list[ParserEvent] = [
        WaveformChunk("PLETH", "{unitless}", FRAME_RATE_HZ, tuple(float(f[2]) for f in frames))
    ]
    reasons = [name for bit, name in NO_SIGNAL_BITS if status & bit]
    pulse_rate = ((data[I_HR_MSB] & 0x03) << 7) | (data[I_HR_LSB] & 0x7F)
    spo2 = data[I_SPO2] & 0x7F
    if reasons:
        events.append(DeviceCondition(DeviceState.NO_SIGNAL, detail=", ".join(reasons)))
    else:
        questionable = bool(status & ARTF) or _red(frames)
        quality = Quality.QUESTIONABLE if questionable else Quality.VALID
        for code, value, missing, unit in (
            ("SPO2", spo2, SPO2_MISSING, "%"),
            ("PR", pulse_rate, HR_MISSING, "/min"),
        ):
            if value == missing:
                events.append(DeviceCondition(DeviceState.NO_SIGNAL, detail=f"{code}: no value"))
            else:
                events.append(Reading(code, float(value), unit, quality=quality))
    if data[I_STAT2] & STAT2_LOW_BATTERY:
        events.append(DeviceCondition(DeviceState.LOW_BATTERY, detail="STAT2 low battery"))
    return events


def _red(frames: Sequence[bytes]) -> bool:
    """True when any frame reports red (low) perfusion: RPRF without GPRF."""
    return any(frame[1] & (RPRF | GPRF) == RPRF for frame in frames)


class NoninFormat2Encoder:
    """The parser's inverse, used by the simulated oximeter: one packet (25 frames) at a time."""

    def encode_packet(
        self,
        *,
        spo2: int | None,
        pulse_rate: int | None,
        pleth: Sequence[int],
        status: int = GPRF,
        low_battery: bool = False,
        revision: int = 0,
    ) -> bytes:
        """Encode one 125-byte packet.

        Args:
            spo2: 0-100, or None for the device's "no value" marker (127).
            pulse_rate: 0-321, or None for the "no value" marker (511).
            pleth: 25 samples, 0-255.
            status: STATUS bits 1-6 to set in every frame (SYNC and bit 7 are added here).
            low_battery: Set STAT2 bit 0.
            revision: Firmware revision byte (frame 4), 0-127.

        Raises:
            ValueError: A value does not fit its field.
        """
        if len(pleth) != FRAMES_PER_PACKET or not all(0 <= s <= 255 for s in pleth):
            raise ValueError("pleth must be 25 samples of 0-255")
        hr = HR_MISSING if pulse_rate is None else pulse_rate
        sat = SPO2_MISSING if spo2 is None else spo2
        if not 0 <= hr <= HR_MISSING or not 0 <= sat <= SPO2_MISSING or not 0 <= revision < 128:
            raise ValueError("value out of range for its field")
        data = [0] * FRAMES_PER_PACKET
        data[I_HR_MSB], data[I_HR_LSB], data[I_SPO2] = hr >> 7, hr & 0x7F, sat
        data[3] = revision
        data[I_STAT2] = STAT2_LOW_BATTERY if low_battery else 0
        out = bytearray()
        for n in range(FRAMES_PER_PACKET):
            stat = STATUS_ALWAYS | (status & 0x7E) | (SYNC if n == 0 else 0)
            frame = bytes([START, stat, pleth[n], data[n]])
            out += frame + bytes([checksum(frame)])
        return bytes(out)

    def encode(self, readings: list[Reading]) -> bytes:
        """The parser's inverse: one packet carrying the SPO2/PR readings and a flat pleth."""
        values = {r.code: round(r.value) for r in readings}
        return self.encode_packet(
            spo2=values.get("SPO2"), pulse_rate=values.get("PR"), pleth=[128] * FRAMES_PER_PACKET
        )

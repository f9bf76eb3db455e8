"""Masimo "ASCII 1" serial output (Radical-5/-7, Rad-8, Rad-87): one text record per second.

Specifications:
    * Masimo Rad-87 Pulse CO-Oximeter Operator's Manual, chapter 7 "Serial Interface
      Specifications": ASCII 1 is the default text output, RS-232 9600 baud 8N1.
    * Masimo Rad-8 Signal Extraction Pulse Oximeter Operator's Manual, section 4 "Trend data
      format": the exception bit table (001 No Sensor ... 800 Masimo SET) and sample records.
    * Example records: the Radical-7 Service Manual rev. A (as quoted in
      remkolems/masimo-datacapture) and MD PnP OpenICE ``poxrad_discrete.h`` (Radical-5 and
      Radical-7 examples, 1 Hz output, and the alarm and 24-bit exception tables). All four
      examples are replayed as a golden capture. Masimo's own Radical-7 operator's manual was
      not available to us; the alarm bits in particular are known only from MD PnP's table.

Record (fields separated by single spaces, terminated by CR LF)::

    MM/DD/YY HH:MM:SS [SN=0123456789] SPO2=098% BPM=072 PI=02.34% [SPCO=.. SPMET=.. ...]
        ALARM=<hex> EXC=<hex>

A value made of dashes (``SPO2=---%``, ``PI=--.--%``) is the device's "no value" marker and
becomes a ``DeviceCondition(NO_SIGNAL)`` naming the code, never a number. Fields wardwire has
no parameter for (SN, SPCO, SPMET, SPHB, DESAT, PIDELTA, PVI...) are skipped unvalidated.

EXC (exceptions) decides what the numbers mean:

* *no measurement* bits (no sensor, sensor off, pulse search, defective/unrecognised sensor or
  cable...): the numbers on the line are not a patient's (the published examples show 000,
  and even stale values, beside "sensor off"), so no Readings are emitted, only one
  DeviceCondition per state naming the bits.
* *degraded* bits (low perfusion, interference, ambient light, low signal IQ): Readings are
  emitted with ``Quality.QUESTIONABLE``.

ALARM bit 0x40 (low battery) becomes ``DeviceCondition(LOW_BATTERY)``; the limit-violation alarm
bits are ignored on purpose: alarming is wardwatch's job, from the numbers.

The record's date and time are the device clock with no zone: ``device_time`` is filled only
when the caller passes the zone the monitor is set to (``device_tz``).

Resynchronisation: a record starts at its date-time stamp, so bytes before the last stamp on a
line are rejected as noise and the record after them is still parsed. A line longer than
``MAX_LINE`` is rejected in pieces, cut just before a stamp when the window holds one, so a
burst of noise without a newline costs only itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from edge_agent.protocols.base import DeviceCondition, FrameRejected, ParserEvent, Reading
from wardwire.models import DeviceState, Quality

MAX_LINE = 256
STAMP = re.compile(rb"(\d\d)/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)")
_STAMP_LEN = 17
_FIELD = re.compile(r"([A-Z][A-Z0-9]*)=(\S*)")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_DASHES = re.compile(r"[+-]?-+(?:\.-+)?")
_HEX = re.compile(r"[0-9A-Fa-f]{1,8}")

# Masimo field -> (wardwire code, UCUM unit).
FIELDS: dict[str, tuple[str, str]] = {
    "SPO2": ("SPO2", "%"),
    "BPM": ("PR", "/min"),
    "PI": ("PI", "%"),
}

ALARM_LOW_BATTERY = 0x0040

# (EXC bit, name, DeviceState for "no measurement", or None for "degraded").
EXCEPTION_BITS: tuple[tuple[int, str, DeviceState | None], ...] = (
    (0x000001, "no sensor", DeviceState.NO_SIGNAL),
    (0x000002, "defective sensor", DeviceState.ERROR),
    (0x000004, "low perfusion", None),
    (0x000008, "pulse search", DeviceState.NO_SIGNAL),
    (0x000010, "interference", None),
    (0x000020, "sensor off", DeviceState.NO_SIGNAL),
    (0x000040, "ambient light", None),
    (0x000080, "unrecognized sensor", DeviceState.ERROR),
    (0x000100, "incompatible sensor", DeviceState.ERROR),
    (0x000400, "low signal IQ", None),
    (0x001000, "no cable connected", DeviceState.NO_SIGNAL),
    (0x002000, "cable life expired", DeviceState.ERROR),
    (0x004000, "incompatible cable", DeviceState.ERROR),
    (0x008000, "unrecognized cable", DeviceState.ERROR),
    (0x010000, "defective cable", DeviceState.ERROR),
    (0x020000, "sensor calibrating", DeviceState.NO_SIGNAL),
    (0x040000, "sensor life expired", DeviceState.ERROR),
    (0x080000, "emitter temperature out of range", DeviceState.ERROR),
    (0x100000, "sensor current limit exceeded", DeviceState.ERROR),
)
EXC_MASIMO_SET = 0x000800


class MasimoAscii1Parser:
    """Sans-IO parser for Masimo ASCII 1 records. Feed it bytes; it returns events.

    Args:
        device_tz: The zone the monitor's clock is set to, or None to leave ``device_time``
            empty (the shell then stamps the receive time).
    """

    def __init__(self, device_tz: tzinfo | None = None) -> None:
        self._buf = bytearray()
        self._tz = device_tz

    def feed(self, data: bytes) -> list[ParserEvent]:
        """Consume bytes (any chunking); return the events of every complete line."""
        self._buf += data
        events: list[ParserEvent] = []
        while True:
            end = self._buf.find(b"\n", 0, MAX_LINE + 1)
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                events.extend(parse_line(line, self._tz))
            elif len(self._buf) > MAX_LINE:
                cut = _overflow_cut(self._buf)
                events.append(FrameRejected("line too long", bytes(self._buf[:cut])))
                del self._buf[:cut]
            else:
                return events


def _overflow_cut(buf: bytearray) -> int:
    """Where to cut a window of MAX_LINE+1 bytes with no newline.

    Just before the last stamp that is not at the very start (noise followed by a record), or
    else keep the last ``_STAMP_LEN - 1`` bytes, which may hold the beginning of a stamp.
    """
    starts = [p for p in _stamp_starts(bytes(buf[: MAX_LINE + 1])) if p > 0]
    return starts[-1] if starts else MAX_LINE + 1 - (_STAMP_LEN - 1)


def _stamp_starts(text: bytes) -> list[int]:
    """Start of every stamp in ``text``, overlapping ones included.

    Overlaps matter: noise ending in ``01/01/01 01:01:`` followed by a record ``12/01/05 ...``
    reads as a stamp ``01/01/01 01:01:12`` that swallows the record's first digits, so the
    record's own (overlapping, later) stamp must still be found.
    """
    starts: list[int] = []
    match = STAMP.search(text)
    while match is not None:
        starts.append(match.start())
        match = STAMP.search(text, match.start() + 1)
    return starts


def parse_line(line: bytes, device_tz: tzinfo | None = None) -> list[ParserEvent]:
    """The events of one line (terminator included); see the module docstring."""
    text = line.rstrip(b"\r\n")
    if not text.strip():
        return []
    starts = _stamp_starts(text)
    if not starts:
        return [FrameRejected("no record stamp", line)]
    events: list[ParserEvent] = []
    start = starts[-1]
    if start > 0:
        events.append(FrameRejected("bytes outside a frame", text[:start]))
    record = text[start:]
    try:
        body = record[_STAMP_LEN:].decode("ascii")
    except UnicodeDecodeError:
        return [*events, FrameRejected("non-ASCII record", record)]
    tokens = body.split()
    fields = {}
    for token in tokens:
        match = _FIELD.fullmatch(token)
        if match is None:
            return [*events, FrameRejected(f"malformed field {token!r}", record)]
        fields[match[1]] = match[2]
    try:
        when = _device_time(record[:_STAMP_LEN], device_tz)
    except ValueError:
        return [*events, FrameRejected("bad date/time", record)]
    decoded = _decode_fields(fields, when)
    if isinstance(decoded, str):
        return [*events, FrameRejected(decoded, record)]
    return events + decoded


def _device_time(stamp: bytes, tz: tzinfo | None) -> datetime | None:
    match = STAMP.fullmatch(stamp)
    assert match is not None  # callers pass a span that STAMP matched
    month, day, year, hour, minute, second = (int(g) for g in match.groups())
    local = datetime(2000 + year, month, day, hour, minute, second, tzinfo=tz or UTC)
    return local.astimezone(UTC) if tz is not None else None


def _decode_fields(fields: dict[str, str], when: datetime | None) -> list[ParserEvent] | str:
    """Events of a record's fields, or the reason to reject it."""
    if not any(name in fields for name in FIELDS):
        return "no SPO2, BPM or PI field"
    flags: dict[str, int] = {}
    for name in ("ALARM", "EXC"):
        raw = fields.get(name, "0")
        if _HEX.fullmatch(raw) is None:
            return f"bad {name} value {raw!r}"
        flags[name] = int(raw, 16)
    blocking: dict[DeviceState, list[str]] = {}
    degraded = False
    for bit, name, state in EXCEPTION_BITS:
        if flags["EXC"] & bit:
            if state is None:
                degraded = True
            else:
                blocking.setdefault(state, []).append(name)
    quality = Quality.QUESTIONABLE if degraded else Quality.VALID
    measured = not blocking  # no "no measurement" exception: the numbers are the patient's
    readings: list[ParserEvent] = []
    for name, (code, unit) in FIELDS.items():
        if name not in fields:
            continue
        raw = fields[name].removesuffix("%")
        if _DASHES.fullmatch(raw):
            blocking.setdefault(DeviceState.NO_SIGNAL, []).append(f"{code}: no value")
        elif _NUMBER.fullmatch(raw):
            if measured:
                readings.append(Reading(code, float(raw), unit, when, quality))
        else:
            return f"bad {name} value {fields[name]!r}"
    events = readings + [
        DeviceCondition(state, ", ".join(names)) for state, names in blocking.items()
    ]
    if flags["ALARM"] & ALARM_LOW_BATTERY:
        events.append(DeviceCondition(DeviceState.LOW_BATTERY, "low battery"))
    return events


class MasimoAscii1Encoder:
    """The parser's inverse, used by the simulated oximeter.

    Args:
        layout: ``"radical7"`` (with SN and the SpCO/SpMet/DESAT/PIDELTA/PVI fields, sent as
            dashes, 4-digit ALARM and 6-digit EXC) or ``"radical5"`` (the short record).
        serial_number: The 10-character SN field of the ``radical7`` layout.
    """

    def __init__(self, layout: str = "radical7", serial_number: str = "0000000000") -> None:
        if layout not in ("radical7", "radical5"):
            raise ValueError(f"unknown layout {layout!r}")
        self._layout = layout
        self._sn = serial_number

    def encode_line(
        self,
        at: datetime,
        *,
        spo2: int | None,
        pulse_rate: int | None,
        pi: float | None,
        alarm: int = 0,
        exceptions: int = EXC_MASIMO_SET,
    ) -> bytes:
        """One record. ``at`` is rendered as the device clock shows it (its own wall time).

        None values are sent as the device's dash markers. Raises ``ValueError`` when a value
        does not fit its fixed-width field.
        """
        if spo2 is not None and not 0 <= spo2 <= 100:
            raise ValueError("spo2 must be 0-100")
        if pulse_rate is not None and not 0 <= pulse_rate <= 999:
            raise ValueError("pulse_rate must be 0-999")
        if pi is not None and not 0 <= pi < 100:
            raise ValueError("pi must be 0-99.99")
        parts = [at.strftime("%m/%d/%y %H:%M:%S")]
        if self._layout == "radical7":
            parts.append(f"SN={self._sn}")
        parts.append("SPO2=---%" if spo2 is None else f"SPO2={spo2:03d}%")
        parts.append("BPM=---" if pulse_rate is None else f"BPM={pulse_rate:03d}")
        parts.append("PI=--.--%" if pi is None else f"PI={pi:05.2f}%")
        if self._layout == "radical7":
            parts += ["SPCO=--.-%", "SPMET=--.-%", "DESAT=--", "PIDELTA=+--", "PVI=---"]
            parts += [f"ALARM={alarm:04X}", f"EXC={exceptions:06X}"]
        else:
            parts += [f"ALARM={alarm:02X}", f"EXC={exceptions:03X}"]
        return (" ".join(parts) + "\r\n").encode("ascii")

    def encode(self, readings: list[Reading]) -> bytes:
        """The parser's inverse: one record with the SPO2/PR/PI readings (others dashed).

        Readings must carry ``device_time`` (the record needs a clock); it is rendered in UTC.
        """
        values = {r.code: r.value for r in readings}
        times = [r.device_time for r in readings if r.device_time is not None]
        if not times:
            raise ValueError("readings need a device_time")
        spo2, pr = values.get("SPO2"), values.get("PR")
        return self.encode_line(
            times[0].astimezone(UTC),
            spo2=None if spo2 is None else round(spo2),
            pulse_rate=None if pr is None else round(pr),
            pi=values.get("PI"),
        )

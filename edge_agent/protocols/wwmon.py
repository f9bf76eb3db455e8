"""WWMON: the line-oriented ASCII export protocol of wardwatch's simulated bedside monitor.

This is the project's own documented protocol (docs/protocols/wwmon.md), shaped like the
NMEA 0183 sentences many bedside devices borrow: printable ASCII, one record per line, an XOR
checksum, so a gateway can resynchronise on any line boundary. Real vendor protocols live in
sibling modules; this one exists so the walking skeleton and CI have a device whose every
byte we control.

Frame::

    $WWMON,<device time ms since epoch>,<CODE>=<value>[,<CODE>=<value>...]*<XX>\\r\\n

* ``XX`` is the XOR of every byte strictly between ``$`` and ``*``, two upper-case hex digits.
* ``value`` is a decimal number, or ``---`` when the device has no valid value (probe off,
  searching): that yields a ``DeviceCondition(no_signal)`` naming the code, never a number.
* Codes are wardwire parameter codes (``HR``, ``RR``, ``SPO2``, ``TEMP``, ``NIBP_SYS``...).
* A line longer than ``MAX_LINE`` bytes, a bad checksum, an unknown code or an unparsable value
  rejects the whole frame (``FrameRejected``); the parser drops to the next ``$``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edge_agent.protocols.base import DeviceCondition, FrameRejected, ParserEvent, Reading
from wardwire.models import DeviceState
from wardwire.params import BY_CODE, ParamKind

MAX_LINE = 512
#: longest frame in bytes: MAX_LINE characters ('$' to checksum) + CR LF
MAX_FRAME = MAX_LINE + 2
TALKER = b"WWMON"


def checksum(body: bytes) -> int:
    """NMEA-style XOR of ``body`` (the bytes between ``$`` and ``*``)."""
    value = 0
    for b in body:
        value ^= b
    return value


class WwmonParser:
    """Sans-IO parser for WWMON lines. Feed it bytes; it returns events."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False  # inside an overlong line: drop bytes up to its end

    def feed(self, data: bytes) -> list[ParserEvent]:
        """Consume bytes; return the events of every complete line.

        Garbage is reported line by line (or in ``MAX_LINE`` pieces when it has no line
        break), so the events depend only on the byte stream, never on how it was chunked.
        """
        self._buf += data
        events: list[ParserEvent] = []
        while True:
            if self._skipping and not self._skip():
                return events
            start = self._buf.find(b"$")
            self._reject_garbage(start if start >= 0 else len(self._buf), events, start >= 0)
            if start < 0:
                return events
            # Every decision below is taken at the first byte that makes it certain, so the
            # outcome never depends on chunking. A frame is at most MAX_FRAME bytes with LF.
            window = self._buf[1:MAX_FRAME]
            end = window.find(b"\n")
            second = window.find(b"$")
            if second >= 0 and (end < 0 or second < end):
                # A '$' before the line ended: the first frame was cut short; resync there.
                events.append(FrameRejected("truncated frame", bytes(self._buf[: second + 1])))
                del self._buf[: second + 1]
                continue
            if end >= 0:
                line = bytes(self._buf[: end + 2])
                del self._buf[: end + 2]
                events.extend(_parse_line(line))
                continue
            if len(self._buf) >= MAX_FRAME:
                events.append(FrameRejected("line too long", bytes(self._buf[:MAX_LINE])))
                del self._buf[:MAX_FRAME]
                self._skipping = True
                continue
            return events

    def _skip(self) -> bool:
        """Drop the rest of an overlong line (up to its LF, or a new frame's '$').

        Returns True once the line is over (parsing resumes), False if more bytes are needed.
        """
        nl, dollar = self._buf.find(b"\n"), self._buf.find(b"$")
        if dollar >= 0 and (nl < 0 or dollar < nl):
            del self._buf[:dollar]
        elif nl >= 0:
            del self._buf[: nl + 1]
        else:
            self._buf.clear()
            return False
        self._skipping = False
        return True

    def _reject_garbage(self, region: int, events: list[ParserEvent], frame_follows: bool) -> None:
        """Report and drop the bytes before a frame start (``region`` bytes of the buffer)."""
        while region > 0:
            nl = self._buf.find(b"\n", 0, region)
            if nl >= 0:
                cut = nl + 1
            elif region > MAX_LINE:
                cut = MAX_LINE
            elif frame_follows:
                cut = region
            else:
                return  # may still be followed by more garbage of the same line
            seg = bytes(self._buf[:cut])
            del self._buf[:cut]
            region -= cut
            if seg.strip(b"\r\n"):
                events.append(FrameRejected("bytes outside a frame", seg))


def _parse_line(line: bytes) -> list[ParserEvent]:
    text = line.rstrip(b"\r\n")
    star = text.rfind(b"*")
    if star < 0 or len(text) - star != 3:
        return [FrameRejected("no checksum", line)]
    body = text[1:star]
    try:
        want = int(text[star + 1 :], 16)
    except ValueError:
        return [FrameRejected("bad checksum digits", line)]
    if checksum(body) != want:
        return [FrameRejected("checksum mismatch", line)]
    fields = body.split(b",")
    if fields[0] != TALKER or len(fields) < 3:
        return [FrameRejected("not a WWMON record", line)]
    try:
        ms = int(fields[1])
        device_time = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return [FrameRejected("bad device time", line)]
    events: list[ParserEvent] = []
    for field in fields[2:]:
        code_b, sep, value_b = field.partition(b"=")
        code = code_b.decode("ascii", "replace")
        param = BY_CODE.get(code)
        if not sep or param is None or param.kind is not ParamKind.NUMERIC:
            return [FrameRejected(f"unknown field {code!r}", line)]
        if value_b == b"---":
            events.append(DeviceCondition(DeviceState.NO_SIGNAL, detail=code))
            continue
        try:
            value = float(value_b)
        except ValueError:
            return [FrameRejected(f"bad value for {code}", line)]
        if value != value or value in (float("inf"), float("-inf")):
            return [FrameRejected(f"bad value for {code}", line)]
        events.append(Reading(code, value, param.ucum, device_time))
    return events


class WwmonEncoder:
    """The parser's inverse, used by the simulated monitor."""

    def encode_frame(self, device_time: datetime, values: dict[str, float | None]) -> bytes:
        """One WWMON line; ``None`` values are sent as ``---`` (no signal)."""
        ms = round(device_time.timestamp() * 1000)
        parts = [TALKER, str(ms).encode()]
        for code, value in values.items():
            text = b"---" if value is None else _fmt(value).encode()
            parts.append(code.encode() + b"=" + text)
        body = b",".join(parts)
        return b"$" + body + b"*" + f"{checksum(body):02X}".encode() + b"\r\n"


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"

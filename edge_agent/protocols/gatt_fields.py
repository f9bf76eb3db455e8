"""Field readers and writers shared by the GATT characteristic codecs.

Bluetooth health characteristics are little-endian records: a flags octet saying which optional
fields follow, then fixed fields in a fixed order. The codecs in ``gatt_*.py`` read them with a
:class:`FieldReader`, which raises :class:`MalformedValue` on a short value; each public
``decode_*`` function catches that one exception and returns ``[FrameRejected(...)]``, so a
decoder never raises on bytes from the air.

References:
    * Bluetooth SIG, GATT Specification Supplement (GSS): the data types uint8, uint16, uint24
      and medfloat16/32 (all little-endian), and the "Date Time" characteristic (0x2A08).
      (Section numbers are not given: the GSS is renumbered with every release.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from edge_agent.protocols.base import DeviceCondition, ParserEvent, Reading
from edge_agent.protocols.ieee11073 import (
    MedFloat,
    SpecialValue,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from wardwire.models import DeviceState, Quality
from wardwire.params import parameter


class MalformedValue(ValueError):
    """A characteristic value that does not match its specification (caught by the decoders)."""


@dataclass(frozen=True, slots=True)
class DateTime:
    """GSS "Date Time" (0x2A08): the device's wall clock, with no time zone.

    A zero year, month or day means "not known" (GSS "Date Time"); :meth:`to_utc` then returns None.
    """

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int

    def to_utc(self, tz: tzinfo | None) -> datetime | None:
        """The instant, given the zone the device clock is set to; None when unknown.

        The value carries no zone, so without ``tz`` (which only the deployment knows) it cannot
        become an aware instant; the shell then stamps the receive time instead.
        """
        if tz is None or 0 in (self.year, self.month, self.day):
            return None
        local = datetime(
            self.year, self.month, self.day, self.hours, self.minutes, self.seconds, tzinfo=tz
        )
        return local.astimezone(UTC)


class FieldReader:
    """Reads little-endian fields from a characteristic value, front to back."""

    def __init__(self, value: bytes) -> None:
        self._value = bytes(value)
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Octets not read yet."""
        return len(self._value) - self._pos

    def _take(self, n: int, what: str) -> bytes:
        if self.remaining < n:
            raise MalformedValue(f"value too short for {what}")
        chunk = self._value[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def uint8(self, what: str) -> int:
        return self._take(1, what)[0]

    def uint16(self, what: str) -> int:
        return int.from_bytes(self._take(2, what), "little")

    def uint24(self, what: str) -> int:
        return int.from_bytes(self._take(3, what), "little")

    def sfloat(self, what: str) -> MedFloat:
        return decode_sfloat(self.uint16(what))

    def float32(self, what: str) -> MedFloat:
        return decode_float(int.from_bytes(self._take(4, what), "little"))

    def date_time(self, what: str) -> DateTime:
        year, month, day, hours, minutes, seconds = struct.unpack("<HBBBBB", self._take(7, what))
        stamp = DateTime(year, month, day, hours, minutes, seconds)
        ranges = [(year, 1582, 9999), (month, 1, 12), (day, 1, 31)]
        if any(v and not lo <= v <= hi for v, lo, hi in ranges):
            raise MalformedValue(f"{what}: date out of range")
        if hours > 23 or minutes > 59 or seconds > 59:
            raise MalformedValue(f"{what}: time out of range")
        if 0 not in (year, month, day):
            try:
                datetime(year, month, day, tzinfo=UTC)
            except ValueError as exc:
                raise MalformedValue(f"{what}: no such date") from exc
        return stamp


def pack_uint16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def pack_uint24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def pack_sfloat(value: MedFloat) -> bytes:
    return pack_uint16(encode_sfloat(value))


def pack_float(value: MedFloat) -> bytes:
    return encode_float(value).to_bytes(4, "little")


def pack_date_time(stamp: DateTime) -> bytes:
    return struct.pack(
        "<HBBBBB", stamp.year, stamp.month, stamp.day, stamp.hours, stamp.minutes, stamp.seconds
    )


def value_events(
    code: str,
    value: MedFloat,
    *,
    device_time: datetime | None = None,
    quality: Quality = Quality.VALID,
    scale: float = 1.0,
    offset: float = 0.0,
) -> list[ParserEvent]:
    """Events for one measured field: a Reading, or a NO_SIGNAL condition for a special value.

    ``scale``/``offset`` convert the device's unit to the parameter's UCUM unit
    (``value * scale + offset``); the result is rounded to 3 decimals so that unit conversion
    does not invent precision (36.99999999 from 98.6 degF).
    """
    if isinstance(value, SpecialValue):
        return [DeviceCondition(DeviceState.NO_SIGNAL, detail=f"{code}: {value.value}")]
    converted = value if scale == 1.0 and offset == 0.0 else round(value * scale + offset, 3)
    return [Reading(code, converted, parameter(code).ucum, device_time, quality)]

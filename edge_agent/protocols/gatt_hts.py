"""Temperature Measurement (0x2A1C) of the Health Thermometer Service (0x1809).

Value layout (Bluetooth SIG Health Thermometer Service 1.0, section 3.1, and the GATT
Specification Supplement (GSS) entries "Temperature Measurement" and "Temperature Type")::

    flags        uint8       bit 0: 0 = Celsius, 1 = Fahrenheit
    temperature  FLOAT       (IEEE 11073 32-bit, in the unit of bit 0)
    timestamp    DateTime    optional, flags bit 1
    type         uint8       optional, flags bit 2: where on the body (1 armpit ... 9 tympanum)

Events: one TEMP ``Reading``, always in ``Cel`` whatever the device's unit, because PEWS bands
are in Celsius and a Fahrenheit value scored as Celsius would be a silent fever. A special FLOAT
(NaN...) yields a NO_SIGNAL condition. The timestamp becomes ``device_time`` only when the
caller says which zone the thermometer's clock is in (``tz``). The temperature type is decoded
but not emitted: wardwire has no body-site field yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from enum import IntEnum

from edge_agent.protocols.base import FrameRejected, ParserEvent
from edge_agent.protocols.gatt_fields import (
    DateTime,
    FieldReader,
    MalformedValue,
    pack_date_time,
    pack_float,
    value_events,
)
from edge_agent.protocols.ieee11073 import MedFloat

HEALTH_THERMOMETER_SERVICE = "1809"
TEMPERATURE_MEASUREMENT = "2A1C"

FLAG_FAHRENHEIT = 0x01
FLAG_TIMESTAMP = 0x02
FLAG_TEMPERATURE_TYPE = 0x04


class TemperatureType(IntEnum):
    """GSS "Temperature Type" (0x2A1D); 0 and 10-255 are reserved."""

    ARMPIT = 1
    BODY = 2
    EAR = 3
    FINGER = 4
    GASTROINTESTINAL_TRACT = 5
    MOUTH = 6
    RECTUM = 7
    TOE = 8
    TYMPANUM = 9


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    """One decoded 0x2A1C value, in the device's own unit.

    ``temperature_type`` is the raw octet (reserved values are kept, not rejected: the site is
    informative and an unknown one does not make the temperature wrong).
    """

    temperature: MedFloat
    fahrenheit: bool = False
    timestamp: DateTime | None = None
    temperature_type: int | None = None


def parse_temperature_measurement(value: bytes) -> TemperatureMeasurement:
    """Parse a 0x2A1C value. Raises :class:`MalformedValue` if it is short or too long."""
    r = FieldReader(value)
    flags = r.uint8("flags")
    temperature = r.float32("temperature")
    stamp = r.date_time("timestamp") if flags & FLAG_TIMESTAMP else None
    kind = r.uint8("temperature type") if flags & FLAG_TEMPERATURE_TYPE else None
    if r.remaining:
        raise MalformedValue("trailing octets after the last field")
    return TemperatureMeasurement(temperature, bool(flags & FLAG_FAHRENHEIT), stamp, kind)


def encode_temperature_measurement(m: TemperatureMeasurement) -> bytes:
    """Encode a 0x2A1C value; the inverse of :func:`parse_temperature_measurement`."""
    flags = FLAG_FAHRENHEIT if m.fahrenheit else 0
    body = bytearray(pack_float(m.temperature))
    if m.timestamp is not None:
        flags |= FLAG_TIMESTAMP
        body += pack_date_time(m.timestamp)
    if m.temperature_type is not None:
        flags |= FLAG_TEMPERATURE_TYPE
        body.append(m.temperature_type)
    return bytes([flags]) + bytes(body)


def temperature_events(m: TemperatureMeasurement, *, tz: tzinfo | None = None) -> list[ParserEvent]:
    """The wardwatch events of a parsed measurement: TEMP in Cel (see the module docstring)."""
    when = m.timestamp.to_utc(tz) if m.timestamp is not None else None
    if m.fahrenheit:
        return value_events("TEMP", m.temperature, device_time=when, scale=5 / 9, offset=-160 / 9)
    return value_events("TEMP", m.temperature, device_time=when)


def decode_temperature_measurement(value: bytes, *, tz: tzinfo | None = None) -> list[ParserEvent]:
    """Decode a 0x2A1C value into events; never raises (``[FrameRejected]`` if malformed).

    Args:
        value: The characteristic value as indicated.
        tz: The zone the thermometer's clock is set to; without it ``device_time`` is None.
    """
    try:
        return temperature_events(parse_temperature_measurement(value), tz=tz)
    except MalformedValue as exc:
        return [FrameRejected(f"{TEMPERATURE_MEASUREMENT}: {exc}", bytes(value))]

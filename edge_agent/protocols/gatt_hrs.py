"""Heart Rate Measurement (0x2A37) of the Heart Rate Service (0x180D): decoder and encoder.

Value layout (Bluetooth SIG Heart Rate Service 1.0, section 3.1 "Heart Rate Measurement", and
the GATT Specification Supplement (GSS) entry "Heart Rate Measurement")::

    flags  uint8
    hr     uint8 | uint16        flags bit 0: 0 = uint8, 1 = uint16 (beats per minute)
    ee     uint16    optional    flags bit 3: Energy Expended, kilojoules since reset
    rr     uint16*   optional    flags bit 4: one or more RR-intervals, units of 1/1024 s

Flags bits 1-2 are the Sensor Contact Status: bit 2 says the sensor *supports* contact
detection, bit 1 says contact *is* detected. Bit 1 means nothing without bit 2.

Events: an HR ``Reading`` ("/min"), unless the sensor supports contact detection and reports no
contact: then the number is the strap's guess with nothing under it, so the decoder emits
``DeviceCondition(NO_SIGNAL, "sensor contact not detected")`` and no HR. Energy expended and
RR-intervals are decoded into :class:`HeartRateMeasurement` but have no wardwire parameter yet,
so they produce no events. RR-intervals fill the rest of the value, so an odd trailing octet is
malformed; RFU flag bits (5-7) are ignored as the spec requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from edge_agent.protocols.base import DeviceCondition, FrameRejected, ParserEvent, Reading
from edge_agent.protocols.gatt_fields import FieldReader, MalformedValue, pack_uint16
from wardwire.models import DeviceState

HEART_RATE_SERVICE = "180D"
HEART_RATE_MEASUREMENT = "2A37"

FLAG_HR_UINT16 = 0x01
FLAG_CONTACT_DETECTED = 0x02
FLAG_CONTACT_SUPPORTED = 0x04
FLAG_ENERGY_EXPENDED = 0x08
FLAG_RR_INTERVALS = 0x10

RR_UNITS_PER_SECOND = 1024


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded 0x2A37 value, field for field.

    ``contact_detected`` is None when the sensor does not support contact detection.
    ``rr_intervals`` are raw 1/1024 s units (keep them exact; seconds = units / 1024).
    ``wide`` records the uint16 HR format, which a sensor may use even for values < 256.
    """

    heart_rate: int
    contact_detected: bool | None = None
    energy_expended_kj: int | None = None
    rr_intervals: tuple[int, ...] | None = None
    wide: bool = False


def parse_heart_rate_measurement(value: bytes) -> HeartRateMeasurement:
    """Parse a 0x2A37 value into its fields.

    Raises:
        MalformedValue: The value is shorter than its flags promise, or has an odd octet
            where RR-intervals should be.
    """
    reader = FieldReader(value)
    flags = reader.uint8("flags")
    wide = bool(flags & FLAG_HR_UINT16)
    heart_rate = reader.uint16("heart rate") if wide else reader.uint8("heart rate")
    contact: bool | None = None
    if flags & FLAG_CONTACT_SUPPORTED:
        contact = bool(flags & FLAG_CONTACT_DETECTED)
    energy = reader.uint16("energy expended") if flags & FLAG_ENERGY_EXPENDED else None
    rr: tuple[int, ...] | None = None
    if flags & FLAG_RR_INTERVALS:
        if reader.remaining == 0 or reader.remaining % 2:
            raise MalformedValue("RR-interval field must hold one or more uint16")
        rr = tuple(reader.uint16("RR-interval") for _ in range(reader.remaining // 2))
    elif reader.remaining:
        raise MalformedValue("trailing octets after the last field")
    return HeartRateMeasurement(heart_rate, contact, energy, rr, wide)


def encode_heart_rate_measurement(m: HeartRateMeasurement) -> bytes:
    """Encode a 0x2A37 value; the inverse of :func:`parse_heart_rate_measurement`.

    Raises:
        ValueError: A field does not fit its format (HR > 255 without ``wide``...).
    """
    flags = 0
    body = bytearray()
    if m.wide:
        flags |= FLAG_HR_UINT16
        body += pack_uint16(m.heart_rate)
    else:
        body += m.heart_rate.to_bytes(1, "little")
    if m.contact_detected is not None:
        flags |= FLAG_CONTACT_SUPPORTED | (FLAG_CONTACT_DETECTED if m.contact_detected else 0)
    if m.energy_expended_kj is not None:
        flags |= FLAG_ENERGY_EXPENDED
        body += pack_uint16(m.energy_expended_kj)
    if m.rr_intervals is not None:
        if not m.rr_intervals:
            raise ValueError("rr_intervals, when present, needs at least one interval")
        flags |= FLAG_RR_INTERVALS
        for rr in m.rr_intervals:
            body += pack_uint16(rr)
    return bytes([flags]) + bytes(body)


def heart_rate_events(m: HeartRateMeasurement) -> list[ParserEvent]:
    """The wardwatch events of a parsed measurement (see the module docstring)."""
    if m.contact_detected is False:
        return [DeviceCondition(DeviceState.NO_SIGNAL, detail="sensor contact not detected")]
    return [Reading("HR", float(m.heart_rate), "/min")]


def decode_heart_rate_measurement(value: bytes, *, tz: tzinfo | None = None) -> list[ParserEvent]:
    """Decode a 0x2A37 value into events; never raises.

    Args:
        value: The characteristic value as notified.
        tz: Unused (0x2A37 has no timestamp); accepted so all decoders share one signature.

    Returns:
        The events, or ``[FrameRejected(...)]`` for a malformed value.
    """
    del tz
    try:
        return heart_rate_events(parse_heart_rate_measurement(value))
    except MalformedValue as exc:
        return [FrameRejected(f"{HEART_RATE_MEASUREMENT}: {exc}", bytes(value))]

"""PLX Spot-check (0x2A5E) and Continuous (0x2A5F) Measurements of the Pulse Oximeter Service.

Value layouts (Bluetooth SIG Pulse Oximeter Service 1.0.1, Tables 3.2 and 3.6, and the GATT
Specification Supplement (GSS) entries "PLX Spot-Check Measurement" / "PLX Continuous
Measurement"), all numbers SFLOAT (``ieee11073``)::

    0x2A5F continuous                          0x2A5E spot-check
    flags  uint8                               flags  uint8
    SpO2, PR (normal)                          SpO2, PR
    [SpO2, PR fast]          bit 0             [timestamp DateTime]          bit 0
    [SpO2, PR slow]          bit 1             [measurement status uint16]   bit 1
    [measurement status]     bit 2             [device+sensor status uint24] bit 2
    [device+sensor status]   bit 3             [pulse amplitude index]       bit 3
    [pulse amplitude index]  bit 4             (bit 4: device clock is not set)

Events: SPO2 (%), PR (/min) and, when present, PI (%) from the Pulse Amplitude Index, all from
the *normal* (continuous) or spot-check values; the fast/slow averages are parsed but not
emitted, because two more SPO2 readings per notification would be scored as independent
observations. A special SFLOAT (NaN...) yields a NO_SIGNAL condition for that code.

The status words (PLXS 1.0.1 Tables 3.4 and 3.5) are sorted three ways:

* *no measurement*: the numbers are not a patient value; no Readings, one DeviceCondition.
* *degraded*: Readings are kept with ``Quality.QUESTIONABLE`` (low perfusion, motion...).
* *informational*: ignored (e.g. "signal analysis ongoing").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from edge_agent.protocols.base import DeviceCondition, FrameRejected, ParserEvent
from edge_agent.protocols.gatt_fields import (
    DateTime,
    FieldReader,
    MalformedValue,
    pack_date_time,
    pack_sfloat,
    pack_uint16,
    pack_uint24,
    value_events,
)
from edge_agent.protocols.ieee11073 import MedFloat
from wardwire.models import DeviceState, Quality

PULSE_OXIMETER_SERVICE = "1822"
PLX_SPOT_CHECK_MEASUREMENT = "2A5E"
PLX_CONTINUOUS_MEASUREMENT = "2A5F"

# (bit, name, DeviceState for "no measurement", or None for "degraded").
MEASUREMENT_STATUS_BITS: tuple[tuple[int, str, DeviceState | None], ...] = (
    (6, "early estimated data", None),
    (10, "data for demonstration", DeviceState.ERROR),
    (11, "data for testing", DeviceState.ERROR),
    (12, "calibration ongoing", DeviceState.NO_SIGNAL),
    (13, "measurement unavailable", DeviceState.NO_SIGNAL),
    (14, "questionable measurement detected", None),
    (15, "invalid measurement detected", DeviceState.NO_SIGNAL),
)
DEVICE_SENSOR_STATUS_BITS: tuple[tuple[int, str, DeviceState | None], ...] = (
    (1, "equipment malfunction detected", DeviceState.ERROR),
    (2, "signal processing irregularity detected", None),
    (3, "inadequate signal detected", DeviceState.NO_SIGNAL),
    (4, "poor signal detected", None),
    (5, "low perfusion detected", None),
    (6, "erratic signal detected", None),
    (7, "nonpulsatile signal detected", None),
    (8, "questionable pulse detected", None),
    (10, "sensor interference detected", None),
    (11, "sensor unconnected to user", DeviceState.NO_SIGNAL),
    (12, "unknown sensor connected", DeviceState.ERROR),
    (13, "sensor displaced", DeviceState.NO_SIGNAL),
    (14, "sensor malfunctioning", DeviceState.ERROR),
    (15, "sensor disconnected", DeviceState.NO_SIGNAL),
)


@dataclass(frozen=True, slots=True)
class PlxMeasurement:
    """One decoded 0x2A5E or 0x2A5F value (fields absent from a characteristic stay None)."""

    spo2: MedFloat
    pulse_rate: MedFloat
    spo2_fast: MedFloat | None = None
    pulse_rate_fast: MedFloat | None = None
    spo2_slow: MedFloat | None = None
    pulse_rate_slow: MedFloat | None = None
    timestamp: DateTime | None = None
    measurement_status: int | None = None
    device_sensor_status: int | None = None
    pulse_amplitude_index: MedFloat | None = None
    clock_not_set: bool = False


def parse_plx_continuous(value: bytes) -> PlxMeasurement:
    """Parse a 0x2A5F value. Raises :class:`MalformedValue` if it is short or too long."""
    r = FieldReader(value)
    flags = r.uint8("flags")
    spo2, pr = r.sfloat("SpO2"), r.sfloat("PR")
    fast: tuple[MedFloat | None, MedFloat | None] = (None, None)
    slow: tuple[MedFloat | None, MedFloat | None] = (None, None)
    if flags & 0x01:
        fast = (r.sfloat("SpO2 fast"), r.sfloat("PR fast"))
    if flags & 0x02:
        slow = (r.sfloat("SpO2 slow"), r.sfloat("PR slow"))
    status = r.uint16("measurement status") if flags & 0x04 else None
    sensor = r.uint24("device and sensor status") if flags & 0x08 else None
    pai = r.sfloat("pulse amplitude index") if flags & 0x10 else None
    if r.remaining:
        raise MalformedValue("trailing octets after the last field")
    return PlxMeasurement(
        spo2,
        pr,
        spo2_fast=fast[0],
        pulse_rate_fast=fast[1],
        spo2_slow=slow[0],
        pulse_rate_slow=slow[1],
        measurement_status=status,
        device_sensor_status=sensor,
        pulse_amplitude_index=pai,
    )


def parse_plx_spot_check(value: bytes) -> PlxMeasurement:
    """Parse a 0x2A5E value. Raises :class:`MalformedValue` if it is short or too long."""
    r = FieldReader(value)
    flags = r.uint8("flags")
    spo2, pr = r.sfloat("SpO2"), r.sfloat("PR")
    stamp = r.date_time("timestamp") if flags & 0x01 else None
    status = r.uint16("measurement status") if flags & 0x02 else None
    sensor = r.uint24("device and sensor status") if flags & 0x04 else None
    pai = r.sfloat("pulse amplitude index") if flags & 0x08 else None
    if r.remaining:
        raise MalformedValue("trailing octets after the last field")
    return PlxMeasurement(
        spo2,
        pr,
        timestamp=stamp,
        measurement_status=status,
        device_sensor_status=sensor,
        pulse_amplitude_index=pai,
        clock_not_set=bool(flags & 0x10),
    )


def encode_plx_continuous(m: PlxMeasurement) -> bytes:
    """Encode a 0x2A5F value; the inverse of :func:`parse_plx_continuous`."""
    flags, body = 0, bytearray(pack_sfloat(m.spo2) + pack_sfloat(m.pulse_rate))
    if m.spo2_fast is not None and m.pulse_rate_fast is not None:
        flags |= 0x01
        body += pack_sfloat(m.spo2_fast) + pack_sfloat(m.pulse_rate_fast)
    if m.spo2_slow is not None and m.pulse_rate_slow is not None:
        flags |= 0x02
        body += pack_sfloat(m.spo2_slow) + pack_sfloat(m.pulse_rate_slow)
    if m.measurement_status is not None:
        flags |= 0x04
        body += pack_uint16(m.measurement_status)
    if m.device_sensor_status is not None:
        flags |= 0x08
        body += pack_uint24(m.device_sensor_status)
    if m.pulse_amplitude_index is not None:
        flags |= 0x10
        body += pack_sfloat(m.pulse_amplitude_index)
    return bytes([flags]) + bytes(body)


def encode_plx_spot_check(m: PlxMeasurement) -> bytes:
    """Encode a 0x2A5E value; the inverse of :func:`parse_plx_spot_check`."""
    flags, body = 0x10 if m.clock_not_set else 0, bytearray()
    body += pack_sfloat(m.spo2) + pack_sfloat(m.pulse_rate)
    if m.timestamp is not None:
        flags |= 0x01
        body += pack_date_time(m.timestamp)
    if m.measurement_status is not None:
        flags |= 0x02
        body += pack_uint16(m.measurement_status)
    if m.device_sensor_status is not None:
        flags |= 0x04
        body += pack_uint24(m.device_sensor_status)
    if m.pulse_amplitude_index is not None:
        flags |= 0x08
        body += pack_sfloat(m.pulse_amplitude_index)
    return bytes([flags]) + bytes(body)


def _sort_status(
    word: int | None, table: tuple[tuple[int, str, DeviceState | None], ...]
) -> tuple[dict[DeviceState, list[str]], list[str]]:
    blocking: dict[DeviceState, list[str]] = {}
    degraded: list[str] = []
    for bit, name, state in table:
        if word is not None and word & (1 << bit):
            if state is None:
                degraded.append(name)
            else:
                blocking.setdefault(state, []).append(name)
    return blocking, degraded


def plx_events(m: PlxMeasurement, *, tz: tzinfo | None = None) -> list[ParserEvent]:
    """The wardwatch events of a parsed PLX measurement (see the module docstring)."""
    blocking, degraded = _sort_status(m.measurement_status, MEASUREMENT_STATUS_BITS)
    sensor_blocking, sensor_degraded = _sort_status(
        m.device_sensor_status, DEVICE_SENSOR_STATUS_BITS
    )
    for state, names in sensor_blocking.items():
        blocking.setdefault(state, []).extend(names)
    if blocking:
        return [
            DeviceCondition(state, detail=", ".join(names)) for state, names in blocking.items()
        ]
    quality = Quality.QUESTIONABLE if degraded or sensor_degraded else Quality.VALID
    when: datetime | None = None
    if m.timestamp is not None and not m.clock_not_set:
        when = m.timestamp.to_utc(tz)
    events = value_events("SPO2", m.spo2, device_time=when, quality=quality)
    events += value_events("PR", m.pulse_rate, device_time=when, quality=quality)
    if m.pulse_amplitude_index is not None:
        events += value_events("PI", m.pulse_amplitude_index, device_time=when, quality=quality)
    return events


def decode_plx_continuous(value: bytes, *, tz: tzinfo | None = None) -> list[ParserEvent]:
    """Decode a 0x2A5F value into events; never raises (``[FrameRejected]`` if malformed)."""
    try:
        return plx_events(parse_plx_continuous(value), tz=tz)
    except MalformedValue as exc:
        return [FrameRejected(f"{PLX_CONTINUOUS_MEASUREMENT}: {exc}", bytes(value))]


def decode_plx_spot_check(value: bytes, *, tz: tzinfo | None = None) -> list[ParserEvent]:
    """Decode a 0x2A5E value into events; never raises (``[FrameRejected]`` if malformed).

    Args:
        value: The characteristic value as indicated.
        tz: The zone the oximeter's clock is set to; without it (or when the device says its
            clock is not set) ``device_time`` is None and the shell uses the receive time.
    """
    try:
        return plx_events(parse_plx_spot_check(value), tz=tz)
    except MalformedValue as exc:
        return [FrameRejected(f"{PLX_SPOT_CHECK_MEASUREMENT}: {exc}", bytes(value))]

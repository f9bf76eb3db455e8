"""Blood Pressure Measurement (0x2A35) of the Blood Pressure Service (0x1810).

Value layout (Bluetooth SIG Blood Pressure Service 1.1, section 3.1, and the GATT Specification
Supplement (GSS) entry "Blood Pressure Measurement"); pressures and pulse rate are SFLOAT::

    flags        uint8      bit 0: 0 = mmHg, 1 = kPa
    systolic, diastolic, mean arterial pressure
    timestamp    DateTime   optional, flags bit 1
    pulse rate   SFLOAT     optional, flags bit 2 (beats per minute)
    user id      uint8      optional, flags bit 3 (0xFF = unknown user)
    status       uint16     optional, flags bit 4

Measurement Status bits: 0 body movement, 1 cuff too loose, 2 irregular pulse, 3-4 pulse rate
range (0 in range, 1 above, 2 below, 3 RFU), 5 improper measurement position.

Events: NIBP_SYS, NIBP_DIA, NIBP_MEAN and PR, always in the wardwire units (``mm[Hg]`` and
``/min``): kPa values are converted with 1 mmHg = 133.322387415 Pa (the conventional millimetre
of mercury). Body movement, a loose cuff, an irregular pulse or an improper position make every
Reading ``QUESTIONABLE``: the cuff itself says the number may be off. Special SFLOATs yield a
NO_SIGNAL condition naming the code (some cuffs send NaN for MAP). The user id is decoded but
not emitted: on a ward the device is bound to a bed, and multi-user home cuffs are out of scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from edge_agent.protocols.base import FrameRejected, ParserEvent
from edge_agent.protocols.gatt_fields import (
    DateTime,
    FieldReader,
    MalformedValue,
    pack_date_time,
    pack_sfloat,
    pack_uint16,
    value_events,
)
from edge_agent.protocols.ieee11073 import MedFloat
from wardwire.models import Quality

BLOOD_PRESSURE_SERVICE = "1810"
BLOOD_PRESSURE_MEASUREMENT = "2A35"

FLAG_KPA = 0x01
FLAG_TIMESTAMP = 0x02
FLAG_PULSE_RATE = 0x04
FLAG_USER_ID = 0x08
FLAG_STATUS = 0x10

MMHG_PER_KPA = 1000 / 133.322387415

# Measurement Status bits that make the whole measurement questionable.
QUESTIONABLE_STATUS: tuple[tuple[int, str], ...] = (
    (0x0001, "body movement detected"),
    (0x0002, "cuff too loose"),
    (0x0004, "irregular pulse detected"),
    (0x0020, "improper measurement position"),
)


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """One decoded 0x2A35 value, in the device's own unit."""

    systolic: MedFloat
    diastolic: MedFloat
    mean_arterial: MedFloat
    kpa: bool = False
    timestamp: DateTime | None = None
    pulse_rate: MedFloat | None = None
    user_id: int | None = None
    status: int | None = None


def parse_blood_pressure_measurement(value: bytes) -> BloodPressureMeasurement:
    """Parse a 0x2A35 value. Raises :class:`MalformedValue` if it is short or too long."""
    r = FieldReader(value)
    flags = r.uint8("flags")
    sys_, dia, mean = r.sfloat("systolic"), r.sfloat("diastolic"), r.sfloat("mean")
    stamp = r.date_time("timestamp") if flags & FLAG_TIMESTAMP else None
    pulse = r.sfloat("pulse rate") if flags & FLAG_PULSE_RATE else None
    user = r.uint8("user id") if flags & FLAG_USER_ID else None
    status = r.uint16("measurement status") if flags & FLAG_STATUS else None
    if r.remaining:
        raise MalformedValue("trailing octets after the last field")
    kpa = bool(flags & FLAG_KPA)
    return BloodPressureMeasurement(sys_, dia, mean, kpa, stamp, pulse, user, status)


def encode_blood_pressure_measurement(m: BloodPressureMeasurement) -> bytes:
    """Encode a 0x2A35 value; the inverse of :func:`parse_blood_pressure_measurement`."""
    flags = FLAG_KPA if m.kpa else 0
    body = bytearray(pack_sfloat(m.systolic) + pack_sfloat(m.diastolic))
    body += pack_sfloat(m.mean_arterial)
    if m.timestamp is not None:
        flags |= FLAG_TIMESTAMP
        body += pack_date_time(m.timestamp)
    if m.pulse_rate is not None:
        flags |= FLAG_PULSE_RATE
        body += pack_sfloat(m.pulse_rate)
    if m.user_id is not None:
        flags |= FLAG_USER_ID
        body.append(m.user_id)
    if m.status is not None:
        flags |= FLAG_STATUS
        body += pack_uint16(m.status)
    return bytes([flags]) + bytes(body)


def questionable_reasons(status: int | None) -> list[str]:
    """Names of the Measurement Status bits set in ``status`` that cast doubt on the values."""
    if status is None:
        return []
    return [name for bit, name in QUESTIONABLE_STATUS if status & bit]


def blood_pressure_events(
    m: BloodPressureMeasurement, *, tz: tzinfo | None = None
) -> list[ParserEvent]:
    """The wardwatch events of a parsed measurement (see the module docstring)."""
    when = m.timestamp.to_utc(tz) if m.timestamp is not None else None
    quality = Quality.QUESTIONABLE if questionable_reasons(m.status) else Quality.VALID
    scale = MMHG_PER_KPA if m.kpa else 1.0
    events: list[ParserEvent] = []
    for code, pressure in (
        ("NIBP_SYS", m.systolic),
        ("NIBP_DIA", m.diastolic),
        ("NIBP_MEAN", m.mean_arterial),
    ):
        events += value_events(code, pressure, device_time=when, quality=quality, scale=scale)
    if m.pulse_rate is not None:
        events += value_events("PR", m.pulse_rate, device_time=when, quality=quality)
    return events


def decode_blood_pressure_measurement(
    value: bytes, *, tz: tzinfo | None = None
) -> list[ParserEvent]:
    """Decode a 0x2A35 value into events; never raises (``[FrameRejected]`` if malformed).

    Args:
        value: The characteristic value as indicated.
        tz: The zone the cuff's clock is set to; without it ``device_time`` is None.
    """
    try:
        return blood_pressure_events(parse_blood_pressure_measurement(value), tz=tz)
    except MalformedValue as exc:
        return [FrameRejected(f"{BLOOD_PRESSURE_MEASUREMENT}: {exc}", bytes(value))]

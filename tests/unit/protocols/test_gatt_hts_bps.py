"""Temperature Measurement (0x2A1C) and Blood Pressure Measurement (0x2A35).

Every flag combination, unit conversion to the wardwire units (Cel, mm[Hg]), status bits and
malformed values. Raw FLOAT/SFLOAT constants are hand-encoded from the IEEE 11073 layout.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_agent.protocols.base import DeviceCondition, FrameRejected, Reading
from edge_agent.protocols.gatt_bps import (
    QUESTIONABLE_STATUS,
    decode_blood_pressure_measurement,
    encode_blood_pressure_measurement,
    parse_blood_pressure_measurement,
)
from edge_agent.protocols.gatt_hts import (
    TemperatureType,
    decode_temperature_measurement,
    encode_temperature_measurement,
    parse_temperature_measurement,
)
from wardwire.models import DeviceState, Quality

STAMP = struct.pack("<HBBBBB", 2026, 3, 1, 12, 30, 5)
WHEN = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
CELSIUS_36_4 = struct.pack("<I", 0xFF00016C)  # the HTS example value, mantissa 364, exp -1
FAHRENHEIT_97_5 = struct.pack("<I", 0xFF0003CF)  # mantissa 975, exp -1


def thermometer(flags: int) -> bytes:
    value = bytes([flags]) + (FAHRENHEIT_97_5 if flags & 0x01 else CELSIUS_36_4)
    if flags & 0x02:
        value += STAMP
    if flags & 0x04:
        value += bytes([TemperatureType.TYMPANUM])
    return value


@pytest.mark.parametrize("flags", range(8))
def test_temperature_every_flag_combination(flags: int) -> None:
    value = thermometer(flags)
    m = parse_temperature_measurement(value)
    assert m.fahrenheit is bool(flags & 0x01)
    assert m.temperature_type == (9 if flags & 0x04 else None)
    when = WHEN if flags & 0x02 else None
    celsius = 36.389 if flags & 0x01 else 36.4  # (97.5 - 32) * 5 / 9 = 36.3888...
    assert decode_temperature_measurement(value, tz=UTC) == [Reading("TEMP", celsius, "Cel", when)]
    assert encode_temperature_measurement(m) == value


def test_fahrenheit_body_temperature_is_never_emitted_as_is() -> None:
    value = b"\x01" + struct.pack("<I", 0xFF0003DA)  # 98.6 degF
    assert decode_temperature_measurement(value) == [Reading("TEMP", 37.0, "Cel")]


def test_temperature_timestamp_in_the_device_zone() -> None:
    events = decode_temperature_measurement(thermometer(0x02), tz=timezone(timedelta(hours=1)))
    assert events[0].device_time == WHEN - timedelta(hours=1)  # type: ignore[union-attr]


@pytest.mark.parametrize(("raw", "name"), [(0x007FFFFF, "NaN"), (0x007FFFFE, "+INF")])
def test_temperature_special_values(raw: int, name: str) -> None:
    value = b"\x00" + struct.pack("<I", raw)
    assert decode_temperature_measurement(value) == [
        DeviceCondition(DeviceState.NO_SIGNAL, f"TEMP: {name}")
    ]


def test_reserved_temperature_type_is_kept() -> None:
    value = b"\x04" + CELSIUS_36_4 + b"\x00"
    assert parse_temperature_measurement(value).temperature_type == 0
    assert decode_temperature_measurement(value) == [Reading("TEMP", 36.4, "Cel")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\x6c\x01\x00", "temperature"),
        (b"\x02" + CELSIUS_36_4 + STAMP[:3], "timestamp"),
        (b"\x04" + CELSIUS_36_4, "temperature type"),
        (b"\x00" + CELSIUS_36_4 + b"\x00", "trailing"),
    ],
)
def test_temperature_malformed(value: bytes, reason: str) -> None:
    events = decode_temperature_measurement(value)
    assert len(events) == 1
    assert isinstance(events[0], FrameRejected)
    assert reason in events[0].reason


MMHG = struct.pack("<HHH", 0x0078, 0x0050, 0x005D)  # 120 / 80 / 93 mmHg
KPA = struct.pack("<HHH", 0xF0A0, 0xF06B, 0xF07C)  # 16.0 / 10.7 / 12.4 kPa


def cuff(flags: int, status: int = 0x0008) -> bytes:
    value = bytes([flags]) + (KPA if flags & 0x01 else MMHG)
    if flags & 0x02:
        value += STAMP
    if flags & 0x04:
        value += struct.pack("<H", 0x0048)  # pulse rate 72
    if flags & 0x08:
        value += b"\x01"  # user 1
    if flags & 0x10:
        value += struct.pack("<H", status)  # 0x0008: pulse rate above range, informational
    return value


@pytest.mark.parametrize("flags", range(32))
def test_blood_pressure_every_flag_combination(flags: int) -> None:
    value = cuff(flags)
    m = parse_blood_pressure_measurement(value)
    assert m.kpa is bool(flags & 0x01)
    assert m.user_id == (1 if flags & 0x08 else None)
    assert m.status == (0x0008 if flags & 0x10 else None)
    when = WHEN if flags & 0x02 else None
    events = decode_blood_pressure_measurement(value, tz=UTC)
    pressures = (120.01, 80.257, 93.008) if flags & 0x01 else (120.0, 80.0, 93.0)
    expected = [
        Reading(code, p, "mm[Hg]", when)
        for code, p in zip(("NIBP_SYS", "NIBP_DIA", "NIBP_MEAN"), pressures, strict=True)
    ]
    if flags & 0x04:
        expected.append(Reading("PR", 72.0, "/min", when))
    assert events == expected
    assert parse_blood_pressure_measurement(encode_blood_pressure_measurement(m)) == m
    if not flags & 0x01:  # 16.0 kPa is sent as 160e-1; the encoder writes the shorter 16e0
        assert encode_blood_pressure_measurement(m) == value


@pytest.mark.parametrize(("bit", "name"), QUESTIONABLE_STATUS)
def test_blood_pressure_status_makes_readings_questionable(bit: int, name: str) -> None:
    events = decode_blood_pressure_measurement(cuff(0x14, status=bit))
    assert name
    assert [e.quality for e in events if isinstance(e, Reading)] == [Quality.QUESTIONABLE] * 4


@pytest.mark.parametrize("status", [0x0000, 0x0008, 0x0010, 0xFFC0])
def test_blood_pressure_informational_status_keeps_readings_valid(status: int) -> None:
    events = decode_blood_pressure_measurement(cuff(0x10, status=status))
    assert all(isinstance(e, Reading) and e.quality is Quality.VALID for e in events)


def test_blood_pressure_nan_mean_is_a_condition() -> None:
    value = b"\x00" + struct.pack("<HHH", 0x0078, 0x0050, 0x07FF)
    assert decode_blood_pressure_measurement(value) == [
        Reading("NIBP_SYS", 120.0, "mm[Hg]"),
        Reading("NIBP_DIA", 80.0, "mm[Hg]"),
        DeviceCondition(DeviceState.NO_SIGNAL, "NIBP_MEAN: NaN"),
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00" + MMHG[:5], "mean"),
        (b"\x04" + MMHG, "pulse rate"),
        (b"\x08" + MMHG, "user id"),
        (b"\x10" + MMHG + b"\x00", "measurement status"),
        (b"\x00" + MMHG + b"\x00", "trailing"),
    ],
)
def test_blood_pressure_malformed(value: bytes, reason: str) -> None:
    events = decode_blood_pressure_measurement(value)
    assert len(events) == 1
    assert isinstance(events[0], FrameRejected)
    assert reason in events[0].reason

"""PLX Continuous (0x2A5F) and Spot-check (0x2A5E): every flag combination and status bit.

Values are built with ``struct`` from the PLXS 1.0.1 layouts; SFLOATs are written as raw
16-bit constants (0x0061 = 97, 0x0048 = 72, 0xF019 = 2.5) so the encoder is not the oracle.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from edge_agent.protocols.base import DeviceCondition, FrameRejected, Reading
from edge_agent.protocols.gatt_plx import (
    DEVICE_SENSOR_STATUS_BITS,
    MEASUREMENT_STATUS_BITS,
    decode_plx_continuous,
    decode_plx_spot_check,
    encode_plx_continuous,
    encode_plx_spot_check,
    parse_plx_continuous,
    parse_plx_spot_check,
)
from wardwire.models import DeviceState, Quality

SPO2_PR = struct.pack("<HH", 0x0061, 0x0048)  # 97 %, 72 /min
PAI = struct.pack("<H", 0xF019)  # 2.5 %
STAMP = struct.pack("<HBBBBB", 2026, 3, 1, 12, 30, 5)
WHEN = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
INFORMATIONAL_STATUS = 0x03A0  # measurement ongoing, validated, fully qualified, from storage
INFORMATIONAL_SENSOR = 0x000201  # extended display update ongoing, signal analysis ongoing


def continuous(flags: int, status: int = INFORMATIONAL_STATUS, sensor: int = 0) -> bytes:
    value = bytes([flags]) + SPO2_PR
    if flags & 0x01:
        value += struct.pack("<HH", 0x0060, 0x004A)  # fast: 96, 74
    if flags & 0x02:
        value += struct.pack("<HH", 0x0062, 0x0046)  # slow: 98, 70
    if flags & 0x04:
        value += struct.pack("<H", status)
    if flags & 0x08:
        value += struct.pack("<I", sensor)[:3]
    if flags & 0x10:
        value += PAI
    return value


def spot_check(flags: int, status: int = INFORMATIONAL_STATUS, sensor: int = 0) -> bytes:
    value = bytes([flags]) + SPO2_PR
    if flags & 0x01:
        value += STAMP
    if flags & 0x02:
        value += struct.pack("<H", status)
    if flags & 0x04:
        value += struct.pack("<I", sensor)[:3]
    if flags & 0x08:
        value += PAI
    return value


@pytest.mark.parametrize("flags", range(32))
def test_continuous_every_flag_combination(flags: int) -> None:
    value = continuous(flags, sensor=INFORMATIONAL_SENSOR)
    m = parse_plx_continuous(value)
    assert (m.spo2, m.pulse_rate) == (97.0, 72.0)
    assert (m.spo2_fast, m.pulse_rate_fast) == ((96.0, 74.0) if flags & 0x01 else (None, None))
    assert (m.spo2_slow, m.pulse_rate_slow) == ((98.0, 70.0) if flags & 0x02 else (None, None))
    assert m.measurement_status == (INFORMATIONAL_STATUS if flags & 0x04 else None)
    assert m.device_sensor_status == (INFORMATIONAL_SENSOR if flags & 0x08 else None)
    expected = [Reading("SPO2", 97.0, "%"), Reading("PR", 72.0, "/min")]
    if flags & 0x10:
        expected.append(Reading("PI", 2.5, "%"))
    assert decode_plx_continuous(value) == expected
    assert encode_plx_continuous(m) == value


@pytest.mark.parametrize("flags", range(32))
def test_spot_check_every_flag_combination(flags: int) -> None:
    value = spot_check(flags, sensor=INFORMATIONAL_SENSOR)
    m = parse_plx_spot_check(value)
    assert m.clock_not_set is bool(flags & 0x10)
    assert m.timestamp is not None if flags & 0x01 else m.timestamp is None
    when = WHEN if flags & 0x01 and not flags & 0x10 else None
    expected = [Reading("SPO2", 97.0, "%", when), Reading("PR", 72.0, "/min", when)]
    if flags & 0x08:
        expected.append(Reading("PI", 2.5, "%", when))
    assert decode_plx_spot_check(value, tz=UTC) == expected
    assert encode_plx_spot_check(m) == value


def test_spot_check_timestamp_needs_a_zone() -> None:
    events = decode_plx_spot_check(spot_check(0x01))
    assert all(isinstance(e, Reading) and e.device_time is None for e in events)


@pytest.mark.parametrize(("bit", "name", "state"), MEASUREMENT_STATUS_BITS)
def test_measurement_status_bits(bit: int, name: str, state: DeviceState | None) -> None:
    for value, decode in (
        (continuous(0x04, status=1 << bit), decode_plx_continuous),
        (spot_check(0x02, status=1 << bit), decode_plx_spot_check),
    ):
        events = decode(value)
        if state is None:
            assert [e.quality for e in events if isinstance(e, Reading)] == [
                Quality.QUESTIONABLE
            ] * 2
        else:
            assert events == [DeviceCondition(state, name)]


@pytest.mark.parametrize(("bit", "name", "state"), DEVICE_SENSOR_STATUS_BITS)
def test_device_and_sensor_status_bits(bit: int, name: str, state: DeviceState | None) -> None:
    events = decode_plx_continuous(continuous(0x08, sensor=1 << bit))
    if state is None:
        assert all(isinstance(e, Reading) and e.quality is Quality.QUESTIONABLE for e in events)
    else:
        assert events == [DeviceCondition(state, name)]


def test_blocking_bits_from_both_words_are_merged_per_state() -> None:
    value = continuous(0x0C, status=1 << 13, sensor=(1 << 15) | (1 << 14))
    assert decode_plx_continuous(value) == [
        DeviceCondition(DeviceState.NO_SIGNAL, "measurement unavailable, sensor disconnected"),
        DeviceCondition(DeviceState.ERROR, "sensor malfunctioning"),
    ]


def test_special_values_are_conditions_not_numbers() -> None:
    value = b"\x10" + struct.pack("<HHH", 0x07FF, 0x0048, 0x0800)  # SpO2 NaN, PAI NRes
    assert decode_plx_continuous(value) == [
        DeviceCondition(DeviceState.NO_SIGNAL, "SPO2: NaN"),
        Reading("PR", 72.0, "/min"),
        DeviceCondition(DeviceState.NO_SIGNAL, "PI: NRes"),
    ]


@pytest.mark.parametrize(
    ("value", "decode", "reason"),
    [
        (b"", decode_plx_continuous, "flags"),
        (b"\x00\x61\x00", decode_plx_continuous, "PR"),
        (b"\x01" + SPO2_PR + b"\x60\x00", decode_plx_continuous, "PR fast"),
        (b"\x08" + SPO2_PR + b"\x00\x00", decode_plx_continuous, "sensor status"),
        (b"\x00" + SPO2_PR + b"\x00", decode_plx_continuous, "trailing"),
        (b"\x01" + SPO2_PR + STAMP[:6], decode_plx_spot_check, "timestamp"),
        (
            b"\x01" + SPO2_PR + struct.pack("<HBBBBB", 2026, 13, 1, 0, 0, 0),
            decode_plx_spot_check,
            "date out of range",
        ),
        (
            b"\x01" + SPO2_PR + struct.pack("<HBBBBB", 2026, 2, 30, 0, 0, 0),
            decode_plx_spot_check,
            "no such date",
        ),
        (
            b"\x01" + SPO2_PR + struct.pack("<HBBBBB", 2026, 2, 3, 24, 0, 0),
            decode_plx_spot_check,
            "time out of range",
        ),
        (b"\x08" + SPO2_PR + b"\x19", decode_plx_spot_check, "pulse amplitude index"),
    ],
)
def test_malformed_values_are_rejected(value: bytes, decode: object, reason: str) -> None:
    events = decode(value)  # type: ignore[operator]
    assert len(events) == 1
    assert isinstance(events[0], FrameRejected)
    assert reason in events[0].reason


def test_unknown_date_fields_mean_no_device_time() -> None:
    value = b"\x01" + SPO2_PR + struct.pack("<HBBBBB", 0, 0, 0, 10, 0, 0)
    events = decode_plx_spot_check(value, tz=UTC)
    assert [e.device_time for e in events if isinstance(e, Reading)] == [None, None]

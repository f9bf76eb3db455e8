"""Heart Rate Measurement (0x2A37): every flag combination, contact status, malformed values.

Values are built field by field with ``struct`` from the layout in the Heart Rate Service
specification, independently of the module's encoder; the encoder is then checked to rebuild
exactly the same bytes.
"""

from __future__ import annotations

import struct

import pytest

from edge_agent.protocols.base import DeviceCondition, FrameRejected, Reading
from edge_agent.protocols.gatt_hrs import (
    HeartRateMeasurement,
    decode_heart_rate_measurement,
    encode_heart_rate_measurement,
    parse_heart_rate_measurement,
)
from wardwire.models import DeviceState


def build(flags: int) -> bytes:
    value = bytes([flags])
    value += struct.pack("<H", 300) if flags & 0x01 else struct.pack("<B", 72)
    if flags & 0x08:
        value += struct.pack("<H", 1234)  # energy expended, kJ
    if flags & 0x10:
        value += struct.pack("<HH", 1024, 512)  # RR-intervals: 1 s, 0.5 s
    return value


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination(flags: int) -> None:
    value = build(flags)
    m = parse_heart_rate_measurement(value)
    assert m.heart_rate == (300 if flags & 0x01 else 72)
    assert m.wide is bool(flags & 0x01)
    assert m.contact_detected == (bool(flags & 0x02) if flags & 0x04 else None)
    assert m.energy_expended_kj == (1234 if flags & 0x08 else None)
    assert m.rr_intervals == ((1024, 512) if flags & 0x10 else None)
    events = decode_heart_rate_measurement(value)
    if flags & 0x04 and not flags & 0x02:
        assert events == [DeviceCondition(DeviceState.NO_SIGNAL, "sensor contact not detected")]
    else:
        assert events == [Reading("HR", float(m.heart_rate), "/min")]
    # Bit 1 without bit 2 means nothing, so the encoder does not reproduce it.
    canonical = flags & ~0x02 if not flags & 0x04 else flags
    assert encode_heart_rate_measurement(m) == bytes([canonical]) + value[1:]


def test_bumble_value_for_300_bpm_with_contact() -> None:
    """The raw value bumble's HeartRateService sent in platform_notes.md section 6."""
    assert decode_heart_rate_measurement(bytes.fromhex("072c01")) == [Reading("HR", 300.0, "/min")]


def test_rfu_flag_bits_are_ignored() -> None:
    assert decode_heart_rate_measurement(bytes([0xE0, 72])) == [Reading("HR", 72.0, "/min")]


def test_uint16_format_for_a_small_value_round_trips() -> None:
    m = HeartRateMeasurement(heart_rate=60, wide=True)
    assert encode_heart_rate_measurement(m) == b"\x01\x3c\x00"
    assert parse_heart_rate_measurement(b"\x01\x3c\x00") == m


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "flags"),
        (b"\x00", "heart rate"),
        (b"\x01\x48", "heart rate"),
        (b"\x08\x48\x01", "energy expended"),
        (b"\x10\x48", "RR-interval"),
        (b"\x10\x48\x00\x04\x00", "RR-interval"),
        (b"\x00\x48\x00", "trailing"),
    ],
)
def test_malformed_values_are_rejected(value: bytes, reason: str) -> None:
    events = decode_heart_rate_measurement(value)
    assert len(events) == 1
    assert isinstance(events[0], FrameRejected)
    assert reason in events[0].reason
    assert events[0].data == value


def test_encoder_refuses_empty_rr_list() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_heart_rate_measurement(HeartRateMeasurement(72, rr_intervals=()))

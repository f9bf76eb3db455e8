"""Masimo ASCII 1: field decoding, exception/alarm bits, device time, resynchronisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_agent.protocols.base import DeviceCondition, FrameRejected, Reading
from edge_agent.protocols.masimo_ascii import (
    MAX_LINE,
    MasimoAscii1Encoder,
    MasimoAscii1Parser,
    parse_line,
)
from wardwire.models import DeviceState, Quality

RADICAL5 = b"09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800\r\n"


def line(fields: str, stamp: str = "09/15/10 15:10:29") -> bytes:
    return f"{stamp} {fields}\r\n".encode()


def test_documented_radical5_record() -> None:
    assert MasimoAscii1Parser().feed(RADICAL5) == [
        Reading("SPO2", 97.0, "%"),
        Reading("PR", 64.0, "/min"),
        Reading("PI", 11.82, "%"),
    ]


def test_device_time_needs_the_monitor_zone() -> None:
    plus2 = timezone(timedelta(hours=2))
    events = MasimoAscii1Parser(device_tz=plus2).feed(RADICAL5)
    assert {e.device_time for e in events if isinstance(e, Reading)} == {
        datetime(2010, 9, 15, 13, 10, 29, tzinfo=UTC)
    }


def test_dashes_are_no_signal_never_numbers() -> None:
    events = parse_line(line("SPO2=---% BPM=--- PI=--.--% ALARM=0000 EXC=000000"))
    assert events == [
        DeviceCondition(DeviceState.NO_SIGNAL, "SPO2: no value, PR: no value, PI: no value")
    ]


def test_partial_dashes_keep_the_other_values() -> None:
    events = parse_line(line("SPO2=---% BPM=072 PI=01.20% ALARM=0000 EXC=000800"))
    assert events == [
        Reading("PR", 72.0, "/min"),
        Reading("PI", 1.2, "%"),
        DeviceCondition(DeviceState.NO_SIGNAL, "SPO2: no value"),
    ]


@pytest.mark.parametrize(
    ("exc", "state", "detail"),
    [
        ("001", DeviceState.NO_SIGNAL, "no sensor"),
        ("020", DeviceState.NO_SIGNAL, "sensor off"),
        ("008", DeviceState.NO_SIGNAL, "pulse search"),
        ("002", DeviceState.ERROR, "defective sensor"),
        ("000080", DeviceState.ERROR, "unrecognized sensor"),
        ("001000", DeviceState.NO_SIGNAL, "no cable connected"),
        ("040000", DeviceState.ERROR, "sensor life expired"),
    ],
)
def test_no_measurement_exceptions_drop_the_numbers(
    exc: str, state: DeviceState, detail: str
) -> None:
    # Masimo sends zeros with "sensor off"; they must not become SpO2 0 %.
    events = parse_line(line(f"SPO2=000% BPM=000 PI=00.00% ALARM=00 EXC={exc}"))
    assert events == [DeviceCondition(state, detail)]


def test_several_exception_bits_become_one_condition_per_state() -> None:
    events = parse_line(line("SPO2=000% BPM=000 PI=00.00% ALARM=00 EXC=82B"))
    assert events == [
        DeviceCondition(DeviceState.NO_SIGNAL, "no sensor, pulse search, sensor off"),
        DeviceCondition(DeviceState.ERROR, "defective sensor"),
    ]


@pytest.mark.parametrize("exc", ["004", "010", "040", "400", "C00"])
def test_degraded_exceptions_make_readings_questionable(exc: str) -> None:
    events = parse_line(line(f"SPO2=095% BPM=110 PI=00.30% ALARM=00 EXC={exc}"))
    assert [e.quality for e in events if isinstance(e, Reading)] == [Quality.QUESTIONABLE] * 3


def test_masimo_set_bit_alone_is_normal() -> None:
    events = parse_line(line("SPO2=095% BPM=110 PI=00.30% ALARM=00 EXC=800"))
    assert all(isinstance(e, Reading) and e.quality is Quality.VALID for e in events)


def test_low_battery_alarm_bit() -> None:
    events = parse_line(line("SPO2=095% BPM=110 PI=00.30% ALARM=0040 EXC=000800"))
    assert events[-1] == DeviceCondition(DeviceState.LOW_BATTERY, "low battery")


def test_limit_alarms_are_not_conditions() -> None:
    events = parse_line(line("SPO2=085% BPM=110 PI=00.30% ALARM=0012 EXC=000800"))
    assert all(isinstance(e, Reading) for e in events)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (line("SPO2=9x8% BPM=064 ALARM=00 EXC=800"), "bad SPO2 value"),
        (line("SPO2=098% BPM=064 ALARM=zz EXC=800"), "bad ALARM value"),
        (line("SPO2 098% BPM=064"), "malformed field"),
        (line("SN=123 ALARM=00 EXC=800"), "no SPO2, BPM or PI field"),
        (line("SPO2=098%", stamp="13/45/10 15:10:29"), "bad date/time"),
        (b"hello world\r\n", "no record stamp"),
        (b"09/15/10 15:10:29 SPO2=\xff98%\r\n", "non-ASCII record"),
    ],
)
def test_malformed_records_are_rejected_not_raised(raw: bytes, reason: str) -> None:
    events = parse_line(raw)
    assert len(events) == 1
    assert isinstance(events[0], FrameRejected)
    assert events[0].reason.startswith(reason)


def test_blank_lines_are_ignored() -> None:
    assert MasimoAscii1Parser().feed(b"\r\n\r\n  \r\n") == []


def test_noise_glued_to_a_record_is_cut_off() -> None:
    events = MasimoAscii1Parser().feed(b"\x00\xfe12:3" + RADICAL5)
    assert events[0] == FrameRejected("bytes outside a frame", b"\x00\xfe12:3")
    assert len(events) == 4


def test_noise_ending_in_half_a_stamp_does_not_swallow_the_record() -> None:
    events = MasimoAscii1Parser().feed(b"01/01/01 01:01:" + RADICAL5)
    assert isinstance(events[0], FrameRejected)
    assert [e.code for e in events[1:] if isinstance(e, Reading)] == ["SPO2", "PR", "PI"]


def test_overlong_line_is_rejected_and_the_next_record_survives() -> None:
    parser = MasimoAscii1Parser()
    events = parser.feed(b"x" * (3 * MAX_LINE) + RADICAL5)
    rejected = [e for e in events if isinstance(e, FrameRejected)]
    assert sum(len(e.data) for e in rejected) == 3 * MAX_LINE
    assert all(len(e.data) <= MAX_LINE + 1 for e in rejected)
    assert [e.code for e in events if isinstance(e, Reading)] == ["SPO2", "PR", "PI"]


def test_overlong_record_itself_is_rejected() -> None:
    long_record = line("SPO2=098% " + "SN=1 " * 60 + "BPM=064")
    events = MasimoAscii1Parser().feed(long_record + RADICAL5)
    assert not any(isinstance(e, Reading) and e.value == 98.0 for e in events)
    assert [e.code for e in events if isinstance(e, Reading)] == ["SPO2", "PR", "PI"]


def test_encoder_layouts() -> None:
    at = datetime(2010, 9, 15, 15, 10, 29, tzinfo=UTC)
    short = MasimoAscii1Encoder(layout="radical5").encode_line(
        at, spo2=97, pulse_rate=64, pi=11.82, alarm=0x20
    )
    assert short == RADICAL5
    full = MasimoAscii1Encoder(serial_number="0000070986").encode_line(
        at, spo2=None, pulse_rate=None, pi=None, exceptions=0
    )
    assert full == (
        b"09/15/10 15:10:29 SN=0000070986 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-% "
        b"DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000000\r\n"
    )


def test_encoder_protocol_method_and_validation() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    readings = [Reading("SPO2", 96.0, "%", at), Reading("PR", 101.0, "/min", at)]
    out = MasimoAscii1Parser(device_tz=UTC).feed(MasimoAscii1Encoder().encode(readings))
    assert out[:2] == readings
    with pytest.raises(ValueError, match="device_time"):
        MasimoAscii1Encoder().encode([Reading("SPO2", 96.0, "%")])
    with pytest.raises(ValueError, match="spo2"):
        MasimoAscii1Encoder().encode_line(at, spo2=101, pulse_rate=None, pi=None)
    with pytest.raises(ValueError, match="layout"):
        MasimoAscii1Encoder(layout="rad97")

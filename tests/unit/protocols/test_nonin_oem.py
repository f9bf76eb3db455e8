"""Nonin Data Format #2: frame validation, packet assembly, status bits, markers, encoder."""

from __future__ import annotations

import pytest

from edge_agent.protocols.base import DeviceCondition, FrameRejected, Reading, WaveformChunk
from edge_agent.protocols.nonin_oem import (
    ARTF,
    FRAME_LEN,
    GPRF,
    MAX_JUNK,
    OOT,
    RPRF,
    SNSA,
    SNSD,
    NoninFormat2Encoder,
    NoninFormat2Parser,
    checksum,
)
from wardwire.models import DeviceState, Quality

FLAT = [128] * 25
ENC = NoninFormat2Encoder()


def packet(**kwargs: object) -> bytes:
    args: dict[str, object] = {"spo2": 97, "pulse_rate": 72, "pleth": FLAT} | kwargs
    return ENC.encode_packet(**args)  # type: ignore[arg-type]


def test_frame_layout_matches_the_specification() -> None:
    raw = packet(spo2=97, pulse_rate=300, pleth=list(range(25)), revision=48)
    frames = [raw[i : i + FRAME_LEN] for i in range(0, len(raw), FRAME_LEN)]
    assert len(frames) == 25
    assert all(f[0] == 0x01 and f[1] & 0x80 and f[4] == sum(f[:4]) % 256 for f in frames)
    assert [f[1] & 0x01 for f in frames] == [1] + [0] * 24  # SYNC on the first frame only
    assert [f[2] for f in frames] == list(range(25))
    data = [f[3] for f in frames[:4]]
    assert data == [300 >> 7, 300 & 0x7F, 97, 48]  # HR MSB, HR LSB, SpO2, revision


def test_one_packet_gives_one_chunk_and_the_numbers() -> None:
    events = NoninFormat2Parser().feed(packet(pleth=list(range(25))))
    assert events == [
        WaveformChunk("PLETH", "{unitless}", 75.0, tuple(float(i) for i in range(25))),
        Reading("SPO2", 97.0, "%"),
        Reading("PR", 72.0, "/min"),
    ]


@pytest.mark.parametrize(
    ("status", "detail"),
    [(SNSD, "sensor disconnected"), (OOT, "out of track"), (SNSA, "sensor alarm")],
)
def test_no_signal_status_bits_suppress_the_numbers(status: int, detail: str) -> None:
    events = NoninFormat2Parser().feed(packet(status=status))
    assert isinstance(events[0], WaveformChunk)
    assert events[1:] == [DeviceCondition(DeviceState.NO_SIGNAL, detail)]


def test_no_value_markers_are_conditions() -> None:
    events = NoninFormat2Parser().feed(packet(spo2=None, pulse_rate=None))
    assert events[1:] == [
        DeviceCondition(DeviceState.NO_SIGNAL, "SPO2: no value"),
        DeviceCondition(DeviceState.NO_SIGNAL, "PR: no value"),
    ]


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (GPRF, Quality.VALID),
        (GPRF | RPRF, Quality.VALID),  # yellow: marginal, still valid
        (RPRF, Quality.QUESTIONABLE),  # red: low perfusion
        (ARTF | GPRF, Quality.QUESTIONABLE),
        (0, Quality.VALID),
    ],
)
def test_perfusion_and_artifact_set_quality(status: int, quality: Quality) -> None:
    events = NoninFormat2Parser().feed(packet(status=status))
    assert [e.quality for e in events if isinstance(e, Reading)] == [quality, quality]


def test_low_battery_from_stat2() -> None:
    events = NoninFormat2Parser().feed(packet(low_battery=True))
    assert events[-1] == DeviceCondition(DeviceState.LOW_BATTERY, "STAT2 low battery")


def test_bad_checksum_drops_the_frame_and_the_packet() -> None:
    raw = bytearray(packet() + packet(spo2=90))
    raw[4 * FRAME_LEN + 4] ^= 0xFF  # corrupt frame 5 of the first packet
    events = NoninFormat2Parser().feed(bytes(raw))
    assert [type(e) for e in events] == [
        FrameRejected,
        FrameRejected,
        WaveformChunk,
        Reading,
        Reading,
    ]
    assert events[0].reason == "bytes outside a valid frame"  # type: ignore[union-attr]
    assert events[1].reason == "incomplete packet"  # type: ignore[union-attr]
    assert events[3] == Reading("SPO2", 90.0, "%")


def test_status_bit7_clear_is_not_a_frame() -> None:
    frame = bytes([0x01, 0x01, 0x10, 0x00])
    events = NoninFormat2Parser().feed(frame + bytes([checksum(frame)]) + packet())
    assert isinstance(events[0], FrameRejected)
    assert len(events) == 4


def test_frames_before_the_first_sync_are_reported_once() -> None:
    raw = packet()
    events = NoninFormat2Parser().feed(raw[10 * FRAME_LEN :] + raw)
    assert events[0] == FrameRejected("frames outside a packet", raw[10 * FRAME_LEN :])
    assert len(events) == 4


def test_garbage_is_reported_in_bounded_pieces() -> None:
    # The last FRAME_LEN - 1 bytes stay buffered: they may yet start a frame.
    events = NoninFormat2Parser().feed(b"\xaa" * (3 * MAX_JUNK + FRAME_LEN - 1))
    assert [len(e.data) for e in events if isinstance(e, FrameRejected)] == [MAX_JUNK] * 3


def test_pufferfish_unit_test_packet() -> None:
    """The 125-byte packet of pez-globo/pufferfish-software TestNoninOEM3.cpp: HR 72, SpO2 97."""
    frames = (
        [b"\x01\x81\x01\x00\x83", b"\x01\x80\x01\x48\xca", b"\x01\x80\x01\x61\xe3"]
        + [b"\x01\x80\x01\x30\xb2"]
        + [b"\x01\x80\x01\x00\x82"] * 4
        + [b"\x01\x80\x01\x61\xe3"] * 3
        + [b"\x01\x80\x01\x00\x82"] * 3
        + [b"\x01\x80\x01\x48\xca"]
        + [b"\x01\x80\x01\x61\xe3"] * 2
        + [b"\x01\x80\x01\x00\x82"] * 3
        + [b"\x01\x80\x01\x48\xca", b"\x01\x80\x01\x00\x82"]
        + [b"\x01\x80\x01\x48\xca"]
        + [b"\x01\x80\x01\x00\x82"] * 2
    )
    events = NoninFormat2Parser().feed(b"".join(frames))
    assert events[1:] == [Reading("SPO2", 97.0, "%"), Reading("PR", 72.0, "/min")]


def test_encoder_protocol_method_and_validation() -> None:
    raw = ENC.encode([Reading("SPO2", 95.0, "%"), Reading("PR", 88.0, "/min")])
    assert NoninFormat2Parser().feed(raw)[1:] == [
        Reading("SPO2", 95.0, "%"),
        Reading("PR", 88.0, "/min"),
    ]
    with pytest.raises(ValueError, match="pleth"):
        ENC.encode_packet(spo2=97, pulse_rate=72, pleth=[0] * 24)
    with pytest.raises(ValueError, match="out of range"):
        ENC.encode_packet(spo2=97, pulse_rate=600, pleth=FLAT)

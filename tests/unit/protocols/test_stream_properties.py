"""Property tests shared by the byte-stream parsers (Masimo ASCII 1, Nonin Data Format #2).

For each parser: chunking never changes the events (one chunk, byte by byte, random splits);
random noise never raises; buffers stay bounded under endless garbage; the encoder's output
parses back to its readings; and noise between valid frames costs only the noise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.protocols.base import FrameRejected, Parser, ParserEvent, Reading
from edge_agent.protocols.masimo_ascii import (
    EXC_MASIMO_SET,
    MAX_LINE,
    MasimoAscii1Encoder,
    MasimoAscii1Parser,
)
from edge_agent.protocols.nonin_oem import (
    ARTF,
    FRAME_LEN,
    FRAMES_PER_PACKET,
    GPRF,
    MAX_JUNK,
    SNSD,
    NoninFormat2Encoder,
    NoninFormat2Parser,
)
from wardwire.models import Quality

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@st.composite
def masimo_frames(draw: st.DrawFn) -> bytes:
    """One Masimo record as the encoder writes it, any layout, numbers or dashes."""
    encoder = MasimoAscii1Encoder(layout=draw(st.sampled_from(["radical7", "radical5"])))
    at = T0 + timedelta(seconds=draw(st.integers(0, 10**7)))
    return encoder.encode_line(
        at,
        spo2=draw(st.none() | st.integers(0, 100)),
        pulse_rate=draw(st.none() | st.integers(0, 400)),
        pi=draw(st.none() | st.integers(0, 9999).map(lambda v: v / 100)),
        alarm=draw(st.sampled_from([0, 0x10, 0x40])),
        exceptions=draw(st.sampled_from([0, EXC_MASIMO_SET, 0x820, 0x804, 0x008])),
    )


@st.composite
def nonin_frames(draw: st.DrawFn) -> bytes:
    """One Nonin packet (25 frames) as the encoder writes it."""
    return NoninFormat2Encoder().encode_packet(
        spo2=draw(st.none() | st.integers(0, 100)),
        pulse_rate=draw(st.none() | st.integers(0, 510)),
        pleth=draw(st.lists(st.integers(0, 255), min_size=25, max_size=25)),
        status=draw(st.sampled_from([0, GPRF, ARTF | GPRF, SNSD])),
        low_battery=draw(st.booleans()),
    )


@dataclass(frozen=True)
class StreamCase:
    name: str
    parser: Callable[[], Parser]
    frames: st.SearchStrategy[bytes]
    # Noise that cannot fake the start of a frame that overlaps the next real one (see below).
    noise: st.SearchStrategy[bytes]
    max_held: int


# Nonin noise excludes 0x01: a noise 0x01 can begin a 5-byte window that also passes the
# status-bit and 8-bit checksum tests by chance (p ~ 2**-9 per window) and swallow the first
# bytes of the next real frame. That is the protocol's own limit, not a parser bug; the other
# properties below still feed unrestricted bytes.
CASES = [
    StreamCase(
        "masimo_ascii1",
        MasimoAscii1Parser,
        masimo_frames(),
        st.binary(max_size=600),
        MAX_LINE,
    ),
    StreamCase(
        "nonin_format2",
        NoninFormat2Parser,
        nonin_frames(),
        st.binary(max_size=600).map(lambda b: b.replace(b"\x01", b"\x02")),
        FRAME_LEN + MAX_JUNK + 2 * FRAMES_PER_PACKET * FRAME_LEN,
    ),
]
ids = [c.name for c in CASES]


def feed_all(parser: Parser, chunks: Sequence[bytes]) -> list[ParserEvent]:
    events: list[ParserEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def held(parser: Parser) -> int:
    """Bytes (or frames' bytes) the parser is holding between calls."""
    total = 0
    for value in vars(parser).values():
        if isinstance(value, bytes | bytearray):
            total += len(value)
        elif isinstance(value, list):
            total += sum(len(item) for item in value)
    return total


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("case", CASES, ids=ids)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_chunking_never_changes_the_events(case: StreamCase, data: st.DataObject) -> None:
    pieces = data.draw(st.lists(case.frames | st.binary(max_size=40), max_size=6))
    stream = b"".join(pieces)
    cuts = data.draw(st.lists(st.integers(0, 10**6), max_size=12))
    whole = case.parser().feed(stream)
    bytewise = feed_all(case.parser(), [stream[i : i + 1] for i in range(len(stream))])
    random_split = feed_all(case.parser(), split(stream, cuts))
    assert bytewise == whole
    assert random_split == whole


@pytest.mark.parametrize("case", CASES, ids=ids)
@given(noise=st.lists(st.binary(max_size=300), max_size=8))
def test_random_noise_never_raises(case: StreamCase, noise: list[bytes]) -> None:
    parser = case.parser()
    for chunk in noise:
        events = parser.feed(chunk)
        assert all(isinstance(e, ParserEvent) for e in events)


@pytest.mark.parametrize("case", CASES, ids=ids)
@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=1, max_size=64), rounds=st.integers(50, 200))
def test_buffers_stay_bounded_under_endless_garbage(
    case: StreamCase, seed: bytes, rounds: int
) -> None:
    parser = case.parser()
    garbage = (seed * (4096 // len(seed) + 1))[:997]  # no newline-aligned period
    for _ in range(rounds):
        parser.feed(garbage)
        assert held(parser) <= case.max_held


@pytest.mark.parametrize("case", CASES, ids=ids)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_noise_between_frames_costs_only_the_noise(case: StreamCase, data: st.DataObject) -> None:
    frames = data.draw(st.lists(case.frames, min_size=1, max_size=5))
    noisy = b""
    for frame in frames:
        noisy += data.draw(case.noise) + frame
    clean = case.parser().feed(b"".join(frames))
    got = [e for e in case.parser().feed(noisy) if not isinstance(e, FrameRejected)]
    assert got == clean
    assert not any(isinstance(e, FrameRejected) for e in clean)


@settings(max_examples=60)
@given(
    spo2=st.integers(0, 100),
    pr=st.integers(0, 999),
    pi=st.integers(0, 9999).map(lambda v: v / 100),
    layout=st.sampled_from(["radical7", "radical5"]),
    seconds=st.integers(0, 10**8),
)
def test_masimo_encoder_round_trip(
    spo2: int, pr: int, pi: float, layout: str, seconds: int
) -> None:
    at = T0 + timedelta(seconds=seconds)
    line = MasimoAscii1Encoder(layout=layout).encode_line(at, spo2=spo2, pulse_rate=pr, pi=pi)
    assert MasimoAscii1Parser(device_tz=UTC).feed(line) == [
        Reading("SPO2", spo2, "%", at),
        Reading("PR", pr, "/min", at),
        Reading("PI", pi, "%", at),
    ]


@settings(max_examples=60)
@given(
    spo2=st.integers(0, 100),
    pr=st.integers(0, 510),
    pleth=st.lists(st.integers(0, 255), min_size=25, max_size=25),
    artifact=st.booleans(),
)
def test_nonin_encoder_round_trip(spo2: int, pr: int, pleth: list[int], artifact: bool) -> None:
    packet = NoninFormat2Encoder().encode_packet(
        spo2=spo2, pulse_rate=pr, pleth=pleth, status=GPRF | (ARTF if artifact else 0)
    )
    events = NoninFormat2Parser().feed(packet)
    quality = Quality.QUESTIONABLE if artifact else Quality.VALID
    assert events[1:] == [
        Reading("SPO2", spo2, "%", quality=quality),
        Reading("PR", pr, "/min", quality=quality),
    ]
    assert events[0].samples == tuple(float(s) for s in pleth)  # type: ignore[union-attr]

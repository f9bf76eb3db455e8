"""WWMON sans-IO parser: encoder round trip, chunking invariance, noise, rejections."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.protocols.base import DeviceCondition, FrameRejected, ParserEvent, Reading
from edge_agent.protocols.wwmon import MAX_LINE, WwmonEncoder, WwmonParser, checksum
from wardwire.models import DeviceState
from wardwire.params import PARAMETERS, ParamKind

NUMERIC = [p for p in PARAMETERS if p.kind is ParamKind.NUMERIC]
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

device_times = st.integers(
    int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2100, 1, 1, tzinfo=UTC).timestamp() * 1000),
).map(lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC))


@st.composite
def frame_values(draw: st.DrawFn) -> dict[str, float | None]:
    params = draw(st.lists(st.sampled_from(NUMERIC), min_size=1, max_size=6, unique=True))
    return {p.code: draw(st.none() | st.floats(p.low, p.high, allow_nan=False)) for p in params}


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, list[ParserEvent]]:
    """A valid frame and the events it must produce."""
    t = draw(device_times)
    values = draw(frame_values())
    expected: list[ParserEvent] = []
    for code, v in values.items():
        if v is None:
            expected.append(DeviceCondition(DeviceState.NO_SIGNAL, detail=code))
        else:
            unit = next(p.ucum for p in NUMERIC if p.code == code)
            expected.append(Reading(code, float(f"{v:.3f}"), unit, t))
    return WwmonEncoder().encode_frame(t, values), expected


noise_bytes = st.binary(max_size=80) | st.lists(
    st.sampled_from(
        [b"$", b"\n", b"\r", b"*", b",", b"=", b"WWMON", b"HR", b"1", b"---", b"$WWMON,"]
    ),
    max_size=30,
).map(b"".join)


def feed_all(data: bytes, cuts: list[int] | None = None) -> list[ParserEvent]:
    p = WwmonParser()
    if cuts is None:
        return p.feed(data)
    out: list[ParserEvent] = []
    prev = 0
    for c in [*sorted(set(cuts)), len(data)]:
        out += p.feed(data[prev:c])
        prev = c
    return out


def byte_by_byte(data: bytes) -> list[ParserEvent]:
    p = WwmonParser()
    out: list[ParserEvent] = []
    for i in range(len(data)):
        out += p.feed(data[i : i + 1])
    return out


def good(events: list[ParserEvent]) -> list[ParserEvent]:
    return [e for e in events if not isinstance(e, FrameRejected)]


def frame_line(body: bytes, cs: str | None = None) -> bytes:
    digits = cs if cs is not None else f"{checksum(body):02X}"
    return b"$" + body + b"*" + digits.encode() + b"\r\n"


# ---------------------------------------------------------------------------------------------
# encoder <-> parser


def test_documented_example() -> None:
    line = WwmonEncoder().encode_frame(T0, {"HR": 128, "SPO2": None, "TEMP": 37.25})
    body = b"WWMON,1709294400000,HR=128,SPO2=---,TEMP=37.25"
    assert line == frame_line(body)
    assert WwmonParser().feed(line) == [
        Reading("HR", 128.0, "/min", T0),
        DeviceCondition(DeviceState.NO_SIGNAL, detail="SPO2"),
        Reading("TEMP", 37.25, "Cel", T0),
    ]


@given(frames())
@SETTINGS
def test_encoder_parser_round_trip(frame: tuple[bytes, list[ParserEvent]]) -> None:
    line, expected = frame
    assert line.endswith(b"\r\n")
    assert line.isascii()
    events = WwmonParser().feed(line)
    assert events == expected
    for e in events:
        if isinstance(e, Reading):
            assert e.device_time is not None
            assert e.device_time.tzinfo is UTC


@given(device_times, st.sampled_from(NUMERIC), st.data())
@SETTINGS
def test_round_trip_value_precision(t: datetime, p: object, data: st.DataObject) -> None:
    code, low, high = p.code, p.low, p.high  # type: ignore[attr-defined]
    v = data.draw(st.floats(low, high, allow_nan=False))
    (ev,) = WwmonParser().feed(WwmonEncoder().encode_frame(t, {code: v}))
    assert isinstance(ev, Reading)
    assert abs(ev.value - v) <= 0.0005 + 1e-9
    assert ev.device_time == t


def test_negative_zero_and_rounding_to_zero() -> None:
    line = WwmonEncoder().encode_frame(T0, {"TEMP": 37.0, "PI": -0.0001, "HR": 0.0})
    assert b"PI=0," in line
    assert [e.value for e in WwmonParser().feed(line) if isinstance(e, Reading)] == [37.0, 0, 0]


# ---------------------------------------------------------------------------------------------
# chunking


@given(st.lists(frames(), min_size=1, max_size=5), st.data())
@SETTINGS
def test_chunking_never_changes_events_of_valid_frames(
    fs: list[tuple[bytes, list[ParserEvent]]], data: st.DataObject
) -> None:
    stream = b"".join(f for f, _ in fs)
    expected = [e for _, ev in fs for e in ev]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert feed_all(stream) == expected
    assert byte_by_byte(stream) == expected
    assert feed_all(stream, cuts) == expected


@given(st.lists(frames() | noise_bytes.map(lambda b: (b, [])), max_size=6), st.data())
@SETTINGS
def test_chunking_never_changes_events_with_noise(
    parts: list[tuple[bytes, list[ParserEvent]]], data: st.DataObject
) -> None:
    """'the events depend only on the byte stream, never on how it was chunked' (feed doc).

    The noise here never builds a line longer than MAX_LINE; see the overlong xfail below.
    """
    stream = b"".join(b for b, _ in parts)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    whole = feed_all(stream)
    assert byte_by_byte(stream) == whole
    assert feed_all(stream, cuts) == whole


def test_empty_feed_is_harmless() -> None:
    p = WwmonParser()
    assert p.feed(b"") == []
    line = WwmonEncoder().encode_frame(T0, {"HR": 80})
    assert p.feed(line[:5]) == []
    assert p.feed(b"") == []
    assert good(p.feed(line[5:])) == [Reading("HR", 80.0, "/min", T0)]


def _frame_of_text_length(n: int) -> bytes:
    """A valid frame whose text (from '$' to the checksum digits, no CRLF) is ``n`` bytes."""
    head = b"WWMON,1709294400000,HR="
    pad = n - 1 - len(head) - 3 - 2
    body = head + b"0" * pad + b"80"
    line = frame_line(body)
    assert len(line) == n + 2
    return line


@pytest.mark.parametrize("n", [MAX_LINE - 2, MAX_LINE - 1])
def test_frame_just_below_max_line_passes_any_chunking(n: int) -> None:
    line = _frame_of_text_length(n)
    expected = [Reading("HR", 80.0, "/min", T0)]
    assert feed_all(line) == expected
    assert byte_by_byte(line) == expected


def test_frame_of_exactly_max_line_accepted_in_one_chunk() -> None:
    assert feed_all(_frame_of_text_length(MAX_LINE)) == [Reading("HR", 80.0, "/min", T0)]


def test_frame_of_exactly_max_line_accepted_byte_by_byte() -> None:
    assert byte_by_byte(_frame_of_text_length(MAX_LINE)) == [Reading("HR", 80.0, "/min", T0)]


def test_frame_longer_than_max_line_rejected_however_chunked() -> None:
    line = _frame_of_text_length(MAX_LINE + 1)
    for events in (feed_all(line), byte_by_byte(line)):
        assert events
        assert all(isinstance(e, FrameRejected) for e in events)
        assert any(e.reason == "line too long" for e in events if isinstance(e, FrameRejected))


# ---------------------------------------------------------------------------------------------
# noise


@given(st.lists(st.binary(max_size=300) | noise_bytes, max_size=20))
@settings(max_examples=150, deadline=None)
def test_noise_never_raises_and_buffer_stays_bounded(chunks: list[bytes]) -> None:
    p = WwmonParser()
    for c in chunks:
        events = p.feed(c)
        assert all(isinstance(e, FrameRejected | Reading | DeviceCondition) for e in events)
        assert len(p._buf) <= MAX_LINE + 2


def test_long_garbage_without_newline_is_bounded_and_reported() -> None:
    p = WwmonParser()
    events: list[ParserEvent] = []
    for _ in range(50):
        events += p.feed(b"x" * 100)
        assert len(p._buf) <= MAX_LINE + 2
    events += p.feed(b"$" + b"y" * 2000)
    assert len(p._buf) <= MAX_LINE + 2
    assert events
    assert all(isinstance(e, FrameRejected) for e in events)


@given(st.lists(st.tuples(noise_bytes, frames()), min_size=1, max_size=5), st.data())
@SETTINGS
def test_noise_between_frames_never_hides_a_later_frame(
    pairs: list[tuple[bytes, tuple[bytes, list[ParserEvent]]]], data: st.DataObject
) -> None:
    stream = b"".join(n + f for n, (f, _) in pairs)
    expected = [e for _, (_, ev) in pairs for e in ev]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    for events in (feed_all(stream), feed_all(stream, cuts)):
        got = good(events)
        it = iter(got)  # every expected event appears, in order (noise may add, never hide)
        assert all(any(g == e for g in it) for e in expected), (got, expected)


def test_resync_after_truncated_frame() -> None:
    good_line = WwmonEncoder().encode_frame(T0, {"HR": 90})
    events = WwmonParser().feed(good_line[:15] + good_line)
    assert isinstance(events[0], FrameRejected)
    assert events[0].reason == "truncated frame"
    assert events[1:] == [Reading("HR", 90.0, "/min", T0)]


def test_garbage_is_reported_not_silently_dropped() -> None:
    good_line = WwmonEncoder().encode_frame(T0, {"HR": 90})
    events = WwmonParser().feed(b"hello\r\n" + good_line)
    assert events == [
        FrameRejected("bytes outside a frame", b"hello\r\n"),
        Reading("HR", 90.0, "/min", T0),
    ]
    # bare line endings between frames are not noise
    assert WwmonParser().feed(b"\r\n\n" + good_line) == [Reading("HR", 90.0, "/min", T0)]


# ---------------------------------------------------------------------------------------------
# rejected frames

BODY = b"WWMON,1709294400000,HR=80,RR=30"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (frame_line(BODY, "00"), "checksum mismatch"),
        (frame_line(BODY, f"{checksum(BODY) ^ 1:02X}"), "checksum mismatch"),
        (frame_line(BODY, "ZZ"), "bad checksum digits"),
        (b"$" + BODY + b"\r\n", "no checksum"),
        (b"$" + BODY + b"*5\r\n", "no checksum"),
        (b"$" + BODY + b"*555\r\n", "no checksum"),
        (frame_line(b"WWMON,1709294400000,HR=80,XX=1"), "unknown field"),
        (frame_line(b"WWMON,1709294400000,hr=80"), "unknown field"),
        (frame_line(b"WWMON,1709294400000,PLETH=1"), "unknown field"),
        (frame_line(b"WWMON,1709294400000,AVPU=1"), "unknown field"),
        (frame_line(b"WWMON,1709294400000,HR"), "unknown field"),
        (frame_line(b"WWMON,1709294400000,HR=abc"), "bad value for HR"),
        (frame_line(b"WWMON,1709294400000,HR="), "bad value for HR"),
        (frame_line(b"WWMON,1709294400000,HR=nan"), "bad value for HR"),
        (frame_line(b"WWMON,1709294400000,HR=inf"), "bad value for HR"),
        (frame_line(b"WWMON,1709294400000,HR=-Infinity"), "bad value for HR"),
        (frame_line(b"WWMON,notatime,HR=80"), "bad device time"),
        (frame_line(b"WWMON,99999999999999999999999,HR=80"), "bad device time"),
        (frame_line(b"XXMON,1709294400000,HR=80"), "not a WWMON record"),
        (frame_line(b"WWMON,1709294400000"), "not a WWMON record"),
    ],
)
def test_bad_frames_rejected(line: bytes, reason: str) -> None:
    for events in (feed_all(line), byte_by_byte(line)):
        assert len(events) == 1
        (ev,) = events
        assert isinstance(ev, FrameRejected)
        assert ev.reason.startswith(reason)
        assert ev.data == line


def test_one_bad_field_rejects_the_whole_frame() -> None:
    line = frame_line(b"WWMON,1709294400000,HR=80,SPO2=---,BOGUS=1")
    assert [type(e) for e in WwmonParser().feed(line)] == [FrameRejected]


def test_overlong_line_rejected_then_next_frame_parsed() -> None:
    long_body = b"WWMON,1709294400000," + b",".join([b"HR=80"] * 120)
    good_line = WwmonEncoder().encode_frame(T0, {"RR": 22})
    for events in (
        feed_all(frame_line(long_body) + good_line),
        byte_by_byte(frame_line(long_body) + good_line),
    ):
        assert any(isinstance(e, FrameRejected) and e.reason == "line too long" for e in events)
        assert good(events) == [Reading("RR", 22.0, "/min", T0)]


@pytest.mark.parametrize(
    "line",
    [b"$" + b"x" * 600 + b"\n", frame_line(b"WWMON,1709294400000," + b",".join([b"HR=80"] * 120))],
)
def test_overlong_line_events_do_not_depend_on_chunking(line: bytes) -> None:
    assert byte_by_byte(line) == feed_all(line)


def test_parser_does_not_range_check_values() -> None:
    """Plausibility is the wire model's job (Observation); the parser only decodes."""
    line = frame_line(b"WWMON,1709294400000,HR=999")
    assert WwmonParser().feed(line) == [Reading("HR", 999.0, "/min", T0)]


def test_checksum_is_xor_of_body() -> None:
    assert checksum(b"") == 0
    assert checksum(b"A") == 0x41
    assert checksum(b"AB") == 0x41 ^ 0x42

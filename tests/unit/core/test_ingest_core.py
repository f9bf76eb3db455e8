"""Ingest routing (validate one MQTT message -> line protocol) and sequence tracking."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.core import Accepted, Rejected, SeqTracker, WardIndex, route
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Observation, ObservationBatch, WaveformBlock

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PATIENTS = ("P-secret01", "P-secret02")

WARD = UnitContext(
    site="s1",
    unit="picu",
    generation="test",
    gateways=[GatewayContext(id="gw-a"), GatewayContext(id="gw-b")],
    beds=[
        BedContext(
            id="bed01",
            patient=PATIENTS[0],
            dob=date(2022, 3, 14),
            gateway="gw-a",
            devices=["mon-1", "oxi-1"],
        ),
        BedContext(id="bed02", patient=PATIENTS[1], gateway="gw-b", devices=["mon-2"]),
    ],
)
INDEX = WardIndex(WARD)


def obs(device: str = "mon-1", code: str = "HR", value: float = 120.0, **kw: Any) -> Observation:
    unit = {"HR": "/min", "SPO2": "%", "TEMP": "Cel", "AVPU": "{score}"}[code]
    return Observation(
        device_id=device,
        code=code,
        value=value,
        unit=unit,
        measured_at=kw.pop("measured_at", T0),
        received_at=T0 + timedelta(seconds=1),
        **kw,
    )


def wave(device: str = "mon-1", n: int = 4, rate: float = 250.0) -> WaveformBlock:
    return WaveformBlock(
        device_id=device,
        code="ECG_II",
        unit="mV",
        start=T0,
        received_at=T0,
        sample_rate_hz=rate,
        samples=[0.1 * i for i in range(n)],
    )


def payload(
    gw: str = "gw-a",
    seq: int = 5,
    observations: list[Observation] | None = None,
    waveforms: list[WaveformBlock] | None = None,
    generation: str = "test",
) -> bytes:
    return (
        ObservationBatch(
            gateway_id=gw,
            seq=seq,
            sent_at=T0,
            generation=generation,  # type: ignore[arg-type]
            observations=[obs()] if observations is None else observations,
            waveforms=waveforms or [],
        )
        .model_dump_json()
        .encode()
    )


def topic(gw: str = "gw-a", site: str = "s1", unit: str = "picu") -> str:
    return topics.gateway_obs(site, unit, gw)


def parse(line: str) -> tuple[str, dict[str, str], str, int]:
    """Tags here are Idents and enum values: no escapes to worry about."""
    head, fields, ts = line.split(" ")
    meas, *tag_parts = head.split(",")
    tags = dict(t.split("=", 1) for t in tag_parts)
    return meas, tags, fields, int(ts)


def accepted(result: Accepted | Rejected) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def test_valid_batch() -> None:
    items = [
        obs(),
        obs("oxi-1", "SPO2", 97.0, quality="questionable"),
        obs("mon-1", "AVPU", 0.0, source="entered"),
    ]
    r = accepted(route(topic(), payload(observations=items, seq=42), INDEX))
    assert (r.gateway_id, r.seq, r.n_obs, r.unknown_devices) == ("gw-a", 42, 3, {})
    assert len(r.lines) == 3
    want_ns = int(T0.timestamp()) * 10**9
    for line, o in zip(r.lines, items, strict=True):
        meas, tags, fields, ts = parse(line)
        assert meas == "obs"
        assert tags == {
            "unit": "picu",
            "bed": "bed01",
            "device": o.device_id,
            "param": o.code,
            "source": o.source.value,
            "generation": "test",
        }
        assert f'quality="{o.quality.value}"' in fields
        assert "gw_seq=42i" in fields
        assert f"value={float(o.value)!r}" in fields
        assert ts == want_ns
    for line in r.lines:
        assert not any(p in line for p in PATIENTS)
        assert "patient" not in line
        assert "2022-03-14" not in line


def test_timestamp_is_measurement_time_with_microseconds() -> None:
    t = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    r = accepted(route(topic(), payload(observations=[obs(measured_at=t)]), INDEX))
    assert parse(r.lines[0])[3] == 1_709_294_400_123_456_000


def test_replay_gives_identical_lines() -> None:
    p = payload(observations=[obs(), obs("oxi-1", "SPO2", 90.0)], waveforms=[wave()])
    assert accepted(route(topic(), p, INDEX)).lines == accepted(route(topic(), p, INDEX)).lines


def test_waveform_points() -> None:
    r = accepted(route(topic(), payload(observations=[obs()], waveforms=[wave(n=5)]), INDEX))
    assert r.n_obs == 1
    wl = [parse(x) for x in r.lines if x.startswith("wave,")]
    assert len(wl) == 5
    base = int(T0.timestamp()) * 10**9
    for i, (meas, tags, fields, ts) in enumerate(wl):
        assert meas == "wave"
        assert tags == {
            "unit": "picu",
            "bed": "bed01",
            "device": "mon-1",
            "param": "ECG_II",
            "generation": "test",
        }
        assert "source" not in tags
        assert ts == base + i * 4_000_000  # 250 Hz
        assert float(fields.removeprefix("value=")) == pytest.approx(0.1 * i)


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"\xff\xfe", b"[]", b"null", b"{", b'{"kind": "obs_batch"}'],
)
def test_malformed_payload(raw: bytes) -> None:
    r = route(topic(), raw, INDEX)
    assert isinstance(r, Rejected)
    assert r.kind == "malformed"
    assert "errors)" in r.reason


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.update(observations=[], waveforms=[]), "at least one"),
        (lambda d: d["observations"][0].update(value=999.0), "observations.0"),
        (lambda d: d["observations"][0].update(unit="bpm"), "observations.0"),
        (lambda d: d["observations"][0].update(code="XX"), "observations.0"),
        (lambda d: d.update(sent_at="2024-03-01T12:00:00"), "sent_at"),
        (lambda d: d.update(seq=-1), "seq"),
    ],
)
def test_schema_violation(mutate: Any, where: str) -> None:
    d = json.loads(payload())
    mutate(d)
    r = route(topic(), json.dumps(d).encode(), INDEX)
    assert isinstance(r, Rejected)
    assert r.kind == "malformed"
    assert where in r.reason


def test_gateway_id_must_match_topic() -> None:
    r = route(topic("gw-b"), payload(gw="gw-a"), INDEX)
    assert isinstance(r, Rejected)
    assert r.kind == "identity"
    assert "gw-a" in r.reason
    assert "gw-b" in r.reason


@pytest.mark.parametrize(
    ("t", "gw"),
    [
        (topic("gw-z"), "gw-z"),
        (topic("gw-a", site="other"), "gw-a"),
        (topic("gw-a", unit="nicu"), "gw-a"),
    ],
)
def test_unknown_gateway(t: str, gw: str) -> None:
    r = route(t, payload(gw=gw), INDEX)
    assert isinstance(r, Rejected)
    assert r.kind == "unknown_gateway"


@pytest.mark.parametrize("gen", ["real", "demo"])
def test_wrong_generation(gen: str) -> None:
    r = route(topic(), payload(generation=gen), INDEX)
    assert isinstance(r, Rejected)
    assert r.kind == "wrong_generation"
    assert gen in r.reason


@pytest.mark.parametrize(
    "t",
    ["wm/v1/alerting/s1/picu/score/bed01", "wm/v1/gw/s1/picu/gw-a", "", "x/gw/s1/picu/gw-a/obs"],
)
def test_not_a_gateway_topic(t: str) -> None:
    r = route(t, payload(), INDEX)
    assert isinstance(r, Rejected)
    assert r.kind == "topic"


def test_custom_root() -> None:
    t = topics.gateway_obs("s1", "picu", "gw-a", root="t9/v1")
    assert isinstance(route(t, payload(), INDEX, root="t9/v1"), Accepted)
    assert route(t, payload(), INDEX).kind == "topic"  # type: ignore[union-attr]


def test_unknown_devices_split_off_known_ones_written() -> None:
    items = [obs(), obs("ghost"), obs("ghost"), obs("mon-2"), obs("oxi-1", "SPO2", 95.0)]
    r = accepted(route(topic(), payload(observations=items, waveforms=[wave("ghost", n=7)]), INDEX))
    # mon-2 is registered, but on gw-b: on gw-a it is unknown
    assert r.unknown_devices == {"ghost": 2 + 7, "mon-2": 1}
    assert r.n_obs == 2
    assert [parse(x)[1]["device"] for x in r.lines] == ["mon-1", "oxi-1"]


def test_all_devices_unknown() -> None:
    r = accepted(route(topic(), payload(observations=[obs("ghost")]), INDEX))
    assert (r.lines, r.n_obs, r.unknown_devices) == ([], 0, {"ghost": 1})


def test_other_gateway_routes_to_its_own_beds() -> None:
    r = accepted(route(topic("gw-b"), payload(gw="gw-b", observations=[obs("mon-2")]), INDEX))
    assert parse(r.lines[0])[1]["bed"] == "bed02"


@pytest.mark.parametrize(
    "t",
    [
        topics.gateway_status("s1", "picu", "gw-a"),
        topics.device_status("s1", "picu", "gw-a", "mon-1"),
    ],
)
def test_batch_on_a_non_obs_topic_rejected(t: str) -> None:
    assert isinstance(route(t, payload(), INDEX), Rejected)


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@settings(max_examples=150, deadline=None)
def test_route_never_raises_on_garbage(raw: bytes) -> None:
    assert isinstance(route(topic(), raw, INDEX), Rejected)


@given(st.text(max_size=60))
@settings(max_examples=100, deadline=None)
def test_route_never_raises_on_any_topic(t: str) -> None:
    assert isinstance(route(t, payload(), INDEX), Accepted | Rejected)


# ---------------------------------------------------------------------------------------------
# SeqTracker


def test_seq_contiguous_gap_fill_duplicate() -> None:
    s = SeqTracker()
    assert (s.observe("g", 0).new_gap, s.gaps_total) == (0, 0)
    res = s.observe("g", 4)  # 1, 2, 3 missing
    assert (res.duplicate, res.new_gap, res.filled) == (False, 3, False)
    assert (s.gaps_total, s.open_gaps("g"), s.high["g"]) == (3, 3, 4)
    res = s.observe("g", 2)  # late arrival fills one
    assert (res.duplicate, res.new_gap, res.filled) == (False, 0, True)
    assert (s.gaps_total, s.open_gaps("g"), s.high["g"]) == (2, 2, 4)
    res = s.observe("g", 2)  # now it is a duplicate
    assert (res.duplicate, res.new_gap, res.filled) == (True, 0, False)
    assert (s.duplicates_total, s.gaps_total) == (1, 2)
    res = s.observe("g", 4)
    assert res.duplicate
    assert s.high["g"] == 4
    assert s.open_gaps("unknown") == 0


def test_gateways_are_independent() -> None:
    s = SeqTracker()
    s.observe("a", 0)
    s.observe("b", 10)
    assert s.observe("a", 1).new_gap == 0
    assert s.observe("b", 11).new_gap == 0
    assert s.observe("b", 11).duplicate
    assert (s.gaps_total, s.duplicates_total) == (0, 1)


@given(st.integers(0, 10**6), st.integers(1, 500))
def test_gap_of_k_counts_k(start: int, k: int) -> None:
    s = SeqTracker()
    s.observe("g", start)
    res = s.observe("g", start + k + 1)
    assert res.new_gap == k
    assert s.gaps_total == k
    assert s.open_gaps("g") == k


@given(st.permutations(range(30)).map(lambda p: [0, *[x for x in p if x != 0]]), st.data())
@settings(max_examples=100, deadline=None)
def test_any_reordering_after_the_first_leaves_no_gaps(
    order: list[int], data: st.DataObject
) -> None:
    s = SeqTracker()
    dups = data.draw(st.lists(st.integers(0, len(order) - 1), max_size=10))
    seen: set[int] = set()
    expected_dups = 0
    stream = list(order)
    for at in sorted(dups, reverse=True):  # re-send a seq after its first arrival
        stream.insert(at + 1, stream[at])
    for seq in stream:
        hw_before = s.high.get("g")
        res = s.observe("g", seq)
        if seq in seen:
            expected_dups += 1
            assert res.duplicate
            assert s.high["g"] == hw_before  # a duplicate never moves the high-water mark
        seen.add(seq)
    assert s.gaps_total == 0
    assert s.open_gaps("g") == 0
    assert s.duplicates_total == expected_dups
    assert s.high["g"] == 29


@given(st.permutations(range(20)))
@settings(max_examples=100, deadline=None)
def test_any_permutation_ends_without_gaps(order: list[int]) -> None:
    s = SeqTracker()
    for seq in order:
        s.observe("g", seq)
    assert s.gaps_total == 0
    assert s.open_gaps("g") == 0
    assert s.high["g"] == 19


def test_reordered_first_messages_are_not_duplicates() -> None:
    s = SeqTracker()
    for seq in [2, 0, 1, 3]:
        s.observe("g", seq)
    assert s.duplicates_total == 0


@given(st.lists(st.integers(0, 200), max_size=60))
@settings(max_examples=150, deadline=None)
def test_seq_tracker_invariants(seqs: list[int]) -> None:
    s = SeqTracker(max_missing=50)
    seen: set[int] = set()
    for seq in seqs:
        hw, lw = s.high.get("g"), s.low.get("g")
        res = s.observe("g", seq)
        if hw is not None and lw is not None:
            assert s.high["g"] == max(hw, seq)  # the high-water mark never goes down
            # a gap opens above the high-water mark, or below the low-water mark
            assert res.new_gap == max(0, seq - hw - 1) + max(0, lw - seq - 1)
        if seq in seen:
            assert res.duplicate
        assert not (res.duplicate and res.filled)
        seen.add(seq)
        assert s.gaps_total >= 0
        assert s.open_gaps("g") <= 50
        assert all(m < s.high["g"] for m in s.missing["g"])
        assert not (s.missing["g"] & seen)

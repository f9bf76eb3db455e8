"""``alerting.replay_influx``, the pure half: stored rows -> replay lines.

alerting may not import ingest, so the conversion repeats the few names of ingest's layout it
reads; these tests hold the two together (ingest's own encoders and decoders as oracles) and
hold the device mapping to the live engine's ``from_observation``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerting.core import default_rules
from alerting.core.items import from_observation
from alerting.replay import Replay
from alerting.replay_influx import (
    BedSpec,
    Converter,
    LabelsError,
    bed_specs,
    chart_items,
    obs_input,
    read_labels,
    stream,
    with_labels,
)
from ingest.storage import charted_fields, charted_items
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation, Observation, Quality, TimeSource
from wardwire.params import BY_CODE, ParamKind

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
NS0 = int(T0.timestamp()) * 1_000_000_000
CODES = sorted(c for c, p in BY_CODE.items() if p.kind is not ParamKind.WAVEFORM)


@settings(max_examples=150, deadline=None)
@given(
    code=st.sampled_from(CODES),
    value=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-5, 400)),
    quality=st.sampled_from(list(Quality)),
    retimed=st.booleans(),
)
def test_obs_input_maps_as_the_live_engine_does(
    code: str, value: float, quality: Quality, retimed: bool
) -> None:
    try:
        obs = Observation(
            device_id="d1", code=code, value=value, unit=BY_CODE[code].ucum, measured_at=T0,
            received_at=T0, quality=quality,
            quality_reason="probe off" if quality is Quality.INVALID else None,
            time_source=TimeSource.GATEWAY if retimed else TimeSource.DEVICE,
        )
    except ValidationError:
        return  # the wire would not carry it, so ingest never stored it
    live = from_observation(obs)
    got = obs_input(code, float(obs.value), quality.value, "gateway" if retimed else None)
    if live is None:
        assert got == ("retimed" if retimed else "not_scored")
    elif live.retimed:
        assert got == "retimed"
    else:
        assert got == (live.key, live.value)


def test_obs_input_refuses_what_influx_might_answer_oddly() -> None:
    assert obs_input("HR", None, "valid", None) == "bad_value"
    assert obs_input("HR", "90", "valid", None) == "bad_value"
    assert obs_input("HR", True, "valid", None) == "bad_value"
    assert obs_input("HR", math.inf, "valid", None) == "bad_value"
    assert obs_input("AVPU", 99.0, "valid", None) == ("avpu", None)  # outside the table
    assert obs_input("NOPE", 1.0, "valid", None) == "not_scored"


ITEM = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
              st.integers(-1000, 1000), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None)
@given(items=st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), ITEM, max_size=6))
def test_chart_items_is_the_inverse_of_ingests_charted_fields(items: dict[str, Any]) -> None:
    fields = charted_fields(items)
    row = {**fields, "time": 1, "charted_at": "x", "already_escalated": False, "unit": "u",
           "bed": "b", "by": "n", "generation": "real", "set_id": "s1", "supersedes": None}
    assert chart_items(row) == charted_items(row)
    expected = {
        k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for k, v in items.items()
    }
    assert chart_items(row) == expected


def ctx(**beds: date | None) -> UnitContext:
    return UnitContext(
        site="s1", unit="u1", generation=Generation.REAL, gateways=[GatewayContext(id="gw1")],
        beds=[BedContext(id=b, gateway="gw1", devices=[f"d-{b}"], dob=d,
                         patient=None if d is None else f"P-{b}x00")
              for b, d in beds.items()],
    )


def obs(sec: float, bed: str, param: str, value: float, **kw: Any) -> dict[str, Any]:
    return {"time": NS0 + int(sec * 1e9), "bed": bed, "device": f"d-{bed}", "param": param,
            "source": "measured", "generation": "real", "value": value, "quality": "valid",
            "time_source": None, **kw}


def chart(sec: float, bed: str, set_id: str, **fields: Any) -> dict[str, Any]:
    return {"time": NS0 + int(sec * 1e9), "bed": bed, "set_id": set_id, "by": "nurse",
            "unit": "u1", "generation": "real", "charted_at": T0.isoformat(),
            "already_escalated": False, "supersedes": None, **fields}


def test_bed_specs_split_beds_with_and_without_a_child() -> None:
    specs, without = bed_specs(ctx(b1=date(2021, 1, 1), b2=None))
    assert specs == {"b1": BedSpec("bedside_pews", date(2021, 1, 1))}
    assert set(without) == {"b2"}


def test_a_page_becomes_ordered_lines_with_provenance_and_the_spec_first() -> None:
    specs, without = bed_specs(ctx(b1=date(2021, 1, 1), b2=date(2015, 6, 1), b3=None))
    warnings: list[str] = []
    conv = Converter(specs, without=without, warn=warnings.append)
    rows = [
        obs(1, "b2", "HR", 90.0),
        obs(0, "b1", "SPO2", 97.0, quality="questionable"),
        obs(0, "b1", "HR", 120.0),
        obs(0, "b1", "RR", 30.0, quality="invalid"),
        obs(0, "b1", "PR", 121.0, device="d-ox"),
        obs(0, "b1", "NIBP_DIA", 50.0),  # no score uses it
        obs(0, "b1", "TEMP", 37.0, time_source="gateway"),  # re-timed: never scored
        obs(0, "b1", "HR", 99.0, generation="test"),
        obs(0, "b3", "HR", 99.0),  # no child in the bed
        obs(0, "b9", "HR", 99.0),  # not a bed of the unit
        obs(2, "b1", "AVPU", 0.0, source="entered"),
    ]
    charts = [
        chart(0, "b1", "set-1", crt_s=2.0, resp_effort__str="mild",
              oxygen__json='{"device":"room_air"}'),
        chart(1, "b1", "set-2", nonsense__str="x"),  # refused by the scorer's vocabulary
    ]
    lines = conv.page(rows, charts)
    assert lines == [
        {"t": "2024-05-01T10:00:00Z", "bed": "b1", "system": "bedside_pews",
         "dob": "2021-01-01", "inputs": {"spo2_pct": 97.0}, "source": "measured",
         "quality": "questionable"},
        {"t": "2024-05-01T10:00:00Z", "bed": "b1", "inputs": {"hr_bpm": 120.0, "rr_bpm": None},
         "source": "measured"},
        {"t": "2024-05-01T10:00:00Z", "bed": "b1", "inputs": {"pr_bpm": 121.0},
         "source": "measured"},
        {"t": "2024-05-01T10:00:00Z", "bed": "b1",
         "inputs": {"crt_s": 2.0, "resp_effort": "mild", "oxygen": {"device": "room_air"}},
         "source": "entered"},
        {"t": "2024-05-01T10:00:01Z", "bed": "b2", "system": "bedside_pews",
         "dob": "2015-06-01", "inputs": {"hr_bpm": 90.0}, "source": "measured"},
        {"t": "2024-05-01T10:00:02Z", "bed": "b1", "inputs": {"avpu": "A"}, "source": "entered"},
    ]
    assert conv.skipped == {
        "not_scored": 1, "retimed": 1, "other_generation": 1, "no_admission": 1,
        "unknown_bed": 1, "chart_refused": 1,
    }
    assert any("b3" in w for w in warnings) and any("b9" in w for w in warnings)
    assert any("set-2" in w for w in warnings)
    r = Replay(default_rules(), unit="u1")
    for i, rec in enumerate(lines, 1):
        r.feed_record(json.loads(json.dumps(rec)), i)  # every line is a valid replay line
    assert r.summary()["beds"] == 2


def test_microsecond_times_survive() -> None:
    conv = Converter({"b1": BedSpec("bedside_pews", date(2021, 1, 1))})
    (rec,) = conv.page([obs(0.000123, "b1", "HR", 100.0)], [])
    assert rec["t"] == "2024-05-01T10:00:00.000123Z"


class FakeReader:
    """Rows by time window, as InfluxDB answers ``time >= a AND time < b``."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.windows: list[tuple[datetime, datetime]] = []

    def obs(self, unit: str, gen: str, a: datetime, b: datetime) -> list[dict[str, Any]]:
        self.windows.append((a, b))
        lo, hi = (int(x.timestamp() * 1e9) for x in (a, b))
        return [r for r in self.rows if lo <= r["time"] < hi]

    def charted(self, unit: str, gen: str, a: datetime, b: datetime) -> list[dict[str, Any]]:
        return []

    def next_time(self, unit: str, gen: str, a: datetime, b: datetime) -> datetime | None:
        lo, hi = (int(x.timestamp() * 1e9) for x in (a, b))
        times = [r["time"] for r in self.rows if lo <= r["time"] < hi]
        return T0 + timedelta(microseconds=(min(times) - NS0) // 1000) if times else None


@settings(max_examples=50, deadline=None)
@given(
    page_s=st.integers(1, 4000),
    gaps=st.lists(st.integers(0, 30 * 86400), max_size=40),
    page_rows=st.integers(1, 50),
)
def test_paging_never_changes_the_lines(page_s: int, gaps: list[int], page_rows: int) -> None:
    times = sorted({g + 0.5 for g in gaps})
    rows = [obs(s, "b1", "HR", 80.0 + i % 50) for i, s in enumerate(times)]
    specs = {"b1": BedSpec("bedside_pews", date(2021, 1, 1))}
    one = Converter(specs).page(rows, [])
    reader = FakeReader(rows)
    paged = list(stream(reader, Converter(specs), unit="u1",  # type: ignore[arg-type]
                        start=T0, end=T0 + timedelta(days=31),
                        page=timedelta(seconds=page_s), page_rows=page_rows))
    assert paged == one
    assert all(b - a <= timedelta(seconds=page_s) for a, b in reader.windows)


def test_a_long_sparse_range_costs_queries_per_gap_not_per_page() -> None:
    rows = [obs(0, "b1", "HR", 80.0), obs(20 * 86400, "b1", "HR", 81.0)]
    reader = FakeReader(rows)
    lines = list(stream(reader, Converter({"b1": BedSpec("bedside_pews", date(2021, 1, 1))}),
                        unit="u1", start=T0, end=T0 + timedelta(days=30),  # type: ignore[arg-type]
                        page=timedelta(minutes=5)))
    assert len(lines) == 2 and len(reader.windows) <= 4  # not 8,640 pages of five minutes


def test_a_dense_page_halves_the_next() -> None:
    rows = [obs(s / 10, "b1", "HR", 80.0) for s in range(6000)]  # 10 rows a second
    reader = FakeReader(rows)
    list(stream(reader, Converter({"b1": BedSpec("bedside_pews", date(2021, 1, 1))}),
                unit="u1", start=T0, end=T0 + timedelta(minutes=10),  # type: ignore[arg-type]
                page=timedelta(minutes=5), page_rows=500))
    sizes = [b - a for a, b in reader.windows]
    assert sizes[0] == timedelta(minutes=1) and min(sizes) < timedelta(minutes=1)


def test_pages_grow_to_the_largest_on_sparse_data() -> None:
    rows = [obs(s * 60.0, "b1", "HR", 80.0) for s in range(600)]  # a row a minute
    reader = FakeReader(rows)
    list(stream(reader, Converter({"b1": BedSpec("bedside_pews", date(2021, 1, 1))}),
                unit="u1", start=T0, end=T0 + timedelta(hours=10),  # type: ignore[arg-type]
                page=timedelta(minutes=60)))
    sizes = [b - a for a, b in reader.windows]
    assert sizes[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert max(sizes) == timedelta(minutes=60) and len(sizes) < 20


def test_stream_refuses_a_page_of_no_time() -> None:
    with pytest.raises(ValueError, match="positive"):
        list(stream(FakeReader([]), Converter({}), unit="u1",  # type: ignore[arg-type]
                    start=T0, end=T0 + timedelta(seconds=1), page=timedelta(0)))


def test_labels_merge_in_by_time_after_the_lines_of_their_time() -> None:
    recs = [{"t": "2024-05-01T10:00:00Z", "bed": "b1", "inputs": {}},
            {"t": "2024-05-01T10:01:00Z", "bed": "b1", "inputs": {}}]
    text = [json.dumps({"t": t, "bed": "b1", "label": n}) for t, n in (
        ("2024-05-01T09:00:00Z", "before"), ("2024-05-01T10:00:00Z", "same"),
        ("2024-05-01T12:00:00+02:00", "between"), ("2024-05-01T11:00:00Z", "after"))]
    merged = list(with_labels(iter(recs), read_labels(["", *text])))
    assert [r.get("label", "line") for r in merged] == [
        "before", "line", "same", "between", "line", "after"]


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (["{oops"], "line 1: not JSON"),
        (['{"t": "2024-05-01T10:00:00Z", "bed": "b1", "inputs": {}}'], "not a label line"),
        (['{"t": "yesterday", "bed": "b1", "label": "x"}'], "not an ISO-8601"),
        (['{"t": "2024-05-01T10:00:00", "bed": "b1", "label": "x"}'], "no time zone"),
        (['{"t": "2024-05-01T10:00:00Z", "bed": "b1", "label": "x"}',
          '{"t": "2024-05-01T09:00:00Z", "bed": "b1", "label": "x"}'], "line 2: t: before"),
    ],
)
def test_a_labels_file_that_cannot_be_merged(lines: list[str], why: str) -> None:
    with pytest.raises(LabelsError, match=why):
        read_labels(lines)

"""device_sims.children: the simulated children of the evaluation scenario set."""

from __future__ import annotations

import itertools
import json
import statistics
from datetime import datetime
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.core.levels import level_of
from alerting.pews import INPUT_KEYS, SYSTEMS, score
from device_sims.children import (
    AGE_BANDS,
    CHARTED_KEYS,
    COMBOS,
    DAYS_PER_MONTH,
    DETERIORATING_KINDS,
    HR_CENTILES,
    KINDS,
    RR_CENTILES,
    BedScenario,
    _Child,
    assign,
    centile_range,
    centile_value,
    generate,
)
from wardwire.models import Priority


@cache
def small() -> Any:
    return generate(5, 16, 1.0)


def inputs(b: BedScenario) -> list[tuple[str, dict[str, Any]]]:
    return [(line["t"], line["inputs"]) for _t, _o, line in b.lines if "inputs" in line]


def device(b: BedScenario) -> list[tuple[str, dict[str, Any]]]:
    return [(t, i) for t, i in inputs(b) if "hr_bpm" in i]


def test_deterministic_per_seed() -> None:
    a = [json.dumps(x) for x in generate(3, 6, 0.25).lines()]
    b = [json.dumps(x) for x in generate(3, 6, 0.25).lines()]
    c = [json.dumps(x) for x in generate(4, 6, 0.25).lines()]
    assert a == b
    assert a != c


def test_lines_are_replay_lines_in_time_order() -> None:
    sset = small()
    last = ""
    for line in sset.lines():
        assert line["t"] >= last
        last = line["t"]
        assert set(line) <= {"t", "bed", "inputs", "command", "by", "system", "age_days"}
        assert ("inputs" in line) != ("command" in line)
        if "inputs" in line:
            assert set(line["inputs"]) <= set(INPUT_KEYS)
    for b in sset.beds:
        first = next(line for _t, _o, line in b.lines if "inputs" in line)
        assert first["system"] == b.system and first["age_days"] == b.age_days
        assert b.system in SYSTEMS


def test_every_age_band_of_every_system_has_stable_children() -> None:
    assert {s for s, *_ in COMBOS} == set(SYSTEMS) == set(AGE_BANDS)
    stable = {(s, band) for kind, s, band, _lo, _hi in assign(48)
              if kind not in DETERIORATING_KINDS}
    assert stable == {(s, band) for s, band, _lo, _hi in COMBOS}
    kinds = {kind for kind, *_ in assign(48)}
    assert kinds == set(KINDS)


def test_standard_set_size() -> None:
    beds = assign(48)
    assert len(beds) >= 40
    # bed-days of the standard set (generation only, ~1 s)
    sset = generate()
    assert len(sset.beds) >= 40 and sset.bed_days >= 50
    assert sum(b.deteriorates for b in sset.beds) == 18


def test_ages_fall_in_their_band_and_score() -> None:
    for b in small().beds:
        lo, hi = next((lo, hi) for band, lo, hi in AGE_BANDS[b.system] if band == b.band)
        assert lo <= b.age_days / DAYS_PER_MONTH < hi
        # the scorer accepts the child's age and a first charted set
        _t, first = inputs(b)[0]
        score(b.system, {**first}, age_days=b.age_days)


def test_stable_baselines_inside_age_centiles() -> None:
    for i, (kind, system, band, lo, hi) in enumerate(assign(48)):
        if kind in DETERIORATING_KINDS:
            continue
        child = _Child(11, i, kind, system, band, lo, hi, 1.0)
        lo10, hi90 = centile_range(HR_CENTILES, child.months, 10, 90)
        assert lo10 <= child.hr0 <= hi90
        lo10, hi90 = centile_range(RR_CENTILES, child.months, 10, 90)
        assert lo10 <= child.rr0 <= hi90
    for b in small().beds:
        if b.kind != "stable":
            continue
        months = b.age_days / DAYS_PER_MONTH
        dev = device(b)
        hr = statistics.median(i["hr_bpm"] for _t, i in dev)
        rr = statistics.median(i["rr_bpm"] for _t, i in dev)
        lo1, hi99 = centile_range(HR_CENTILES, months, 1, 99)
        assert lo1 <= hr <= hi99, (b.bed, hr)
        lo1, hi99 = centile_range(RR_CENTILES, months, 1, 99)
        assert lo1 <= rr <= hi99, (b.bed, rr)
        spo2 = statistics.median(i["spo2_pct"] for _t, i in dev if i["spo2_pct"] is not None)
        assert spo2 >= 95


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 215.9), st.floats(-5, 5))
def test_centile_value_monotone_and_clamped(months: float, z: float) -> None:
    for table in (HR_CENTILES, RR_CENTILES):
        v = centile_value(table, months, z)
        lo1, hi99 = centile_range(table, months, 1, 99)
        assert lo1 <= v <= hi99
        assert centile_value(table, months, z + 0.1) >= v


def test_sleep_dips_heart_rate() -> None:
    child = _Child(1, 0, "stable", "bedside_pews", "BP-D", 60, 156, 1.0)
    awake = [child.truth_at(m)["hr"] for m in range(child.total)
             if not child.asleep(m) and not child.crying[m]]
    asleep = [child.truth_at(m)["hr"] for m in range(child.total) if child.asleep(m)]
    assert statistics.mean(asleep) < 0.95 * statistics.mean(awake)


def test_artefacts_and_gaps_present() -> None:
    sset = generate(2, 8, 1.0)
    b = next(b for b in sset.beds if b.kind == "artefacts")
    dev = device(b)
    assert any(i["spo2_pct"] is None for _t, i in dev)  # probe off
    assert any(i["rr_bpm"] in (0, 120) for _t, i in dev)  # impedance artefacts
    assert any(i["spo2_pct"] is not None and i["spo2_pct"] < 90 for _t, i in dev)  # motion
    times = [datetime.fromisoformat(t) for t, _i in dev]
    gaps = [(b2 - a).total_seconds() / 60 for a, b2 in itertools.pairwise(times)]
    assert any(g == 2 for g in gaps)  # a missing minute
    assert any(g >= 20 for g in gaps)  # a device gap
    hr_med = statistics.median(i["hr_bpm"] for _t, i in dev)
    assert any(i["hr_bpm"] > hr_med + 50 for _t, i in dev)  # a spike


def test_nurse_sets_every_one_to_four_hours_with_the_systems_items() -> None:
    for b in small().beds:
        sets = [(t, i) for t, i in inputs(b) if "oxygen" in i]
        assert sets
        for _t, items in sets:
            assert set(items) == set(CHARTED_KEYS[b.system])
        times = [datetime.fromisoformat(t) for t, _i in sets]
        for a, c in itertools.pairwise(times):
            assert (c - a).total_seconds() <= 4 * 3600 + 20 * 60
        acks = [line for _t, _o, line in b.lines if line.get("command") == "ack"]
        assert len(acks) >= len(sets)


def _state(b: BedScenario, upto: str) -> dict[str, Any]:
    """The latest value of every input key at ``upto`` (what a nurse would score)."""
    cur: dict[str, Any] = {}
    for t, i in inputs(b):
        if t > upto:
            break
        for k, v in i.items():
            if v is not None and not (k == "rr_bpm" and v in (0, 120)):
                cur[k] = v
    return cur


def test_deteriorating_courses_cross_the_scores() -> None:
    sset = generate(9, 24, 1.5)
    seen = set()
    for b in sset.beds:
        if not b.deteriorates:
            continue
        assert b.onset is not None and b.event is not None
        course_h = (b.event - b.onset).total_seconds() / 3600
        assert 6 <= course_h <= 24.01
        seen.add(b.kind)
        first_t = inputs(b)[3][0]
        start = score(b.system, _state(b, first_t), age_days=b.age_days)
        end_t = max(t for t, _i in inputs(b))
        end = score(b.system, _state(b, end_t), age_days=b.age_days)
        assert end.total > start.total, (b.bed, b.kind, start.total, end.total)
        prio = level_of(end).priority
        # sepsis and respiratory failure end at an alarm level; a subtle drift rises too but
        # may stay low (that is what makes it subtle)
        need = Priority.LOW if b.kind == "subtle_drift" else Priority.MEDIUM
        assert prio is not None and prio.rank >= need.rank, (
            b.bed, b.kind, b.system, end.total, dict(end.escalation))
    assert seen == set(DETERIORATING_KINDS)


def test_oxygen_escalation_masks_spo2() -> None:
    sset = generate(9, 24, 1.5)
    for b in sset.beds:
        if b.kind != "resp_failure":
            continue
        devices = [i["oxygen"]["device"] for _t, i in inputs(b) if "oxygen" in i]
        assert devices[0] == "room_air" and devices[-1] != "room_air"
        # the shown SpO2 near the event stays far above the unsupported value
        dev = device(b)
        late = [i["spo2_pct"] for _t, i in dev[-30:] if i["spo2_pct"] is not None]
        assert statistics.median(late) >= 88


def test_bad_sizes_refused() -> None:
    with pytest.raises(ValueError, match="beds"):
        generate(1, 0, 1.0)
    with pytest.raises(ValueError, match="days"):
        generate(1, 4, float("nan"))
    with pytest.raises(ValueError, match="days"):
        generate(1, 4, 0.0)


def test_truth_and_labels() -> None:
    sset = small()
    labels = sset.labels()
    assert len(labels) == sum(b.deteriorates for b in sset.beds)
    for lb in labels:
        assert set(lb) == {"t", "bed", "label"} and lb["label"] == "deterioration"
        b = next(b for b in sset.beds if b.bed == lb["bed"])
        last = max(line["t"] for _t, _o, line in b.lines)
        assert lb["t"] <= last  # the child leaves the bed after the event
    truth = sset.truth()
    assert truth["scenario_set_version"] and len(truth["beds"]) == 16
    json.dumps(truth)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 9), st.floats(1 / 24, 0.2))
def test_any_seed_gives_lines_replay_reads_and_the_scorer_accepts(
    seed: int, beds: int, days: float
) -> None:
    from alerting.core.config import load_rules
    from alerting.replay import Replay

    rep = Replay(load_rules(None), unit="sim", warn=lambda m: pytest.fail(m))
    rules = set()
    sset = generate(seed, beds, days)
    for n, line in enumerate(sset.lines(), start=1):
        for e in rep.feed(json.dumps(line), n):  # MalformedLine would fail the test
            rules.add(e["rule"])
    assert "cannot_score" not in rules
    # (a bed whose whole short stay fell in a device gap never gets a line)
    assert set(rep.spans) <= {b.bed for b in sset.beds}

"""Streaming rules: latest values, score inputs, alert condition (with a fake scorer)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.rules import (
    BedState,
    RuleConfig,
    build_inputs,
    evaluate,
    load_artefact_limits,
    load_priorities,
    observe,
    priority_of,
)
from wardwire.models import Observation, Priority, Quality, Source
from wardwire.params import BY_CODE

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DOB = date(2022, 3, 14)
PRIORITIES = load_priorities()


@dataclass(frozen=True)
class FakeScore:
    system: str = "bedside_pews"
    band: str | None = "BP-B"
    total: int = 0
    items: Mapping[str, int | None] = field(default_factory=dict)
    complete: bool = True
    missing: Sequence[str] = ()
    escalation: Mapping[str, object] = field(default_factory=dict)
    table_version: str = "test"


@dataclass
class FakeScorer:
    """total = hr_bpm // 20 (HR 100 -> 5 low, 140 -> 7 medium, 160 -> 8 high); complete
    only when the nurse-charted AVPU is among the inputs."""

    calls: list[dict[str, object]] = field(default_factory=list)

    def __call__(
        self,
        system: str,
        inputs: Mapping[str, object],
        *,
        dob: date | None = None,
        at: datetime | None = None,
    ) -> FakeScore:
        self.calls.append(dict(inputs))
        hr = inputs.get("hr_bpm")
        total = int(hr) // 20 if isinstance(hr, float) else 0
        complete = "avpu" in inputs
        return FakeScore(system=system, total=total, complete=complete)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def mk(
    code: str,
    value: float,
    t: float,
    *,
    source: Source = Source.MEASURED,
    quality: Quality = Quality.VALID,
    device: str = "mon-1",
) -> Observation:
    return Observation(
        device_id=device,
        code=code,
        value=value,
        unit=BY_CODE[code].ucum,
        measured_at=at(t),
        received_at=at(t),
        source=source,
        quality=quality,
    )


def cfg(**kw: Any) -> RuleConfig:
    base: dict[str, Any] = {
        "system": "bedside_pews",
        "onset_s": 30.0,
        "clear_s": 30.0,
        "stale_s": 60.0,
        "charted_max_age_s": 4 * 3600.0,
        "artefact": load_artefact_limits(),
        "priorities": PRIORITIES,
    }
    base.update(kw)
    return RuleConfig(**base)


# ---------------------------------------------------------------------------------------------
# observe


def test_newer_reading_replaces_older() -> None:
    s = BedState()
    observe(s, mk("HR", 100, 0))
    observe(s, mk("HR", 110, 1))
    assert s.values["HR"].value == 110
    assert s.values["HR"].measured_at == at(1)
    assert s.values["HR"].device_id == "mon-1"
    assert s.values["HR"].source is Source.MEASURED


def test_older_reading_never_overwrites_newer() -> None:
    s = BedState()
    observe(s, mk("HR", 110, 10))
    observe(s, mk("HR", 100, 5))
    assert s.values["HR"].value == 110


def test_same_time_reading_replaces() -> None:
    s = BedState()
    observe(s, mk("HR", 110, 10))
    observe(s, mk("HR", 111, 10))
    assert s.values["HR"].value == 111


def test_invalid_quality_removes_the_value() -> None:
    s = BedState()
    observe(s, mk("SPO2", 97, 0))
    observe(s, mk("SPO2", 0, 1, quality=Quality.INVALID))
    assert "SPO2" not in s.values
    observe(s, mk("SPO2", 0, 2, quality=Quality.INVALID))  # nothing to remove: fine
    assert "SPO2" not in s.values


def test_older_invalid_reading_does_not_remove_newer_value() -> None:
    s = BedState()
    observe(s, mk("SPO2", 97, 10))
    observe(s, mk("SPO2", 0, 5, quality=Quality.INVALID))
    assert s.values["SPO2"].value == 97


def test_questionable_quality_is_kept() -> None:
    s = BedState()
    observe(s, mk("SPO2", 91, 0, quality=Quality.QUESTIONABLE))
    assert s.values["SPO2"].value == 91


def test_older_valid_reading_does_not_undo_a_newer_invalid_one() -> None:
    s = BedState()
    observe(s, mk("SPO2", 97, 10))
    observe(s, mk("SPO2", 0, 20, quality=Quality.INVALID))
    observe(s, mk("SPO2", 95, 15))  # arrives late
    assert "SPO2" not in s.values


@given(st.lists(st.tuples(st.integers(0, 100), st.floats(20, 300)), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_latest_value_is_the_newest_whatever_the_arrival_order(
    readings: list[tuple[int, float]],
) -> None:
    s = BedState()
    for t, v in readings:
        observe(s, mk("HR", v, t))
    newest = max(t for t, _ in readings)
    assert s.values["HR"].measured_at == at(newest)
    # among same-time readings the last to arrive wins
    assert s.values["HR"].value == [v for t, v in readings if t == newest][-1]


# ---------------------------------------------------------------------------------------------
# build_inputs


def state_with(*obs: Observation) -> BedState:
    s = BedState()
    for o in obs:
        observe(s, o)
    return s


def test_fresh_device_values_become_inputs_with_provenance() -> None:
    s = state_with(mk("HR", 120, 0), mk("SPO2", 97, 0), mk("TEMP", 37.5, 0))
    inputs, used = build_inputs(s, at(10), cfg())
    assert inputs == {"hr_bpm": 120.0, "spo2_pct": 97.0, "temp_c": 37.5}
    assert {u.code for u in used} == {"HR", "SPO2", "TEMP"}
    hr = next(u for u in used if u.code == "HR")
    assert (hr.value, hr.source, hr.device_id, hr.measured_at) == (
        120.0,
        Source.MEASURED,
        "mon-1",
        at(0),
    )


def test_stale_device_value_is_missing() -> None:
    s = state_with(mk("HR", 120, 0))
    assert build_inputs(s, at(60), cfg())[0] == {"hr_bpm": 120.0}  # age == stale_s: fresh
    assert build_inputs(s, at(60.001), cfg()) == ({}, [])


def test_value_from_the_future_beyond_stale_s_is_missing() -> None:
    s = state_with(mk("HR", 120, 100))
    assert build_inputs(s, at(40), cfg())[0] == {"hr_bpm": 120.0}  # 60 s ahead: tolerated
    assert build_inputs(s, at(39), cfg()) == ({}, [])


def test_charted_value_carried_forward_up_to_charted_max_age() -> None:
    c = cfg(charted_max_age_s=3600.0)
    s = state_with(
        mk("CRT", 2, 0, source=Source.ENTERED, device="nurse"),
        mk("AVPU", 0, 0, source=Source.ENTERED, device="nurse"),
        mk("RR", 30, 0, source=Source.ENTERED, device="nurse"),  # nurse-counted RR
    )
    inputs, used = build_inputs(s, at(3600), c)
    assert inputs == {"crt_s": 2.0, "avpu": "A", "rr_bpm": 30.0}
    assert all(u.source is Source.ENTERED for u in used)
    assert build_inputs(s, at(3600.5), c) == ({}, [])


def test_artefact_values_become_missing_and_are_counted() -> None:
    c = cfg()
    s = state_with(mk("HR", 310, 0), mk("SPO2", 97, 0), mk("TEMP", 24.9, 0))
    inputs, used = build_inputs(s, at(1), c)
    assert inputs == {"spo2_pct": 97.0}
    assert [u.code for u in used] == ["SPO2"]
    assert s.artefacts == 2


@pytest.mark.parametrize(("code", "value"), [("HR", 20), ("HR", 300), ("TEMP", 45.0)])
def test_artefact_limits_are_inclusive(code: str, value: float) -> None:
    s = state_with(mk(code, value, 0))
    assert len(build_inputs(s, at(1), cfg())[1]) == 1
    assert s.artefacts == 0


def test_no_artefact_limits_configured() -> None:
    s = state_with(mk("HR", 340, 0))
    assert build_inputs(s, at(1), cfg(artefact={}))[0] == {"hr_bpm": 340.0}


def test_pulse_rate_stands_in_for_missing_heart_rate() -> None:
    s = state_with(mk("PR", 130, 0, device="oxi-1"))
    inputs, used = build_inputs(s, at(1), cfg())
    assert inputs == {"hr_bpm": 130.0}
    assert [(u.code, u.device_id) for u in used] == [("PR", "oxi-1")]
    # ECG HR preferred when both are fresh
    observe(s, mk("HR", 125, 0))
    assert build_inputs(s, at(1), cfg())[0] == {"hr_bpm": 125.0}
    # stale HR: PR again
    s2 = state_with(mk("HR", 125, 0), mk("PR", 130, 100, device="oxi-1"))
    assert build_inputs(s2, at(100), cfg())[0] == {"hr_bpm": 130.0}


@pytest.mark.parametrize(
    ("system", "key", "mapping"),
    [
        ("bedside_pews", "resp_effort", ["normal", "mild", "moderate", "severe", "apnoea"]),
        ("uk_npews", "resp_distress", ["none", "mild", "moderate", "severe", "severe"]),
    ],
)
def test_respiratory_effort_vocabulary(system: str, key: str, mapping: list[str]) -> None:
    for i, want in enumerate(mapping):
        s = state_with(mk("RESP_EFFORT", i, 0, source=Source.ENTERED))
        assert build_inputs(s, at(1), cfg(system=system))[0] == {key: want}


def test_avpu_categories() -> None:
    for i, name in enumerate(["A", "V", "P", "U", "asleep"]):
        s = state_with(mk("AVPU", i, 0, source=Source.ENTERED))
        assert build_inputs(s, at(1), cfg())[0] == {"avpu": name}


def test_oxygen_inputs() -> None:
    s = state_with(
        mk("O2_DEVICE", 1, 0, source=Source.ENTERED),
        mk("O2_FLOW", 2, 0, source=Source.ENTERED),
        mk("FIO2", 28, 0, source=Source.ENTERED),
    )
    assert build_inputs(s, at(1), cfg())[0] == {
        "oxygen": {"device": "NP", "flow_lpm": 2.0, "fio2_pct": 28.0}
    }
    # flow without a device is not used
    s2 = state_with(mk("O2_FLOW", 2, 0, source=Source.ENTERED))
    assert build_inputs(s2, at(1), cfg()) == ({}, [])


# ---------------------------------------------------------------------------------------------
# evaluate


def hr_at(s: BedState, hr: float, t: float, scorer: FakeScorer, c: RuleConfig) -> str | None:
    observe(s, mk("HR", hr, t))
    ev = evaluate(s, at(t), c, scorer, DOB)
    assert ev is not None
    return ev.decision


def test_nothing_fresh_gives_none() -> None:
    scorer = FakeScorer()
    assert evaluate(BedState(), T0, cfg(), scorer, DOB) is None
    assert scorer.calls == []


def test_evaluation_result() -> None:
    s = state_with(mk("HR", 140, 0))
    scorer = FakeScorer()
    ev = evaluate(s, at(1), cfg(), scorer, DOB)
    assert ev is not None
    assert ev.result.total == 7
    assert ev.priority is Priority.MEDIUM
    assert [u.code for u in ev.inputs] == ["HR"]
    assert ev.provisional  # incomplete (no AVPU)
    assert scorer.calls == [{"hr_bpm": 140.0}]


def test_provisional_flag() -> None:
    s = state_with(mk("HR", 100, 0), mk("AVPU", 0, 0, source=Source.ENTERED))
    ev = evaluate(s, at(1), cfg(), FakeScorer(), DOB)
    assert ev is not None
    assert ev.result.complete
    assert ev.provisional  # a charted value went in
    s2 = state_with(mk("HR", 100, 0), mk("AVPU", 0, 0, source=Source.MEASURED))
    ev2 = evaluate(s2, at(1), cfg(), FakeScorer(), DOB)
    assert ev2 is not None
    assert not ev2.provisional


def test_onset_persistence() -> None:
    c, sc, s = cfg(onset_s=30.0), FakeScorer(), BedState()
    assert hr_at(s, 140, 0, sc, c) is None
    assert s.pending_since == at(0)
    assert hr_at(s, 140, 29, sc, c) is None
    assert not s.on
    assert hr_at(s, 140, 30, sc, c) == "on"
    assert (s.on, s.priority) == (True, Priority.MEDIUM)
    assert hr_at(s, 140, 31, sc, c) is None  # already on: no new decision


def test_onset_interrupted_restarts() -> None:
    c, sc, s = cfg(onset_s=30.0), FakeScorer(), BedState()
    hr_at(s, 140, 0, sc, c)
    assert hr_at(s, 100, 20, sc, c) is None  # low priority < min (medium): not met
    assert s.pending_since is None
    assert hr_at(s, 140, 25, sc, c) is None
    assert hr_at(s, 140, 50, sc, c) is None
    assert hr_at(s, 140, 55, sc, c) == "on"


def test_zero_onset_is_immediate() -> None:
    assert hr_at(BedState(), 160, 0, FakeScorer(), cfg(onset_s=0.0)) == "on"


def test_min_priority() -> None:
    c = cfg(onset_s=0.0, min_priority=Priority.LOW)
    assert hr_at(BedState(), 100, 0, FakeScorer(), c) == "on"
    c = cfg(onset_s=0.0, min_priority=Priority.HIGH)
    s = BedState()
    assert hr_at(s, 140, 0, FakeScorer(), c) is None
    assert s.pending_since is None


def test_clear_hysteresis() -> None:
    c, sc, s = cfg(onset_s=0.0, clear_s=30.0), FakeScorer(), BedState()
    assert hr_at(s, 140, 0, sc, c) == "on"
    assert hr_at(s, 80, 10, sc, c) is None
    assert s.clear_since == at(10)
    assert hr_at(s, 80, 39, sc, c) is None
    assert s.on
    assert hr_at(s, 80, 40, sc, c) == "off"
    assert (s.on, s.priority) == (False, None)
    assert hr_at(s, 80, 41, sc, c) is None


def test_clear_interrupted_restarts() -> None:
    c, sc, s = cfg(onset_s=0.0, clear_s=30.0), FakeScorer(), BedState()
    hr_at(s, 140, 0, sc, c)
    hr_at(s, 80, 10, sc, c)
    assert hr_at(s, 140, 20, sc, c) is None  # condition back: clearing cancelled
    assert s.clear_since is None
    assert hr_at(s, 80, 30, sc, c) is None
    assert hr_at(s, 80, 59, sc, c) is None
    assert hr_at(s, 80, 60, sc, c) == "off"


def test_higher_priority_while_on_is_immediate() -> None:
    c, sc, s = cfg(onset_s=30.0), FakeScorer(), BedState()
    hr_at(s, 140, 0, sc, c)
    assert hr_at(s, 140, 30, sc, c) == "on"
    assert hr_at(s, 160, 31, sc, c) == "on"  # no onset delay for a rise
    assert s.priority is Priority.HIGH
    assert hr_at(s, 140, 32, sc, c) is None  # a fall does not re-decide
    assert s.priority is Priority.HIGH
    assert hr_at(s, 160, 33, sc, c) is None  # back to the priority already notified


def test_incomplete_score_never_clears_an_alert_raised_by_a_complete_one() -> None:
    c, sc = cfg(onset_s=0.0, clear_s=30.0, charted_max_age_s=60.0), FakeScorer()
    s = state_with(mk("AVPU", 0, 0, source=Source.ENTERED))
    assert hr_at(s, 160, 0, sc, c) == "on"  # complete score (AVPU charted)
    # the charted AVPU ages out; the device-only score is low
    decisions = [hr_at(s, 80, t, sc, c) for t in (100, 130, 200)]
    assert "off" not in decisions


@given(
    st.lists(
        st.tuples(st.integers(1, 20), st.sampled_from([80.0, 100.0, 140.0, 160.0])), max_size=40
    )
)
@settings(max_examples=100, deadline=None)
def test_condition_invariants(steps: list[tuple[int, float]]) -> None:
    """on/off alternate; 'on' needs onset_s of continuous meeting (or a rise while on);
    'off' needs clear_s of continuous not-meeting."""
    c, sc, s = cfg(onset_s=30.0, clear_s=20.0), FakeScorer(), BedState()
    t = 0
    last: str | None = None
    meets_since: int | None = None
    fails_since: int | None = None
    for dt, hr in steps:
        t += dt
        meets = hr >= 140
        if meets:
            fails_since = None
            meets_since = t if meets_since is None else meets_since
        else:
            meets_since = None
            fails_since = t if fails_since is None else fails_since
        was_on, old_prio = s.on, s.priority
        d = hr_at(s, hr, t, sc, c)
        if d == "on" and not was_on:
            assert meets_since is not None
            assert t - meets_since >= 30
            assert last in (None, "off")
            last = "on"
        elif d == "on":
            assert old_prio is Priority.MEDIUM
            assert s.priority is Priority.HIGH
        elif d == "off":
            assert was_on
            assert fails_since is not None
            assert t - fails_since >= 20
            last = "off"
        assert s.on == (last == "on")


# ---------------------------------------------------------------------------------------------
# priority_of


@pytest.mark.parametrize(
    ("total", "want"),
    [
        (0, None),
        (4, None),
        (5, Priority.LOW),
        (6, Priority.LOW),
        (7, Priority.MEDIUM),
        (8, Priority.HIGH),
        (13, Priority.HIGH),
    ],
)
def test_priority_bedside_total(total: int, want: Priority | None) -> None:
    assert priority_of(FakeScore(system="bedside_pews", total=total), PRIORITIES) is want


@pytest.mark.parametrize(
    ("level", "want"),
    [
        ("none", None),
        ("low", Priority.LOW),
        ("medium", Priority.MEDIUM),
        ("high", Priority.HIGH),
        ("emergency", Priority.HIGH),
        (None, None),
        (3, None),
    ],
)
def test_priority_uk_npews_final_level(level: object, want: Priority | None) -> None:
    r = FakeScore(system="uk_npews", escalation={"final_level": level, "score_level": "high"})
    assert priority_of(r, PRIORITIES) is want


def test_priority_uk_npews_reads_final_not_score_level() -> None:
    r = FakeScore(system="uk_npews", escalation={"final_level": "low", "score_level": "high"})
    assert priority_of(r, PRIORITIES) is Priority.LOW
    assert priority_of(FakeScore(system="uk_npews"), PRIORITIES) is None


@pytest.mark.parametrize(
    ("level", "want"),
    [
        ("low", None),
        ("low_medium", Priority.LOW),
        ("medium", Priority.MEDIUM),
        ("high", Priority.HIGH),
    ],
)
def test_priority_news2_level(level: str, want: Priority | None) -> None:
    r = FakeScore(system="news2", escalation={"level": level, "any_single_3": True})
    assert priority_of(r, PRIORITIES) is want


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ({}, None),
        ({"total_ge_3": False, "total_ge_5": False, "any_domain_3": False}, None),
        ({"total_ge_3": True, "total_ge_5": False, "any_domain_3": False}, Priority.LOW),
        ({"total_ge_3": True, "total_ge_5": True, "any_domain_3": False}, Priority.MEDIUM),
        ({"total_ge_3": True, "total_ge_5": True, "any_domain_3": True}, Priority.HIGH),
        # a domain scoring 3 with a total below 5 is not HIGH
        # (docs/clinical/priorities.md#default-priorities)
        ({"total_ge_3": True, "total_ge_5": False, "any_domain_3": True}, Priority.LOW),
        ({"total_ge_3": "yes", "total_ge_5": 1, "any_domain_3": 1}, None),  # only True counts
    ],
)
def test_priority_brighton_flags(flags: dict[str, object], want: Priority | None) -> None:
    assert priority_of(FakeScore(system="brighton_pews", escalation=flags), PRIORITIES) is want


def test_priority_unknown_system_and_rule() -> None:
    with pytest.raises(KeyError, match="nope"):
        priority_of(FakeScore(system="nope"), PRIORITIES)
    with pytest.raises(ValueError, match="weird"):
        priority_of(FakeScore(system="x"), {"x": {"by": "weird"}})


def test_priority_table_is_versioned_data() -> None:
    for key in ("version", "source", "reviewer"):
        assert key in PRIORITIES
    for system in ("bedside_pews", "uk_npews", "news2", "brighton_pews"):
        assert "by" in PRIORITIES[system]


def test_artefact_table_matches_spec() -> None:
    assert load_artefact_limits() == {
        "HR": (20.0, 300.0),
        "PR": (20.0, 300.0),
        "RR": (0.0, 150.0),
        "SPO2": (0.0, 100.0),
        "NIBP_SYS": (20.0, 250.0),
        "TEMP": (25.0, 45.0),
        "CRT": (0.0, 20.0),
    }

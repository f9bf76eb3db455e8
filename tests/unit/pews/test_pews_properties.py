"""Property tests: totals, completeness and monotonicity hold for any observation set."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.pews import SYSTEMS, score, score_many

LEVELS = ["none", "low", "medium", "high", "emergency"]


def num(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.one_of(st.integers(int(lo), int(hi)).map(float), st.floats(lo, hi, allow_nan=False))


oxygen = st.one_of(
    st.just({"device": "room_air"}),
    st.fixed_dictionaries(
        {"device": st.sampled_from(["NP", "FM", "HB", "NRB", "HF", "BiP", "CP"])},
        optional={"flow_lpm": num(0, 20), "fio2_pct": num(21, 100)},
    ),
)
OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "hr_bpm": num(0, 300),
    "rr_bpm": num(0, 150),
    "spo2_pct": num(0, 100),
    "sbp_mmhg": num(0, 250),
    "crt_s": num(0, 20),
    "temp_c": num(25, 45),
    "oxygen": oxygen,
    "resp_effort": st.sampled_from(["normal", "mild", "moderate", "severe", "apnoea"]),
    "resp_distress": st.sampled_from(["none", "mild", "moderate", "severe"]),
    "avpu": st.sampled_from(["A", "V", "P", "U", "asleep"]),
    "carer_question": st.fixed_dictionaries(
        {"response": st.just("W"), "escalation_level": st.sampled_from(LEVELS)}
    ),
    "clinical_intuition": st.fixed_dictionaries(
        {"concerned": st.just(True), "escalation_level": st.sampled_from(LEVELS)}
    ),
    "specific_concern": st.lists(
        st.sampled_from(["new_sepsis", "new_septic_shock", "abnormal_pupils"])
    ),
    "behaviour": st.sampled_from(
        ["playing_appropriate", "sleeping", "irritable", "lethargic_confused_reduced_pain"]
    ),
    "skin_colour": st.sampled_from(["pink", "pale", "grey", "grey_mottled"]),
    "hr_above_upper_normal_bpm": num(-100, 100),
    "rr_above_upper_normal_bpm": num(-50, 50),
    "bradycardia_for_age": st.booleans(),
    "resp_signs": st.lists(
        st.sampled_from(
            ["accessory_muscles", "recession", "tracheal_tug", "sternal_recession", "grunting"]
        )
    ),
    "quarter_hourly_nebs": st.booleans(),
    "persistent_postop_vomiting": st.booleans(),
    "on_oxygen": st.booleans(),
    "consciousness": st.sampled_from(["A", "new_confusion", "V", "P", "U"]),
    "bp_skip_code": st.sampled_from(["NCO", "U0", "U4", "OTHER_0", "OTHER_4"]),
}


def _contradictory(o: dict[str, Any]) -> bool:
    """Input errors by definition: SBP with a skip code; on_oxygen against the device (NEWS2)."""
    if "sbp_mmhg" in o and "bp_skip_code" in o:
        return True
    if "on_oxygen" in o and "oxygen" in o:
        return bool(o["on_oxygen"]) == (o["oxygen"]["device"] == "room_air")
    return False


observations = st.fixed_dictionaries({}, optional=OPTIONAL).filter(lambda o: not _contradictory(o))
AGE_DAYS = {
    "bedside_pews": (0, 6574),
    "uk_npews": (0, 6574),
    "brighton_pews": (0, 6574),
    "news2": (5844, 40000),
}


@st.composite
def system_case(draw: st.DrawFn) -> tuple[str, dict[str, Any], float]:
    system = draw(st.sampled_from(SYSTEMS))
    lo, hi = AGE_DAYS[system]
    return system, draw(observations), draw(st.floats(lo, hi))


@settings(max_examples=300, deadline=None)
@given(system_case())
def test_total_is_sum_of_items_and_missing_is_consistent(
    case: tuple[str, dict[str, Any], float],
) -> None:
    system, obs, days = case
    r = score(system, obs, age_days=days)
    assert r.total == sum(v for v in r.items.values() if v is not None)
    assert r.complete == (not r.missing)
    assert {k for k, v in r.items.items() if v is None} <= set(r.missing)
    assert list(r.missing) == [k for k in r.items if k in r.missing]  # item order
    assert set(r.as_dict()) == {
        "system",
        "band",
        "total",
        "items",
        "complete",
        "missing",
        "escalation",
        "table_version",
    }


@settings(max_examples=300, deadline=None)
@given(system_case(), st.data())
def test_removing_an_input_never_makes_a_score_complete(
    case: tuple[str, dict[str, Any], float], data: st.DataObject
) -> None:
    system, obs, days = case
    if not obs:
        return
    dropped = data.draw(st.sampled_from(sorted(obs)))
    fewer = {k: v for k, v in obs.items() if k != dropped}
    full, partial = score(system, obs, age_days=days), score(system, fewer, age_days=days)
    assert set(full.missing) <= set(partial.missing)
    if not full.complete:
        assert not partial.complete


# A value inside each band's score-0 cell, from the spec tables; scores must not decrease moving
# away from it in either direction (U-shaped rows), for every band.
NORMAL = {
    ("bedside_pews", 30): {"hr_bpm": 130, "sbp_mmhg": 70, "rr_bpm": 45},
    ("bedside_pews", 200): {"hr_bpm": 125, "sbp_mmhg": 90, "rr_bpm": 40},
    ("bedside_pews", 1000): {"hr_bpm": 105, "sbp_mmhg": 100, "rr_bpm": 30},
    ("bedside_pews", 3000): {"hr_bpm": 90, "sbp_mmhg": 105, "rr_bpm": 25},
    ("bedside_pews", 5500): {"hr_bpm": 80, "sbp_mmhg": 115, "rr_bpm": 14},
    ("uk_npews", 30): {"hr_bpm": 130, "sbp_mmhg": 80, "rr_bpm": 40},
    ("uk_npews", 1000): {"hr_bpm": 110, "sbp_mmhg": 90, "rr_bpm": 30},
    ("uk_npews", 3000): {"hr_bpm": 100, "sbp_mmhg": 100, "rr_bpm": 22},
    ("uk_npews", 5500): {"hr_bpm": 85, "sbp_mmhg": 110, "rr_bpm": 20},
    ("news2", 6000): {"hr_bpm": 70, "sbp_mmhg": 150, "rr_bpm": 16, "temp_c": 37},
}
ITEM = {
    "hr_bpm": "hr",
    "sbp_mmhg": "sbp",
    "rr_bpm": "rr",
    "temp_c": "temp",
    "spo2_pct": "spo2",
    "crt_s": "crt",
}
UPPER = {"hr_bpm": 300, "sbp_mmhg": 250, "rr_bpm": 150, "temp_c": 45}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(NORMAL)), st.data())
def test_u_shaped_rows_are_monotonic_away_from_normal(
    where: tuple[str, int], data: st.DataObject
) -> None:
    system, days = where
    key = data.draw(st.sampled_from(sorted(NORMAL[where])))
    normal = NORMAL[where][key]
    a, b = sorted(data.draw(st.lists(num(0, UPPER[key]), min_size=2, max_size=2)))

    def s(v: float) -> int:
        item = score(system, {key: v}, age_days=days).items[ITEM[key]]
        assert item is not None
        return item

    assert s(normal) == 0
    if a >= normal:
        assert s(a) <= s(b)
    if b <= normal:
        assert s(a) >= s(b)


MONOTONIC = [  # (system, age_days, input, item, +1 non-decreasing / -1 non-increasing, range)
    ("bedside_pews", 1000, "spo2_pct", "spo2", -1, 100),
    ("uk_npews", 1000, "spo2_pct", "spo2", -1, 100),
    ("news2", 6000, "spo2_pct", "spo2", -1, 100),
    ("bedside_pews", 1000, "crt_s", "crt", 1, 20),
    ("uk_npews", 1000, "crt_s", "crt", 1, 20),
    ("brighton_pews", 1000, "crt_s", "cardiovascular", 1, 20),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MONOTONIC), st.data())
def test_monotonic_rows(row: tuple[str, int, str, str, int, float], data: st.DataObject) -> None:
    system, days, key, item, sign, hi = row
    a, b = sorted(data.draw(st.lists(num(0, hi), min_size=2, max_size=2)))
    sa = score(system, {key: a}, age_days=days).items[item]
    sb = score(system, {key: b}, age_days=days).items[item]
    assert sa is not None and sb is not None
    assert sign * (sb - sa) >= 0


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["bedside_pews", "uk_npews", "brighton_pews"]),
    st.sampled_from(["NP", "FM", "HB", "NRB", "HF", "BiP", "CP"]),
    st.sampled_from(["flow_lpm", "fio2_pct"]),
    st.data(),
)
def test_more_oxygen_never_scores_less(
    system: str, device: str, level: str, data: st.DataObject
) -> None:
    hi = 100 if level == "fio2_pct" else 30
    a, b = sorted(data.draw(st.lists(num(0, hi), min_size=2, max_size=2)))
    item = {"bedside_pews": "oxygen_therapy", "uk_npews": "oxygen", "brighton_pews": "respiratory"}[
        system
    ]

    def s(v: float) -> int:
        value = score(system, {"oxygen": {"device": device, level: v}}, age_months=30).items[item]
        assert value is not None
        return value

    assert s(a) <= s(b)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(SYSTEMS), st.lists(observations, min_size=1, max_size=8))
def test_score_many_equals_score(system: str, sets: list[dict[str, Any]]) -> None:
    lo, hi = AGE_DAYS[system]
    ages = np.linspace(lo, hi, num=len(sets))
    expected = [score(system, s, age_days=float(a)) for s, a in zip(sets, ages, strict=True)]
    assert score_many(system, sets, age_days=ages) == expected

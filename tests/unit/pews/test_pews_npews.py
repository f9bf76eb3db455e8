"""UK National PEWS: every published band of every row, each age chart, the C1.4 gap rule,
skip codes and escalation (docs/clinical/uk_npews.md,
docs/clinical/vocabulary.md#escalation-fields).

The published bands are transcribed by hand below. From them the test builds its own
expectations: each band's lower and upper bound score the band's score, a value just below an
open upper bound too, and a value inside a gap between two published bands scores the
higher-scoring neighbour (spec C1.4, choice recorded in the table notes).
"""

from __future__ import annotations

import math

import pytest

from alerting.pews import PewsInputError, score

INF = math.inf
AGE_MONTHS = {"UK-A": 6, "UK-B": 30, "UK-C": 100, "UK-D": 180}
# (lo, hi, score, hi_closed): lo always included.
Band = tuple[float, float, int, bool]
# fmt: off
ROWS: dict[tuple[str, str], list[Band]] = {
    ("UK-A", "rr_bpm"): [(0, 10, 4, False), (10, 19.99, 2, True), (20, 29.99, 1, True),
                         (30, 49.99, 0, True),
                         (50, 59.99, 1, True), (60, 69.99, 2, True), (70, INF, 4, False)],
    ("UK-B", "rr_bpm"): [(0, 10, 4, False), (10, 19.99, 2, True), (20, 39.99, 0, True),
                         (40, 49.99, 1, True),
                         (50, 59.99, 2, True), (60, INF, 4, False)],
    ("UK-C", "rr_bpm"): [(0, 10, 4, False), (10, 14.99, 2, True), (15, 19.99, 1, True),
                         (20, 24.99, 0, True),
                         (25, 39.99, 1, True), (40, 49.99, 2, True), (50, INF, 4, False)],
    ("UK-D", "rr_bpm"): [(0, 10, 4, False), (10, 14.99, 1, True), (15, 24.99, 0, True),
                         (25, 29.99, 1, True),
                         (30, 39.99, 2, True), (40, INF, 4, False)],
    ("UK-A", "hr_bpm"): [(0, 80, 4, False), (80, 89.99, 2, True), (90, 109.99, 1, True),
                         (110, 149.99, 0, True),
                         (150, 169.99, 1, True), (170, 179.99, 2, True), (180, INF, 4, False)],
    ("UK-B", "hr_bpm"): [(0, 60, 4, False), (60, 69.99, 2, True), (70, 89.99, 1, True),
                         (90, 139.99, 0, True),
                         (140, 149.99, 1, True), (150, 169.99, 2, True), (170, INF, 4, False)],
    ("UK-C", "hr_bpm"): [(0, 60, 4, False), (60, 69.99, 2, True), (70, 79.99, 1, True),
                         (80, 119.99, 0, True),
                         (120, 139.99, 1, True), (140, 159.99, 2, True), (160, INF, 4, False)],
    ("UK-D", "hr_bpm"): [(0, 50, 4, False), (50, 59.99, 2, True), (60, 69.99, 1, True),
                         (70, 99.99, 0, True),
                         (100, 119.99, 1, True), (120, 129.99, 2, True), (130, INF, 4, False)],
    ("UK-A", "sbp_mmhg"): [(0, 50, 4, False), (50, 59.99, 2, True), (60, 69.99, 1, True),
                           (70, 89.99, 0, True),
                           (90, 99.99, 1, True), (100, 109.99, 2, True), (110, INF, 4, False)],
    ("UK-B", "sbp_mmhg"): [(0, 50, 4, False), (50, 59.99, 2, True), (60, 79.99, 1, True),
                           (80, 99.99, 0, True),
                           (100, 119.99, 1, True), (120, 129.99, 2, True), (130, INF, 4, False)],
    ("UK-C", "sbp_mmhg"): [(0, 70, 4, False), (70, 79.99, 2, True), (80, 89.99, 1, True),
                           (90, 109.99, 0, True),
                           (110, 119.99, 1, True), (120, 129.99, 2, True), (130, INF, 4, False)],
    ("UK-D", "sbp_mmhg"): [(0, 80, 4, False), (80, 89.99, 2, True), (90, 99.99, 1, True),
                           (100, 119.99, 0, True),
                           (120, 129.99, 1, True), (130, 139.99, 2, True), (140, INF, 4, False)],
    ("*", "spo2_pct"): [(0, 91, 4, True), (91.01, 94.99, 1, True), (95, 100, 0, True)],
    ("*", "crt_s"): [(0, 2, 0, True), (3, INF, 2, False)],
}
# fmt: on
ITEM = {"rr_bpm": "rr", "hr_bpm": "hr", "sbp_mmhg": "sbp", "spo2_pct": "spo2", "crt_s": "crt"}


def points(bands: list[Band]) -> list[tuple[float, int, str]]:
    """(value, expected score, why) for every bound of every band and every gap."""
    out: list[tuple[float, int, str]] = []
    for i, (lo, hi, s, closed) in enumerate(bands):
        out.append((lo, s, "lower bound"))
        if hi != INF:
            out.append((hi, s, "upper bound") if closed else (hi - 0.001, s, "below open bound"))
        if i + 1 < len(bands):
            nxt_lo, _, nxt_s, _ = bands[i + 1]
            if closed and nxt_lo > hi:  # a published gap, e.g. 49.99 .. 50
                out.append(((hi + nxt_lo) / 2, max(s, nxt_s), "gap -> higher-scoring neighbour"))
    return out


CASES = [
    pytest.param(chart, key, value, expected, id=f"{chart}-{key}-{value:g}-{why}")
    for (charts, key), bands in ROWS.items()
    for chart in (list(AGE_MONTHS) if charts == "*" else [charts])
    for value, expected, why in points(bands)
]


@pytest.mark.parametrize(("chart", "key", "value", "expected"), CASES)
def test_every_band_bound_and_gap(chart: str, key: str, value: float, expected: int) -> None:
    result = score("uk_npews", {key: value}, age_months=AGE_MONTHS[chart])
    assert result.band == chart
    assert result.items[ITEM[key]] == expected


@pytest.mark.parametrize(
    ("months", "key", "value", "expected"),
    [
        (100, "hr_bpm", 119.995, 1),  # docs/clinical/uk_npews.md#gap-rule example: 0|1 -> 1
        (180, "hr_bpm", 119.995, 2),  # UK-D: between 1 and 2 -> 2
        (6, "crt_s", 2.5, 2),  # docs/clinical/uk_npews.md#gap-rule: CRT between 2 and 3 s
        (6, "spo2_pct", 94.995, 1),  # between 1 ([91.01, 94.99]) and 0 ([95, 100]) -> 1
        (6, "spo2_pct", 91.005, 4),  # between 4 ([0, 91]) and 1 -> 4
        (30, "rr_bpm", 19, 2),  # UK-B: no yellow band below normal
        (180, "rr_bpm", 9, 4),  # UK-D: no orange band below normal
        (6, "hr_bpm", 79, 4),  # integer reading, UK-A: <=79 -> 4
        (6, "hr_bpm", 149, 0),
        (6, "hr_bpm", 150, 1),
    ],
)
def test_spec_examples(months: int, key: str, value: float, expected: int) -> None:
    assert score("uk_npews", {key: value}, age_months=months).items[ITEM[key]] == expected


@pytest.mark.parametrize(
    ("oxygen", "expected", "partial"),
    [
        ({"device": "room_air"}, 0, False),
        ({"device": "NP", "fio2_pct": 10}, 1, False),  # below 16 with support still 1
        ({"device": "NP", "fio2_pct": 16}, 1, False),
        ({"device": "NP", "fio2_pct": 29.99}, 1, False),
        ({"device": "NP", "fio2_pct": 29.995}, 2, False),  # gap -> higher
        ({"device": "FM", "fio2_pct": 30}, 2, False),
        ({"device": "FM", "fio2_pct": 49.99}, 2, False),
        ({"device": "FM", "fio2_pct": 49.995}, 4, False),
        ({"device": "HB", "fio2_pct": 50}, 4, False),
        ({"device": "NRB", "fio2_pct": 100}, 4, False),
        ({"device": "NP", "flow_lpm": 0}, 1, False),  # below 0.01 with support still 1
        ({"device": "NP", "flow_lpm": 0.01}, 1, False),
        ({"device": "NP", "flow_lpm": 1.99}, 1, False),
        ({"device": "NP", "flow_lpm": 1.995}, 2, False),
        ({"device": "NP", "flow_lpm": 2}, 2, False),
        ({"device": "NP", "flow_lpm": 5.99}, 2, False),
        ({"device": "FM", "flow_lpm": 5.995}, 4, False),
        ({"device": "FM", "flow_lpm": 6}, 4, False),
        ({"device": "NP", "flow_lpm": 1, "fio2_pct": 35}, 2, False),  # both: the higher
        ({"device": "HF"}, 4, False),  # device overrides the level
        ({"device": "HF", "fio2_pct": 21}, 4, False),
        ({"device": "BiP"}, 4, False),
        ({"device": "CP", "flow_lpm": 1}, 4, False),
        ({"device": "NP"}, 1, True),  # support, level not charted: floor 1, reported missing
    ],
)
def test_oxygen(oxygen: dict[str, object], expected: int, partial: bool) -> None:
    result = score("uk_npews", {"oxygen": oxygen}, age_months=30)
    assert result.items["oxygen"] == expected
    assert ("oxygen" in result.missing) is partial
    assert result.complete is False


@pytest.mark.parametrize(
    ("distress", "expected"), [("none", 0), ("mild", 1), ("moderate", 2), ("severe", 4)]
)
def test_resp_distress(distress: str, expected: int) -> None:
    assert (
        score("uk_npews", {"resp_distress": distress}, age_months=30).items["resp_distress"]
        == expected
    )


@pytest.mark.parametrize(
    ("code", "expected"), [("NCO", 0), ("U0", 0), ("U4", 4), ("OTHER_0", 0), ("OTHER_4", 4)]
)
def test_bp_skip_codes_count_as_obtained(code: str, expected: int) -> None:
    result = score("uk_npews", {"bp_skip_code": code}, age_months=30)
    assert result.items["sbp"] == expected
    assert "sbp" not in result.missing


def test_skip_code_with_a_measured_bp_is_rejected() -> None:
    with pytest.raises(PewsInputError, match="bp_skip_code"):
        score("uk_npews", {"bp_skip_code": "U4", "sbp_mmhg": 90}, age_months=30)


@pytest.mark.parametrize(
    ("age", "chart"),
    [
        ({"age_days": 0}, "UK-A"),
        ({"age_days": 365}, "UK-A"),
        ({"age_days": 366}, "UK-B"),
        ({"age_days": 1826}, "UK-B"),
        ({"age_days": 1827}, "UK-C"),
        ({"age_days": 4748}, "UK-C"),
        ({"age_days": 4749}, "UK-D"),
        ({"age_months": 11}, "UK-A"),
        ({"age_months": 12}, "UK-B"),
        ({"age_months": 59}, "UK-B"),
        ({"age_months": 60}, "UK-C"),
        ({"age_months": 155}, "UK-C"),
        ({"age_months": 156}, "UK-D"),
        ({"age_months": 215}, "UK-D"),
    ],
)
def test_age_charts(age: dict[str, int], chart: str) -> None:
    assert score("uk_npews", {}, **age).band == chart  # type: ignore[arg-type]


FULL = {  # UK-B, all items white: total 0
    "rr_bpm": 30,
    "resp_distress": "none",
    "spo2_pct": 98,
    "oxygen": {"device": "room_air"},
    "hr_bpm": 100,
    "sbp_mmhg": 90,
    "crt_s": 1,
}


def with_total(total: int) -> dict[str, object]:
    """A complete UK-B set with a given total, built from pink/orange/yellow items."""
    obs: dict[str, object] = dict(FULL)
    parts = [("hr_bpm", 4, 180), ("rr_bpm", 4, 70), ("spo2_pct", 4, 85), ("sbp_mmhg", 4, 140)]
    extra = [("crt_s", 2, 4), ("resp_distress", 1, "mild")]
    remaining = total
    for key, points_, value in parts + extra:
        if remaining >= points_:
            obs[key] = value
            remaining -= points_
    assert remaining == 0
    return obs


@pytest.mark.parametrize(
    ("total", "level"),
    [
        (0, "none"),
        (1, "low"),
        (4, "low"),
        (5, "medium"),
        (8, "medium"),
        (9, "high"),
        (12, "high"),
        (13, "emergency"),
        (19, "emergency"),
    ],
)
def test_score_level_thresholds(total: int, level: str) -> None:
    result = score("uk_npews", with_total(total), age_months=30)
    assert (result.total, result.complete) == (total, True)
    assert result.escalation == {"score_level": level, "final_level": level}


@pytest.mark.parametrize(
    ("extra", "final"),
    [
        ({"avpu": "A"}, "none"),
        ({"avpu": "asleep"}, "none"),
        ({"avpu": "V"}, "high"),
        ({"avpu": "P"}, "emergency"),
        ({"avpu": "U"}, "emergency"),
        ({"specific_concern": ["new_sepsis"]}, "medium"),
        ({"specific_concern": ["new_septic_shock"]}, "high"),
        ({"specific_concern": ["abnormal_pupils"]}, "emergency"),
        ({"specific_concern": ["new_sepsis", "new_septic_shock"]}, "high"),
        ({"specific_concern": []}, "none"),
        ({"carer_question": {"response": "W", "escalation_level": "medium"}}, "medium"),
        (
            {"carer_question": {"response": "S", "escalation_level": "high"}},
            "none",
        ),  # only W counts
        ({"carer_question": {"response": "B"}}, "none"),
        ({"clinical_intuition": {"concerned": True, "escalation_level": "high"}}, "high"),
        ({"clinical_intuition": {"concerned": False, "escalation_level": "high"}}, "none"),
        ({"clinical_intuition": {"concerned": False}}, "none"),
        (
            {"avpu": "V", "carer_question": {"response": "W", "escalation_level": "emergency"}},
            "emergency",
        ),
    ],
)
def test_final_level_is_max_of_criteria(extra: dict[str, object], final: str) -> None:
    result = score("uk_npews", {**FULL, **extra}, age_months=30)
    assert result.escalation == {"score_level": "none", "final_level": final}
    assert result.complete  # triggers are not scored items


def test_trigger_never_lowers_score_level() -> None:
    obs = {
        **with_total(9),
        "carer_question": {"response": "W", "escalation_level": "low"},
        "avpu": "A",
    }
    assert score("uk_npews", obs, age_months=30).escalation == {
        "score_level": "high",
        "final_level": "high",
    }


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"carer_question": {"response": "W"}}, "carer_question.escalation_level"),
        ({"clinical_intuition": {"concerned": True}}, "clinical_intuition.escalation_level"),
        ({"carer_question": {"response": "X"}}, "carer_question.response"),
        ({"clinical_intuition": {"concerned": "yes"}}, "clinical_intuition.concerned"),
        ({"specific_concern": ["fever"]}, "specific_concern[0]"),
    ],
)
def test_trigger_input_errors(extra: dict[str, object], field: str) -> None:
    with pytest.raises(PewsInputError) as info:
        score("uk_npews", {**FULL, **extra}, age_months=30)
    assert info.value.field == field


def test_single_pink_parameter_is_only_low() -> None:
    # docs/clinical/uk_npews.md#escalation: no single-parameter trigger
    assert (
        score("uk_npews", {**FULL, "hr_bpm": 200}, age_months=30).escalation["final_level"] == "low"
    )

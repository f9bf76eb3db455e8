"""Bedside PEWS: every threshold of every row, each side, each age band.

Tables: docs/clinical/bedside_pews.md.

Expected values are transcribed by hand from the spec's tables, as
``(threshold, score just below, score at, score just above)``; "just" = 0.001.
"""

from __future__ import annotations

import pytest

from alerting.pews import PewsInputError, score

EPS = 0.001
AGE_DAYS = {"BP-A": 30, "BP-B": 200, "BP-C": 1000, "BP-D": 3000, "BP-E": 5500}

# fmt: off
ROWS: dict[tuple[str, str], list[tuple[float, int, int, int]]] = {
    # HR: (110,150) 0 | (90,110] U [150,180) 1 | (80,90] U [180,190) 2 | [-inf,80] U [190,+inf) 4
    ("BP-A", "hr_bpm"): [(80, 4, 4, 2), (90, 2, 2, 1), (110, 1, 1, 0), (150, 0, 1, 1),
                         (180, 1, 2, 2), (190, 2, 4, 4)],
    ("BP-B", "hr_bpm"): [(70, 4, 4, 2), (80, 2, 2, 1), (100, 1, 1, 0), (150, 0, 1, 1),
                         (170, 1, 2, 2), (180, 2, 4, 4)],
    ("BP-C", "hr_bpm"): [(60, 4, 4, 2), (70, 2, 2, 1), (90, 1, 1, 0), (120, 0, 1, 1),
                         (150, 1, 2, 2), (170, 2, 4, 4)],
    # BP-D irregular: score 2 is [130, 150] and score 4 is strictly > 150
    ("BP-D", "hr_bpm"): [(50, 4, 4, 2), (60, 2, 2, 1), (70, 1, 1, 0), (110, 0, 1, 1),
                         (130, 1, 2, 2), (150, 2, 2, 4)],
    # BP-E irregular: score 1 is [50, 60], score 2 is strictly (40, 50)
    ("BP-E", "hr_bpm"): [(40, 4, 4, 2), (50, 2, 1, 1), (60, 1, 1, 0), (100, 0, 1, 1),
                         (120, 1, 2, 2), (140, 2, 4, 4)],
    ("BP-A", "sbp_mmhg"): [(45, 4, 4, 2), (50, 2, 2, 1), (60, 1, 1, 0), (80, 0, 1, 1),
                           (100, 1, 2, 2), (130, 2, 4, 4)],
    ("BP-B", "sbp_mmhg"): [(60, 4, 4, 2), (70, 2, 2, 1), (80, 1, 1, 0), (100, 0, 1, 1),
                           (120, 1, 2, 2), (150, 2, 4, 4)],
    ("BP-C", "sbp_mmhg"): [(65, 4, 4, 2), (75, 2, 2, 1), (90, 1, 1, 0), (110, 0, 1, 1),
                           (125, 1, 2, 2), (160, 2, 4, 4)],
    ("BP-D", "sbp_mmhg"): [(70, 4, 4, 2), (80, 2, 2, 1), (90, 1, 1, 0), (120, 0, 1, 1),
                           (140, 1, 2, 2), (170, 2, 4, 4)],
    ("BP-E", "sbp_mmhg"): [(75, 4, 4, 2), (85, 2, 2, 1), (100, 1, 1, 0), (130, 0, 1, 1),
                           (150, 1, 2, 2), (190, 2, 4, 4)],
    ("BP-A", "rr_bpm"): [(15, 4, 4, 2), (19, 2, 2, 1), (29, 1, 1, 0), (61, 0, 1, 1),
                         (81, 1, 2, 2), (91, 2, 4, 4)],
    ("BP-B", "rr_bpm"): [(15, 4, 4, 2), (19, 2, 2, 1), (24, 1, 1, 0), (51, 0, 1, 1),
                         (71, 1, 2, 2), (81, 2, 4, 4)],
    ("BP-C", "rr_bpm"): [(12, 4, 4, 2), (15, 2, 2, 1), (19, 1, 1, 0), (41, 0, 1, 1),
                         (61, 1, 2, 2), (71, 2, 4, 4)],
    ("BP-D", "rr_bpm"): [(10, 4, 4, 2), (14, 2, 2, 1), (19, 1, 1, 0), (31, 0, 1, 1),
                         (41, 1, 2, 2), (51, 2, 4, 4)],
    ("BP-E", "rr_bpm"): [(9, 4, 4, 2), (10, 2, 2, 1), (11, 1, 1, 0), (17, 0, 1, 1),
                         (23, 1, 2, 2), (30, 2, 4, 4)],
}
# fmt: on
ITEM = {"hr_bpm": "hr", "sbp_mmhg": "sbp", "rr_bpm": "rr"}

CASES = [
    pytest.param(band, key, value, expected, id=f"{band}-{key}-{value:g}")
    for (band, key), rows in ROWS.items()
    for t, below, at, above in rows
    for value, expected in ((t - EPS, below), (t, at), (t + EPS, above))
]


@pytest.mark.parametrize(("band", "key", "value", "expected"), CASES)
def test_age_specific_boundaries(band: str, key: str, value: float, expected: int) -> None:
    result = score("bedside_pews", {key: value}, age_days=AGE_DAYS[band])
    assert result.band == band
    assert result.items[ITEM[key]] == expected


@pytest.mark.parametrize(
    ("key", "value", "item", "expected"),
    [
        ("crt_s", 0, "crt", 0),
        ("crt_s", 2.999, "crt", 0),
        ("crt_s", 3, "crt", 4),
        ("crt_s", 12, "crt", 4),
        ("spo2_pct", 0, "spo2", 2),
        ("spo2_pct", 90, "spo2", 2),
        ("spo2_pct", 90.001, "spo2", 1),
        ("spo2_pct", 94, "spo2", 1),
        ("spo2_pct", 94.001, "spo2", 0),
        ("spo2_pct", 100, "spo2", 0),
        ("resp_effort", "normal", "resp_effort", 0),
        ("resp_effort", "mild", "resp_effort", 1),
        ("resp_effort", "moderate", "resp_effort", 2),
        ("resp_effort", "severe", "resp_effort", 4),
        ("resp_effort", "apnoea", "resp_effort", 4),
    ],
)
def test_all_age_items(key: str, value: object, item: str, expected: int) -> None:
    for days in AGE_DAYS.values():
        assert score("bedside_pews", {key: value}, age_days=days).items[item] == expected


@pytest.mark.parametrize(
    ("oxygen", "expected", "partial"),
    [
        ({"device": "room_air"}, 0, False),
        ({"device": "NP", "flow_lpm": 0.5}, 2, False),
        ({"device": "NP", "flow_lpm": 3.999}, 2, False),
        ({"device": "NP", "flow_lpm": 4}, 4, False),
        ({"device": "FM", "fio2_pct": 49.9}, 2, False),
        ({"device": "FM", "fio2_pct": 50}, 4, False),
        ({"device": "HB", "fio2_pct": 30, "flow_lpm": 6}, 4, False),  # both charted: the higher
        ({"device": "NRB", "fio2_pct": 60, "flow_lpm": 1}, 4, False),
        ({"device": "HF"}, 4, False),
        ({"device": "BiP"}, 4, False),
        ({"device": "CP", "fio2_pct": 21}, 4, False),
        ({"device": "NP"}, 2, True),  # support present, level unknown: floor 2, reported missing
    ],
)
def test_oxygen_therapy(oxygen: dict[str, object], expected: int, partial: bool) -> None:
    result = score("bedside_pews", {"oxygen": oxygen}, age_days=1000)
    assert result.items["oxygen_therapy"] == expected
    assert ("oxygen_therapy" in result.missing) is partial


@pytest.mark.parametrize(
    ("age", "band"),
    [
        ({"age_days": 0}, "BP-A"),
        ({"age_days": 91}, "BP-A"),
        ({"age_days": 92}, "BP-B"),
        ({"age_days": 365}, "BP-B"),
        ({"age_days": 366}, "BP-C"),
        ({"age_days": 1826}, "BP-C"),
        ({"age_days": 1827}, "BP-D"),
        ({"age_days": 4748}, "BP-D"),
        ({"age_days": 4749}, "BP-E"),
        ({"age_days": 6574}, "BP-E"),  # 17.998 y
        ({"age_months": 2}, "BP-A"),
        ({"age_months": 3}, "BP-B"),
        ({"age_months": 11}, "BP-B"),
        ({"age_months": 12}, "BP-C"),
        # age 4: 1-4 y band (chosen reading, docs/clinical/bedside_pews.md#age-bands)
        ({"age_months": 59}, "BP-C"),
        ({"age_months": 60}, "BP-D"),
        ({"age_months": 155}, "BP-D"),  # age 12: 5-12 y band
        ({"age_months": 156}, "BP-E"),
        ({"age_months": 215}, "BP-E"),
    ],
)
def test_age_bands(age: dict[str, int], band: str) -> None:
    assert score("bedside_pews", {}, **age).band == band  # type: ignore[arg-type]


def test_age_18_is_out_of_scope() -> None:
    with pytest.raises(PewsInputError, match="age"):
        score("bedside_pews", {}, age_months=216)


def test_full_set_total_and_flags() -> None:
    # BP-C: HR 150 -> 2, SBP 125 -> 2, CRT 3 -> 4, RR 41 -> 1, moderate -> 2, SpO2 92 -> 1,
    # NP 2 L/min -> 2
    obs = {
        "hr_bpm": 150,
        "sbp_mmhg": 125,
        "crt_s": 3,
        "rr_bpm": 41,
        "resp_effort": "moderate",
        "spo2_pct": 92,
        "oxygen": {"device": "NP", "flow_lpm": 2},
    }
    result = score("bedside_pews", obs, age_months=30)
    assert result.as_dict() == {
        "system": "bedside_pews",
        "band": "BP-C",
        "total": 14,
        "items": {
            "hr": 2,
            "sbp": 2,
            "crt": 4,
            "rr": 1,
            "resp_effort": 2,
            "spo2": 1,
            "oxygen_therapy": 2,
        },
        "complete": True,
        "missing": [],
        "escalation": {"ge7": True, "ge8": True},
        "table_version": "1.0.0",
    }


@pytest.mark.parametrize(
    ("total_inputs", "ge7", "ge8"),
    [
        ({"crt_s": 3, "resp_effort": "moderate"}, False, False),  # 6
        ({"crt_s": 3, "resp_effort": "moderate", "spo2_pct": 93}, True, False),  # 7
        ({"crt_s": 3, "resp_effort": "severe"}, True, True),  # 8
    ],
)
def test_escalation_thresholds(total_inputs: dict[str, object], ge7: bool, ge8: bool) -> None:
    assert score("bedside_pews", total_inputs, age_months=30).escalation == {"ge7": ge7, "ge8": ge8}


def test_maximum_total_is_26() -> None:
    obs = {
        "hr_bpm": 250,
        "sbp_mmhg": 20,
        "crt_s": 6,
        "rr_bpm": 100,
        "resp_effort": "apnoea",
        "spo2_pct": 80,
        "oxygen": {"device": "CP"},
    }
    assert score("bedside_pews", obs, age_months=1).total == 26

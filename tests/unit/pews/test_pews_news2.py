"""NEWS2: every band bound, half-up rounding, levels, the age floor.

Table: docs/clinical/news2.md#table.
"""

from __future__ import annotations

import pytest

from alerting.pews import PewsInputError, score, score_many

AGE = {"age_days": 6000}  # 16.4 y

# (input, item, [(value, expected)]) transcribed from the table in docs/clinical/news2.md#table;
# both ends of every band.
# fmt: off
ROWS: list[tuple[str, str, list[tuple[float, int]]]] = [
    ("rr_bpm", "rr", [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2),
                      (25, 3), (60, 3)]),
    ("spo2_pct", "spo2", [(0, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]),
    ("sbp_mmhg", "sbp", [(0, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0),
                         (219, 0), (220, 3)]),
    ("hr_bpm", "hr", [(0, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1),
                      (111, 2),
                      (130, 2), (131, 3), (250, 3)]),
    ("temp_c", "temp", [(30.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0),
                        (38.1, 1), (39.0, 1),
                        (39.1, 2), (42.0, 2)]),
]
# Rounded half-up before scoring (docs/clinical/news2.md#rounding): RR/HR/SBP/SpO2 to integers,
# temperature to 0.1.
ROUNDING: list[tuple[str, str, list[tuple[float, int]]]] = [
    ("rr_bpm", "rr", [(20.49, 0), (20.5, 2), (8.5, 1), (8.49, 3), (11.5, 0), (24.5, 3)]),
    ("spo2_pct", "spo2", [(95.5, 0), (95.49, 1), (91.5, 2), (91.49, 3)]),
    ("sbp_mmhg", "sbp", [(90.5, 2), (90.49, 3), (219.5, 3), (219.49, 0)]),
    ("hr_bpm", "hr", [(90.5, 1), (90.49, 0), (40.5, 1), (130.5, 3)]),
    ("temp_c", "temp", [(35.05, 1), (35.04, 3), (36.05, 0), (38.05, 1), (39.05, 2), (39.04, 1),
                        (36.04, 1)]),
]
# fmt: on
CASES = [
    pytest.param(key, item, value, expected, id=f"{key}-{value:g}")
    for key, item, pairs in ROWS + ROUNDING
    for value, expected in pairs
]


@pytest.mark.parametrize(("key", "item", "value", "expected"), CASES)
def test_bands_and_rounding(key: str, item: str, value: float, expected: int) -> None:
    result = score("news2", {key: value}, **AGE)  # type: ignore[arg-type]
    assert result.band == "NEWS2"
    assert result.items[item] == expected


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"on_oxygen": False}, 0),
        ({"on_oxygen": True}, 2),
        ({"oxygen": {"device": "room_air"}}, 0),
        ({"oxygen": {"device": "NP", "flow_lpm": 1}}, 2),
        ({"oxygen": {"device": "CP"}}, 2),
        # both charted and consistent
        ({"on_oxygen": False, "oxygen": {"device": "room_air"}}, 0),
        ({"on_oxygen": True, "oxygen": {"device": "NP"}}, 2),
        ({"on_oxygen": True, "oxygen": {"device": "HF", "flow_lpm": 30, "fio2_pct": 40}}, 2),
        ({}, None),
    ],
)
def test_air_or_oxygen(inputs: dict[str, object], expected: int | None) -> None:
    assert score("news2", inputs, **AGE).items["air_or_oxygen"] == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ({"on_oxygen": False, "oxygen": {"device": "NP"}}, "false but oxygen.device is NP"),
        (
            {"on_oxygen": False, "oxygen": {"device": "NP", "flow_lpm": 2}},
            "false but oxygen.device is NP",
        ),
        ({"on_oxygen": False, "oxygen": {"device": "CP", "fio2_pct": 21}}, "device is CP"),
        (
            {"on_oxygen": True, "oxygen": {"device": "room_air"}},
            "true but oxygen.device is room_air",
        ),
    ],
)
def test_on_oxygen_contradicting_the_device_is_an_input_error(
    inputs: dict[str, object], words: str
) -> None:
    # clinical lead decision (news2 table 2017.1-wardwatch.2): reject, never resolve silently
    with pytest.raises(PewsInputError) as info:
        score("news2", {**NORMAL, **inputs}, **AGE)  # type: ignore[arg-type]
    assert info.value.field == "on_oxygen"
    assert str(info.value).startswith("on_oxygen: ") and words in str(info.value)


@pytest.mark.parametrize(
    ("system", "item"), [("bedside_pews", "oxygen_therapy"), ("uk_npews", "oxygen")]
)
def test_on_oxygen_is_not_checked_by_systems_that_ignore_it(system: str, item: str) -> None:
    # on_oxygen is NEWS2 vocabulary: the paediatric systems score the device and ignore it
    inputs = {"on_oxygen": False, "oxygen": {"device": "HF"}}
    assert score(system, inputs, age_months=30).items[item] == 4


def test_on_oxygen_contradiction_names_the_set_in_score_many() -> None:
    sets = [{"on_oxygen": True}, {"on_oxygen": False, "oxygen": {"device": "FM"}}]
    with pytest.raises(PewsInputError) as info:
        score_many("news2", sets, **AGE)  # type: ignore[arg-type]
    assert info.value.field == "inputs[1].on_oxygen"


@pytest.mark.parametrize(
    ("value", "expected"), [("A", 0), ("new_confusion", 3), ("V", 3), ("P", 3), ("U", 3)]
)
def test_consciousness(value: str, expected: int) -> None:
    assert score("news2", {"consciousness": value}, **AGE).items["consciousness"] == expected  # type: ignore[arg-type]


NORMAL = {
    "rr_bpm": 16,
    "spo2_pct": 97,
    "on_oxygen": False,
    "sbp_mmhg": 120,
    "hr_bpm": 70,
    "consciousness": "A",
    "temp_c": 37.0,
}


@pytest.mark.parametrize(
    ("changes", "total", "level", "single"),
    [
        ({}, 0, "low", False),
        ({"hr_bpm": 95, "temp_c": 38.5, "spo2_pct": 94, "rr_bpm": 10}, 4, "low", False),
        ({"consciousness": "V"}, 3, "low_medium", True),
        ({"consciousness": "V", "hr_bpm": 95}, 4, "low_medium", True),
        ({"hr_bpm": 95, "temp_c": 38.5, "spo2_pct": 94, "rr_bpm": 22}, 5, "medium", False),
        ({"consciousness": "V", "on_oxygen": True, "hr_bpm": 95}, 6, "medium", True),
        ({"rr_bpm": 30, "on_oxygen": True, "temp_c": 39.5}, 7, "high", True),
    ],
)
def test_levels(changes: dict[str, object], total: int, level: str, single: bool) -> None:
    result = score("news2", {**NORMAL, **changes}, **AGE)  # type: ignore[arg-type]
    assert (result.total, result.complete) == (total, True)
    assert result.escalation == {"level": level, "any_single_3": single}


@pytest.mark.parametrize(
    ("age", "ok"),
    [
        ({"age_days": 5843}, False),
        ({"age_days": 5844}, True),
        ({"age_months": 191}, False),
        ({"age_months": 192}, True),
    ],
)
def test_not_below_16_years(age: dict[str, int], ok: bool) -> None:
    if ok:
        assert score("news2", {}, **age).band == "NEWS2"  # type: ignore[arg-type]
    else:
        with pytest.raises(PewsInputError, match="age"):
            score("news2", {}, **age)  # type: ignore[arg-type]

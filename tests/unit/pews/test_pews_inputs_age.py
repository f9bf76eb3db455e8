"""Input validation and calendar age arithmetic.

See docs/clinical/vocabulary.md#input-keys and docs/clinical/conventions.md#age.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from alerting.pews import INPUT_KEYS, PewsInputError, completed_months, score, score_many


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({"heart_rate": 120}, "heart_rate", "unknown input key"),
        ({"hr_bpm": "120"}, "hr_bpm", "expected a number"),
        ({"hr_bpm": True}, "hr_bpm", "expected a number"),
        ({"hr_bpm": -1}, "hr_bpm", "negative"),
        ({"hr_bpm": math.nan}, "hr_bpm", "finite"),
        ({"rr_bpm": math.inf}, "rr_bpm", "finite"),
        ({"spo2_pct": 100.5}, "spo2_pct", "above 100"),
        ({"temp_c": -0.1}, "temp_c", "negative"),
        ({"crt_s": -2}, "crt_s", "negative"),
        ({"oxygen": {"device": "NP", "fio2_pct": 101}}, "oxygen.fio2_pct", "above 100"),
        ({"oxygen": {"device": "NP", "flow_lpm": -1}}, "oxygen.flow_lpm", "negative"),
        ({"oxygen": {"device": "nasal"}}, "oxygen.device", "not one of"),
        ({"oxygen": {"flow_lpm": 2}}, "oxygen.device", "required"),
        ({"oxygen": {"device": "NP", "litres": 2}}, "oxygen.litres", "unknown key"),
        ({"oxygen": {"device": "room_air", "flow_lpm": 2}}, "oxygen", "contradictory"),
        ({"oxygen": "NP"}, "oxygen", "expected an object"),
        ({"resp_effort": "heavy"}, "resp_effort", "not one of"),
        ({"avpu": "a"}, "avpu", "not one of"),
        ({"resp_signs": "grunting"}, "resp_signs", "expected a list"),
        ({"resp_signs": ["grunting", "wheeze"]}, "resp_signs[1]", "not one of"),
        ({"on_oxygen": 1}, "on_oxygen", "true or false"),
        ({"consciousness": "confused"}, "consciousness", "not one of"),
    ],
)
def test_bad_inputs_name_the_field(inputs: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(PewsInputError) as info:
        score("bedside_pews", inputs, age_months=30)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ") and words in str(info.value)


def test_other_systems_keys_are_accepted_and_ignored() -> None:
    result = score(
        "bedside_pews", {"avpu": "V", "on_oxygen": True, "behaviour": "sleeping"}, age_months=30
    )
    assert result.total == 0


def test_null_means_not_obtained() -> None:
    result = score("bedside_pews", dict.fromkeys(INPUT_KEYS), age_months=30)
    assert result.items == dict.fromkeys(result.items) and not result.complete


def test_negative_excess_is_not_impossible() -> None:
    score("brighton_pews", {"hr_above_upper_normal_bpm": -30}, age_months=30)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "age"),
        ({"age_days": 10, "age_months": 1}, "age"),
        ({"age_days": -1}, "age_days"),
        ({"age_days": "10"}, "age_days"),
        ({"age_months": 1.5}, "age_months"),
        ({"age_months": -1}, "age_months"),
        ({"dob": dt.date(2020, 1, 1)}, "at"),
        ({"dob": dt.date(2020, 1, 2), "at": dt.datetime(2020, 1, 1, 12, tzinfo=dt.UTC)}, "dob"),
    ],
)
def test_bad_ages(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(PewsInputError) as info:
        score("uk_npews", {}, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_unknown_system() -> None:
    with pytest.raises(PewsInputError, match=r"^system: 'pews'"):
        score("pews", {}, age_months=1)


@pytest.mark.parametrize(
    ("dob", "on", "months"),
    [
        (dt.date(2024, 1, 15), dt.date(2024, 1, 15), 0),
        (dt.date(2024, 1, 15), dt.date(2024, 2, 14), 0),
        (dt.date(2024, 1, 15), dt.date(2024, 2, 15), 1),
        (dt.date(2024, 1, 31), dt.date(2024, 2, 28), 0),
        (dt.date(2024, 1, 31), dt.date(2024, 2, 29), 1),  # month-end anniversary (leap year)
        (dt.date(2023, 1, 31), dt.date(2023, 2, 28), 1),
        (dt.date(2024, 1, 31), dt.date(2024, 3, 30), 1),
        (dt.date(2024, 1, 31), dt.date(2024, 3, 31), 2),
        (dt.date(2020, 2, 29), dt.date(2021, 2, 28), 12),  # leap-day birthday in a common year
        (dt.date(2020, 2, 29), dt.date(2021, 2, 27), 11),
        (dt.date(2019, 6, 10), dt.date(2024, 6, 9), 59),
        (dt.date(2019, 6, 10), dt.date(2024, 6, 10), 60),
    ],
)
def test_completed_months(dob: dt.date, on: dt.date, months: int) -> None:
    assert completed_months(dob, on) == months


def test_band_from_dob_changes_on_the_birthday() -> None:
    dob = dt.date(2019, 6, 10)
    tz = dt.timezone(dt.timedelta(hours=8))  # the ward's local date decides
    before = score("uk_npews", {}, dob=dob, at=dt.datetime(2024, 6, 9, 23, 59, tzinfo=tz))
    after = score("uk_npews", {}, dob=dob, at=dt.datetime(2024, 6, 10, 0, 1, tzinfo=tz))
    assert (before.band, after.band) == ("UK-B", "UK-C")


def test_score_many_matches_score_and_names_the_bad_set() -> None:
    sets: list[dict[str, object]] = [{"hr_bpm": 100}, {"hr_bpm": 185, "spo2_pct": 90}, {}]
    ages = [100, 400, 5000]
    results = score_many("uk_npews", sets, age_days=ages)
    assert results == [score("uk_npews", s, age_days=a) for s, a in zip(sets, ages, strict=True)]
    at = [dt.datetime(2024, 6, 9, 12, tzinfo=dt.UTC), dt.datetime(2024, 6, 10, 12, tzinfo=dt.UTC)]
    bands = [r.band for r in score_many("uk_npews", [{}, {}], dob=dt.date(2019, 6, 10), at=at)]
    assert bands == ["UK-B", "UK-C"]
    with pytest.raises(PewsInputError) as info:
        score_many("uk_npews", [{}, {"spo2_pct": 120}], age_months=30)
    assert info.value.field == "inputs[1].spo2_pct"

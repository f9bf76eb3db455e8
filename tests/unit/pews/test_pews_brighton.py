"""Brighton-type PEWS (docs/clinical/brighton_pews.md) with the shipped example age-normal table.

Example normals used below (tables/brighton_normals_example.toml): 2-<5 y: HR 95-140,
RR 25-30; <1 y: HR 110-160, RR 30-40.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from alerting.pews import PewsInputError, installed_tables, installed_tables_dir, load_table, score

TODDLER = 30  # months -> example row 2-<5 y


def items(inputs: dict[str, object], months: int = TODDLER) -> dict[str, int | None]:
    return score("brighton_pews", inputs, age_months=months).items


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"skin_colour": "pink"}, 0),
        ({"skin_colour": "pale"}, 1),
        ({"skin_colour": "grey"}, 2),
        ({"skin_colour": "grey_mottled"}, 3),
        # CRT between the whole-second cells scores the HIGHER neighbour (table wardwatch.2):
        # [0, 2] -> 0, (2, 3] -> 1, (3, 4] -> 2, > 4 -> 3
        ({"crt_s": 0}, 0),
        ({"crt_s": 1}, 0),
        ({"crt_s": 2}, 0),
        ({"crt_s": 2.01}, 1),
        ({"crt_s": 2.5}, 1),
        ({"crt_s": 2.99}, 1),
        ({"crt_s": 3}, 1),
        ({"crt_s": 3.01}, 2),
        ({"crt_s": 3.5}, 2),
        ({"crt_s": 3.99}, 2),
        ({"crt_s": 4}, 2),
        ({"crt_s": 4.01}, 3),
        ({"crt_s": 4.5}, 3),
        ({"crt_s": 4.99}, 3),
        ({"crt_s": 5}, 3),
        ({"crt_s": 7}, 3),
        ({"hr_above_upper_normal_bpm": -15}, 0),
        ({"hr_above_upper_normal_bpm": 19.9}, 0),
        ({"hr_above_upper_normal_bpm": 20}, 2),  # inclusive ">= 20 above"
        ({"hr_above_upper_normal_bpm": 29.9}, 2),
        ({"hr_above_upper_normal_bpm": 30}, 3),
        ({"hr_bpm": 159}, 0),  # 140 + 19
        ({"hr_bpm": 160}, 2),  # 140 + 20
        ({"hr_bpm": 170}, 3),
        ({"hr_bpm": 95}, 0),  # lower normal: not bradycardia
        ({"hr_bpm": 94}, 3),  # below the lower normal: bradycardia
        ({"bradycardia_for_age": True}, 3),
        ({"hr_bpm": 120, "bradycardia_for_age": True}, 3),  # explicit flag wins
        ({"skin_colour": "pale", "crt_s": 4, "hr_bpm": 120}, 2),  # highest criterion wins
    ],
)
def test_cardiovascular(inputs: dict[str, object], expected: int) -> None:
    assert items(inputs)["cardiovascular"] == expected


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"rr_bpm": 40}, 0),  # 30 + 10: not "> 10 above"
        ({"rr_bpm": 40.5}, 1),
        ({"rr_bpm": 50}, 1),
        ({"rr_bpm": 50.5}, 2),
        ({"rr_above_upper_normal_bpm": 10}, 0),
        ({"rr_above_upper_normal_bpm": 10.01}, 1),
        ({"rr_above_upper_normal_bpm": 20}, 1),
        ({"rr_above_upper_normal_bpm": 20.01}, 2),
        ({"resp_signs": []}, 0),
        ({"resp_signs": ["accessory_muscles"]}, 1),
        ({"resp_signs": ["recession"]}, 2),
        ({"resp_signs": ["tracheal_tug"]}, 2),
        ({"resp_signs": ["sternal_recession"]}, 2),
        ({"resp_signs": ["grunting"]}, 2),  # alone: like recession / tug (table wardwatch.2)
        ({"resp_signs": ["grunting", "accessory_muscles"]}, 2),
        ({"rr_bpm": 28, "resp_signs": ["grunting"]}, 2),  # RR normal (not 5 below): still 2
        (
            {"rr_bpm": 20, "resp_signs": ["grunting"]},
            3,
        ),  # 5 below the lower normal 25, with grunting
        ({"rr_bpm": 20, "resp_signs": ["tracheal_tug"]}, 3),
        ({"rr_bpm": 20, "resp_signs": ["sternal_recession"]}, 3),
        ({"rr_bpm": 20, "resp_signs": ["recession"]}, 2),  # recession is not one of the three signs
        ({"rr_bpm": 20, "resp_signs": []}, 0),  # low RR alone is not enough
        ({"rr_bpm": 20.5, "resp_signs": ["grunting"]}, 2),  # only 4.5 below: grunting alone
        ({"rr_bpm": 20.5, "resp_signs": ["tracheal_tug"]}, 2),  # only 4.5 below: tug alone
        ({"rr_above_upper_normal_bpm": -10, "resp_signs": ["grunting"]}, 3),  # RR 20 from excess
        ({"oxygen": {"device": "FM", "fio2_pct": 29.9}}, 0),
        ({"oxygen": {"device": "FM", "fio2_pct": 30}}, 1),
        ({"oxygen": {"device": "FM", "fio2_pct": 40}}, 2),
        ({"oxygen": {"device": "FM", "fio2_pct": 50}}, 3),  # FiO2 >= 50 % alone gives 3
        ({"oxygen": {"device": "NP", "flow_lpm": 3.99}}, 0),
        ({"oxygen": {"device": "NP", "flow_lpm": 4}}, 1),
        ({"oxygen": {"device": "NP", "flow_lpm": 6}}, 2),
        ({"oxygen": {"device": "NP", "flow_lpm": 8}}, 3),
        ({"oxygen": {"device": "HF", "flow_lpm": 8, "fio2_pct": 30}}, 3),
        ({"oxygen": {"device": "room_air"}}, 0),
        # high-support devices take the domain maximum whatever the level (table wardwatch.2)
        ({"oxygen": {"device": "HF"}}, 3),
        ({"oxygen": {"device": "HF", "flow_lpm": 2}}, 3),
        ({"oxygen": {"device": "HF", "fio2_pct": 21}}, 3),
        ({"oxygen": {"device": "CP", "fio2_pct": 21}}, 3),
        ({"oxygen": {"device": "CP", "flow_lpm": 0}}, 3),
        ({"oxygen": {"device": "BiP", "fio2_pct": 21}}, 3),
        ({"oxygen": {"device": "BiP"}}, 3),
        # low-support devices at the same levels still score by the level
        ({"oxygen": {"device": "NRB", "flow_lpm": 2}}, 0),
        ({"oxygen": {"device": "FM", "fio2_pct": 21}}, 0),
        ({"oxygen": {"device": "HB", "fio2_pct": 21}}, 0),
    ],
)
def test_respiratory(inputs: dict[str, object], expected: int) -> None:
    assert items(inputs)["respiratory"] == expected


def test_infant_normals_row() -> None:
    assert items({"hr_bpm": 180}, months=5)["cardiovascular"] == 2  # 160 + 20
    assert items({"rr_bpm": 50}, months=5)["respiratory"] == 0  # 40 + 10
    assert items({"rr_bpm": 51}, months=5)["respiratory"] == 1  # 40 + 11
    assert items({"rr_bpm": 61}, months=5)["respiratory"] == 2  # 40 + 21


@pytest.mark.parametrize(
    ("inputs", "partial"),
    [
        ({"skin_colour": "pink", "crt_s": 1, "hr_bpm": 120}, set()),
        ({"skin_colour": "pink", "crt_s": 1, "hr_above_upper_normal_bpm": -20}, set()),
        ({"skin_colour": "pink", "crt_s": 1, "bradycardia_for_age": False}, {"cardiovascular"}),
        ({"skin_colour": "pink", "hr_bpm": 120}, {"cardiovascular"}),
        ({"rr_bpm": 28, "resp_signs": [], "oxygen": {"device": "room_air"}}, set()),
        ({"rr_bpm": 28, "resp_signs": [], "oxygen": {"device": "NP"}}, {"respiratory"}),
        ({"rr_bpm": 28, "resp_signs": [], "oxygen": {"device": "CP"}}, set()),  # fixed score
        ({"rr_bpm": 28, "oxygen": {"device": "room_air"}}, {"respiratory"}),
    ],
)
def test_partial_domains_are_reported_missing(inputs: dict[str, object], partial: set[str]) -> None:
    result = score("brighton_pews", inputs, age_months=TODDLER)
    domains = {"cardiovascular", "respiratory"}
    assert (
        set(result.missing) & domains
        == (domains - {d for d in domains if result.items[d] is not None}) | partial
    )


FULL = {
    "behaviour": "playing_appropriate",
    "skin_colour": "pink",
    "crt_s": 1,
    "hr_bpm": 120,
    "rr_bpm": 28,
    "resp_signs": [],
    "oxygen": {"device": "room_air"},
    "quarter_hourly_nebs": False,
    "persistent_postop_vomiting": False,
}


@pytest.mark.parametrize(
    ("changes", "total", "flags"),
    [
        ({}, 0, (False, False, False)),
        ({"behaviour": "irritable"}, 2, (False, False, False)),
        ({"behaviour": "irritable", "skin_colour": "pale"}, 3, (True, False, False)),
        ({"behaviour": "lethargic_confused_reduced_pain"}, 3, (True, False, True)),
        (
            {"quarter_hourly_nebs": True, "persistent_postop_vomiting": True},
            4,
            (True, False, False),
        ),
        (
            {"quarter_hourly_nebs": True, "behaviour": "irritable", "skin_colour": "pale"},
            5,
            (True, True, False),
        ),
        (
            {
                "behaviour": "lethargic_confused_reduced_pain",
                "crt_s": 5,
                "resp_signs": ["recession"],
                "quarter_hourly_nebs": True,
                "persistent_postop_vomiting": True,
            },
            12,
            (True, True, True),
        ),
    ],
)
def test_totals_and_flags(
    changes: dict[str, object], total: int, flags: tuple[bool, bool, bool]
) -> None:
    result = score("brighton_pews", {**FULL, **changes}, age_months=TODDLER)
    assert (result.total, result.complete, result.band) == (total, True, None)
    assert result.escalation == dict(
        zip(("total_ge_3", "total_ge_5", "any_domain_3"), flags, strict=True)
    )


def test_maximum_total_is_13() -> None:
    worst = {
        **FULL,
        "behaviour": "lethargic_confused_reduced_pain",
        "skin_colour": "grey_mottled",
        "oxygen": {"device": "FM", "fio2_pct": 60},
        "quarter_hourly_nebs": True,
        "persistent_postop_vomiting": True,
    }
    assert score("brighton_pews", worst, age_months=TODDLER).total == 13


def test_age_outside_the_normals_table() -> None:
    with pytest.raises(PewsInputError, match="age-normal"):
        score("brighton_pews", {}, age_months=216)


def site_copy(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """Copy the shipped Brighton files and apply ``{file: (old, new)}`` text edits."""
    for name in ("brighton_pews.toml", "brighton_normals_example.toml"):
        shutil.copy(installed_tables_dir() / name, tmp_path / name)
    for name, (old, new) in edits.items():
        text = (tmp_path / name).read_text()
        assert old in text
        (tmp_path / name).write_text(text.replace(old, new))
    return tmp_path / "brighton_pews.toml"


def test_site_supplied_variant(tmp_path: Path) -> None:
    # A local variant: 1 point from 3 L/min (MDCalc reading), textbook HR upper normal 130 at 2-5 y.
    path = site_copy(
        tmp_path,
        {
            "brighton_pews.toml": (
                '0 = ["[0, 4)"]\n1 = ["[4, 6)"]',
                '0 = ["[0, 3)"]\n1 = ["[3, 6)"]',
            ),
            "brighton_normals_example.toml": ("hr_high = 140", "hr_high = 130"),
        },
    )
    tables = installed_tables().with_table(load_table(path))
    obs = {"oxygen": {"device": "NP", "flow_lpm": 3}, "hr_bpm": 150}
    site = score("brighton_pews", obs, age_months=TODDLER, tables=tables).items
    default = score("brighton_pews", obs, age_months=TODDLER).items
    assert (site["respiratory"], site["cardiovascular"]) == (1, 2)
    assert (default["respiratory"], default["cardiovascular"]) == (0, 0)


def test_high_support_device_list_is_site_configurable(tmp_path: Path) -> None:
    # A site that scores HF by its delivered level, and FM as a fixed 1.
    path = site_copy(tmp_path, {"brighton_pews.toml": ('FM = "level"\nHB', "FM = 1\nHB")})
    text = path.read_text().replace("HF = 3\n", 'HF = "level"\n')
    path.write_text(text)
    tables = installed_tables().with_table(load_table(path))

    def resp(oxygen: dict[str, object]) -> int | None:
        result = score("brighton_pews", {"oxygen": oxygen}, age_months=TODDLER, tables=tables)
        return result.items["respiratory"]

    assert resp({"device": "HF", "flow_lpm": 2}) == 0
    assert resp({"device": "HF", "flow_lpm": 8}) == 3
    assert resp({"device": "CP", "fio2_pct": 21}) == 3  # unchanged
    assert resp({"device": "FM", "fio2_pct": 21}) == 1
    assert resp({"device": "FM", "fio2_pct": 40}) == 2

"""Table files are validated at load: broken files fail with file and field named."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from alerting.pews import SYSTEMS, PewsTableError, installed_tables_dir, load_table, load_tables


def test_installed_tables_load_with_provenance() -> None:
    tables = load_tables()
    assert [t.system for t in tables] == list(SYSTEMS)
    for table in tables:
        meta = table.file.meta
        assert meta.version and meta.source and meta.reviewer and meta.review_status and meta.date


def broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    for f in installed_tables_dir().glob("*.toml"):
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / name
    text = path.read_text()
    assert old in text, f"fixture text not found in {name}: {old!r}"
    path.write_text(text.replace(old, new, 1))
    return path


BP_E_HR = """[numeric.hr.bands.BP-E]
0 = ["(60, 100)"]
1 = ["[50, 60]", "[100, 120)"]          # literal: HR 50 scores 1
2 = ["(40, 50)", "[120, 140)"]          # literal: strict < 50
4 = ["[-inf, 40]", "[140, +inf)"]
"""

# (file, old text, new text, field named in the error, words in the error)
CASES = [
    (
        "bedside_pews.toml",
        '0 = ["(110, 150)"]',
        '0 = ["(110, 151)"]',
        "numeric.hr.bands.BP-A",
        "overlap",
    ),
    (
        "bedside_pews.toml",
        '1 = ["(90, 110]", "[150, 180)"]',
        '1 = ["(90, 109]", "[150, 180)"]',
        "numeric.hr.bands.BP-A",
        "gap",
    ),
    (
        "bedside_pews.toml",
        '0 = ["(94, 100]"]',
        '0 = ["(94, 99]"]',
        "numeric.spo2.all_ages",
        "does not cover",
    ),
    (
        "bedside_pews.toml",
        '2 = ["[0, 90]"]',
        '2 = ["(0, 90]"]',
        "numeric.spo2.all_ages",
        "does not cover",
    ),
    ("bedside_pews.toml", BP_E_HR, "", "numeric.hr.bands", "exactly the age bands"),
    (
        "bedside_pews.toml",
        "from_months = 3\nto_months = 12",
        "from_months = 3\nto_months = 11",
        "age_bands[2].from_years",
        "not contiguous",
    ),
    (
        "bedside_pews.toml",
        "from_years = 5\nto_years = 13",
        "from_years = 4\nto_years = 13",
        "age_bands[3].from_years",
        "not contiguous",
    ),
    ("bedside_pews.toml", 'reviewer = "unassigned"\n', "", "meta.reviewer", "required"),
    ("bedside_pews.toml", "ge7 = 7", "ge6 = 7", "escalation.ge6", "unknown key"),
    ("bedside_pews.toml", "apnoea = 4\n", "", "categorical.resp_effort", "no score for apnoea"),
    ("bedside_pews.toml", "CP = 4\n", "", "oxygen.devices.CP", "required"),
    ("bedside_pews.toml", "schema = 1", "schema =", "(file)", "not valid TOML"),
    ("bedside_pews.toml", "schema = 1", "schema = 2", "schema", "unsupported schema"),
    (
        "bedside_pews.toml",
        'system = "bedside_pews"',
        'system = "bedside"',
        "meta.system",
        "unknown system",
    ),
    (
        "bedside_pews.toml",
        '"(110, 150)"',
        '"(110; 150)"',
        "numeric.hr.bands.BP-A",
        "not an interval",
    ),
    ("bedside_pews.toml", '"(110, 150)"', '"(150, 110)"', "numeric.hr.bands.BP-A", "empty"),
    ("bedside_pews.toml", "to_years = 5", "to_year = 5", "age_bands[2].to_year", "unknown key"),
    ("bedside_pews.toml", "date = 2025-11-26", 'date = "yesterday"', "meta.date", "TOML date"),
    (
        "uk_npews.toml",
        '1 = ["[91.01, 94.99]"]',
        '1 = ["[91.5, 94.99]"]',
        "numeric.spo2.all_ages",
        "max_gap",
    ),
    ("uk_npews.toml", "max_gap = 1 ", "max_gap = 0.5 ", "numeric.crt.all_ages", "max_gap"),
    ("uk_npews.toml", 'V = "high"', 'V = "urgent"', "escalation.avpu.V", "not one of"),
    ("uk_npews.toml", "high = 9", "high = 4", "escalation.score_level_from", "increasing"),
    (
        "news2.toml",
        '1 = ["[35.1, 36.0]", "[38.1, 39.0]"]',
        '1 = ["[35.2, 36.0]", "[38.1, 39.0]"]',
        "numeric.temp.all_ages",
        "gap",
    ),
    (
        "brighton_pews.toml",
        '0 = ["(-inf, 20)"]',
        '0 = ["[0, 20)"]',
        "numeric.hr_excess.all_ages",
        "does not cover",
    ),
    ("brighton_pews.toml", "grunting = 2\n", "", "categorical.resp_signs", "no score for grunting"),
    (
        "brighton_pews.toml",
        "HF = 3\n",
        "HF = 4\n",
        "oxygen.devices.HF",
        "exceeds the respiratory domain maximum 3",
    ),
    (
        "brighton_normals_example.toml",
        "hr_low = 110",
        "hr_low = 170",
        "rows[0]",
        "hr_low < hr_high",
    ),
    (
        "brighton_normals_example.toml",
        "from_years = 2\nto_years = 5",
        "from_years = 3\nto_years = 5",
        "rows[2].from_years",
        "not contiguous",
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "field", "words"), CASES, ids=[f"{c[0]}-{c[4]}-{c[3]}" for c in CASES]
)
def test_broken_files_are_rejected(
    tmp_path: Path, name: str, old: str, new: str, field: str, words: str
) -> None:
    broken(tmp_path, name, old, new)
    scoring_file = "brighton_pews.toml" if name.startswith("brighton_normals") else name
    with pytest.raises(PewsTableError) as info:
        load_table(tmp_path / scoring_file)
    message = str(info.value)
    assert info.value.field == field, message
    assert name in message and words in message
    with pytest.raises(PewsTableError):  # the whole folder refuses to load too
        load_tables(tmp_path)


def test_gap_message_names_both_cells(tmp_path: Path) -> None:
    broken(
        tmp_path,
        "bedside_pews.toml",
        '1 = ["(90, 110]", "[150, 180)"]',
        '1 = ["(90, 109]", "[150, 180)"]',
    )
    with pytest.raises(
        PewsTableError, match=re.escape("values between (90, 109] and (110, 150) have no score")
    ):
        load_table(tmp_path / "bedside_pews.toml")


def test_two_tables_for_one_system(tmp_path: Path) -> None:
    shutil.copy(installed_tables_dir() / "news2.toml", tmp_path / "news2.toml")
    shutil.copy(installed_tables_dir() / "news2.toml", tmp_path / "news2_local.toml")
    with pytest.raises(PewsTableError, match="a second table"):
        load_tables(tmp_path)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(PewsTableError, match="cannot read"):
        load_table(tmp_path / "nope.toml")
    with pytest.raises(PewsTableError, match="no scoring tables"):
        load_tables(tmp_path)


def test_partial_directory_loads_only_its_systems(tmp_path: Path) -> None:
    shutil.copy(installed_tables_dir() / "news2.toml", tmp_path / "news2.toml")
    assert [t.system for t in load_tables(tmp_path)] == ["news2"]

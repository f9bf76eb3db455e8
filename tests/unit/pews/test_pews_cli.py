"""``wardwatch pews`` CLI: score, --jsonl, tables; JSON output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerting.pews.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_score_prints_one_json_result() -> None:
    code, out, _ = run(
        "score",
        "--system",
        "uk_npews",
        "--age-days",
        "400",
        "--obs",
        '{"hr_bpm": 175, "avpu": "V", "bp_skip_code": "U4"}',
    )
    assert code == 0
    assert json.loads(out) == {
        "system": "uk_npews",
        "band": "UK-B",
        "total": 8,
        "items": {
            "rr": None,
            "resp_distress": None,
            "spo2": None,
            "oxygen": None,
            "hr": 4,
            "sbp": 4,
            "crt": None,
        },
        "complete": False,
        "missing": ["rr", "resp_distress", "spo2", "oxygen", "crt"],
        "escalation": {"score_level": "medium", "final_level": "high"},
        "table_version": "2023.1-wardwatch.1",
    }


@pytest.mark.parametrize(
    ("age_args", "band"),
    [
        (["--age-months", "156"], "BP-E"),
        (["--age-days", "4748"], "BP-D"),
        (["--dob", "2012-03-01", "--at", "2025-03-01T08:00:00+00:00"], "BP-E"),
        (["--dob", "2012-03-01", "--at", "2025-02-28T23:00:00"], "BP-D"),
    ],
)
def test_age_options(age_args: list[str], band: str) -> None:
    code, out, _ = run("score", "--system", "bedside_pews", *age_args, "--obs", "{}")
    assert code == 0
    assert json.loads(out)["band"] == band


def test_dob_without_at_uses_now() -> None:
    code, out, _ = run("score", "--system", "bedside_pews", "--dob", "2024-01-01", "--obs", "{}")
    assert code == 0 and json.loads(out)["band"] in {"BP-B", "BP-C", "BP-D"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--system", "uk_npews", "--age-days", "400", "--obs", '{"spo2_pct": 101}'],
            "spo2_pct: 101 is above 100",
        ),
        (
            ["--system", "uk_npews", "--age-days", "400", "--obs", '{"pulse": 80}'],
            "pulse: unknown input key",
        ),
        (
            ["--system", "uk_npews", "--age-days", "400", "--obs", '{"hr_bpm": "fast"}'],
            "hr_bpm: expected a number",
        ),
        (
            ["--system", "uk_npews", "--age-days", "400", "--obs", '{"avpu": "X"}'],
            "avpu: 'X' is not one of",
        ),
        (
            ["--system", "uk_npews", "--age-days", "400", "--obs", '{"rr_bpm": -3}'],
            "rr_bpm: -3 is negative",
        ),
        (
            ["--system", "uk_npews", "--age-days", "400", "--obs", "{not json"],
            "--obs: not valid JSON",
        ),
        (["--system", "pews", "--age-days", "400", "--obs", "{}"], "system: 'pews' is not one of"),
        (["--system", "news2", "--age-days", "400", "--obs", "{}"], "age: "),
        (["--system", "news2", "--obs", "{}"], "age: give exactly one"),
        (
            ["--system", "news2", "--age-days", "6000", "--age-months", "200"],
            "age: give exactly one",
        ),
        (["--system", "news2", "--dob", "01/02/2008"], "dob: '01/02/2008' is not a date"),
        (
            ["--system", "news2", "--age-days", "6000", "--at", "2025-01-01"],
            "--at: only meaningful with --dob",
        ),
        (["--age-days", "6000"], "--system: required"),
        (
            [
                "--system",
                "news2",
                "--age-days",
                "6000",
                "--obs",
                '{"on_oxygen": false, "oxygen": {"device": "NP", "flow_lpm": 2}}',
            ],
            "on_oxygen: false but oxygen.device is NP (contradictory)",
        ),
        (
            [
                "--system",
                "news2",
                "--age-days",
                "6000",
                "--obs",
                '{"on_oxygen": true, "oxygen": {"device": "room_air"}}',
            ],
            "on_oxygen: true but oxygen.device is room_air (contradictory)",
        ),
    ],
)
def test_input_errors_exit_2_and_name_the_field(args: list[str], words: str) -> None:
    code, out, err = run("score", *args)
    assert code == 2
    assert out == ""
    assert words in err


def test_jsonl_scores_every_line_in_order_and_reports_errors() -> None:
    lines = [
        {"system": "news2", "age_days": 6000, "inputs": {"hr_bpm": 131, "temp_c": 36.05}},
        {"system": "news2", "age_days": 6000, "inputs": {"hr": 50}},
        {"system": "bedside_pews", "age_months": 30, "inputs": {"oxygen": {"device": "HF"}}},
        {"system": "uk_npews", "age_months": 30, "inputs": {"spo2_pct": 101}},
        {"system": "brighton_pews", "age_days": 1000, "inputs": {"behaviour": "sleeping"}},
    ]
    contradiction = {"on_oxygen": False, "oxygen": {"device": "HF", "fio2_pct": 40}}
    lines.append({"system": "news2", "age_days": 6000, "inputs": contradiction})
    stdin = "\n".join(json.dumps(x) for x in lines) + "\n" + "not json\n" + '{"age_days": 1}\n'
    code, out, _ = run("score", "--jsonl", stdin=stdin)
    results = [json.loads(x) for x in out.splitlines()]
    assert code == 2
    assert len(results) == 8
    assert results[0]["items"]["hr"] == 3 and results[0]["items"]["temp"] == 0
    assert results[1] == {
        "error": "hr: unknown input key (not in docs/clinical/vocabulary.md#input-keys)"
    }
    assert results[2]["items"]["oxygen_therapy"] == 4 and results[2]["band"] == "BP-C"
    assert results[3]["error"].startswith("spo2_pct: ")
    assert results[4]["items"]["behaviour"] == 1 and results[4]["band"] is None
    assert results[5] == {"error": "on_oxygen: false but oxygen.device is HF (contradictory)"}
    assert results[6]["error"].startswith("line: not valid JSON")
    assert results[7] == {"error": "system: required"}


def test_jsonl_all_good_exits_0() -> None:
    stdin = json.dumps({"system": "uk_npews", "age_months": 3, "inputs": {}}) + "\n"
    code, out, _ = run("score", "--jsonl", stdin=stdin)
    assert code == 0 and json.loads(out)["band"] == "UK-A"


def test_jsonl_rejects_other_options() -> None:
    code, _, err = run("score", "--jsonl", "--system", "news2", stdin="")
    assert code == 2 and "--jsonl" in err


def test_tables_lists_every_system_with_version_and_source() -> None:
    code, out, _ = run("tables")
    assert code == 0
    for system, version in [
        ("bedside_pews", "1.0.0"),
        ("uk_npews", "2023.1-wardwatch.1"),
        ("brighton_pews", "2005.1-wardwatch.2"),
        ("news2", "2017.1-wardwatch.2"),
    ]:
        assert system in out and version in out
    assert "source: Parshuram" in out and "EXAMPLE ONLY" in out


def test_tables_show_prints_readable_cells() -> None:
    code, out, _ = run("tables", "--show", "bedside_pews")
    assert code == 0
    assert (
        "| BP-D | (70, 110) | (60, 70] ∪ [110, 130) | (50, 60] ∪ [130, 150] "
        "| [-inf, 50] ∪ (150, +inf) |" in out
    )
    assert "review status: DRAFT" in out
    code, out, _ = run("tables", "--show", "brighton_pews")
    assert code == 0 and "Age-normal rates" in out and "| 2-5y |" in out


def test_tables_show_unknown_system() -> None:
    code, _, err = run("tables", "--show", "pews")
    assert code == 2 and "system: 'pews'" in err


def test_site_table_option(tmp_path: Path) -> None:
    src = REPO / "alerting/pews/tables/news2.toml"
    site = tmp_path / "news2.toml"
    site.write_text(src.read_text().replace('version = "2017.1-wardwatch.2"', 'version = "site-7"'))
    code, out, _ = run(
        "score", "--system", "news2", "--age-days", "6000", "--obs", "{}", "--table", str(site)
    )
    assert code == 0 and json.loads(out)["table_version"] == "site-7"
    site.write_text(src.read_text().replace("[12, 20]", "[13, 20]"))
    code, _, err = run("tables", "--table", str(site))
    assert code == 2 and "news2.toml: numeric.rr.all_ages: gap" in err


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alerting.pews",
            "score",
            "--system",
            "news2",
            "--age-days",
            "6000",
            "--obs",
            '{"spo2_pct": 300}',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "spo2_pct" in proc.stderr

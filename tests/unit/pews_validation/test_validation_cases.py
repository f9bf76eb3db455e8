"""Independent validation of `wardwatch pews score` against the engine specification v0.1.

The specification is now docs/clinical/README.md#provenance and the pages it indexes.

The expected values in cases.jsonl were written by hand from the specification tables
(see build_cases.py); they do not come from the implementation or its own tests.

All cases go through ONE `python -m alerting.pews score --jsonl` subprocess; a few are
also run through the single-shot `--system/--age-days/--obs` form.

Cases whose expectation disagrees with the implementation and where the reviewer judged the
implementation wrong (or the spec ambiguous and the implementation's choice clinically
questionable) are listed in KNOWN_DISCREPANCIES and run as xfail(strict=True).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CASES_FILE = HERE / "cases.jsonl"
TIMEOUT_S = 60

# id -> reason.  Filled in after running the cases; see the review report.
#
# Resolved (removed from this list) after the clinical lead decided the four ambiguities in
# favour of the safer reading; the tables carry the change in their notes and version:
#   br-cv-crt-2.5/3.5/4.5   Brighton CRT between whole seconds -> higher neighbour
#                           (brighton_pews 2005.1-wardwatch.2: [0,2] 0, (2,3] 1, (3,4] 2, >4 3)
#   br-resp-grunting-alone  grunting alone scores 2 (brighton_pews 2005.1-wardwatch.2)
#   br-resp-cpap-fio2-21, br-resp-hf-flow2
#                           HF/BiP/CP score the respiratory maximum 3 whatever the level
#                           (brighton_pews 2005.1-wardwatch.2, [oxygen.devices])
#   n2-oxygen-contradiction on_oxygen contradicting the oxygen device is an input error
#                           (news2 2017.1-wardwatch.2); the case now expects an error only
KNOWN_DISCREPANCIES: dict[str, str] = {}


def _load_cases() -> list[dict[str, Any]]:
    with CASES_FILE.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


CASES = _load_cases()


def _cli_line(case: dict[str, Any]) -> dict[str, Any]:
    line: dict[str, Any] = {"system": case["system"]}
    for key in ("age_days", "age_months"):
        if key in case:
            line[key] = case[key]
    line["inputs"] = case["inputs"]
    return line


@pytest.fixture(scope="module")
def jsonl_results() -> dict[str, Any]:
    stdin = "".join(json.dumps(_cli_line(c)) + "\n" for c in CASES)
    proc = subprocess.run(
        [sys.executable, "-m", "alerting.pews", "score", "--jsonl"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=TIMEOUT_S,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == len(CASES), (
        f"expected {len(CASES)} result lines, got {len(lines)}; stderr:\n{proc.stderr[-2000:]}"
    )
    results = {c["id"]: json.loads(ln) for c, ln in zip(CASES, lines, strict=True)}
    return {"results": results, "returncode": proc.returncode}


def _compare(expect: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Return human-readable mismatches between an expectation subset and a result."""
    problems: list[str] = []
    if "any_of" in expect:  # acceptable alternatives (e.g. an error OR a safe score)
        alternatives = [_compare(alt, got) for alt in expect["any_of"]]
        if any(not alt for alt in alternatives):
            return []
        return [
            "none of the acceptable outcomes: " + " | ".join("; ".join(a) for a in alternatives)
        ]
    if expect.get("error"):
        if "error" not in got:
            problems.append(f"expected an error line, got {json.dumps(got)}")
        return problems
    if "error" in got:
        return [f"unexpected error: {got['error']}"]
    for key, want in expect.items():
        if key not in got and key != "items_min":
            problems.append(f"{key}: missing from result")
            continue
        have = got.get(key)  # items_min is an expectation-only key, never in a result
        if key == "items_min":  # lower bounds on sub-scores
            for sub, floor in want.items():
                sub_have = (got.get("items") or {}).get(sub)
                if not isinstance(sub_have, int) or sub_have < floor:
                    problems.append(f"items.{sub}: want >= {floor}, got {sub_have!r}")
        elif key == "missing":
            if sorted(want) != sorted(have or []):
                problems.append(f"missing: want {sorted(want)}, got {have}")
        elif key in ("items", "escalation"):
            for sub, sub_want in want.items():
                sub_have = (have or {}).get(sub, "<absent>")
                if sub_have != sub_want or type(sub_have) is not type(sub_want):
                    problems.append(f"{key}.{sub}: want {sub_want!r}, got {sub_have!r}")
        elif have != want or type(have) is not type(want):
            problems.append(f"{key}: want {want!r}, got {have!r}")
    return problems


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case["id"] in KNOWN_DISCREPANCIES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_DISCREPANCIES[case["id"]]))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def test_case_ids_unique_and_known_discrepancies_exist() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert set(KNOWN_DISCREPANCIES) <= set(ids)


def test_jsonl_exit_code_reflects_error_lines(jsonl_results: dict[str, Any]) -> None:
    # the case file contains error cases, so the stream as a whole must report failure (2)
    assert any(c["expect"].get("error") for c in CASES)
    assert jsonl_results["returncode"] == 2


@pytest.mark.parametrize("case", _params())
def test_case(case: dict[str, Any], jsonl_results: dict[str, Any]) -> None:
    got = jsonl_results["results"][case["id"]]
    problems = _compare(case["expect"], got)
    assert not problems, (
        f"[{case['id']}] {case['system']} inputs={json.dumps(case['inputs'])}: "
        + "; ".join(problems)
    )


SINGLE_SHOT_IDS = [
    "bp-BP-D-hr-150",
    "bp-BP-E-hr-50",
    "uk-crt-2.5",
    "uk-UK-C-hr-119.995",
    "uk-esc-avpu-V",
    "br-esc-total6-domain3",
    "n2-rr-20.5",
    "n2-esc-total4-single3",
]
SINGLE_SHOT_ERROR_IDS = ["err-unknown-key", "err-enum-avpu", "err-negative-hr", "err-spo2-101"]
_BY_ID = {c["id"]: c for c in CASES}


def _single_shot(case: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "alerting.pews", "score", "--system", case["system"]]
    if "age_days" in case:
        cmd += ["--age-days", str(case["age_days"])]
    else:
        cmd += ["--age-months", str(case["age_months"])]
    cmd += ["--obs", json.dumps(case["inputs"])]
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT_S, check=False
    )


def test_single_shot_form() -> None:
    failures = []
    for cid in SINGLE_SHOT_IDS:
        case = _BY_ID[cid]
        proc = _single_shot(case)
        if proc.returncode != 0:
            failures.append(f"[{cid}] exit {proc.returncode}: {proc.stderr.strip()}")
            continue
        problems = _compare(case["expect"], json.loads(proc.stdout))
        if cid in KNOWN_DISCREPANCIES:
            continue
        failures.extend(f"[{cid}] {p}" for p in problems)
    for cid in SINGLE_SHOT_ERROR_IDS:
        proc = _single_shot(_BY_ID[cid])
        if proc.returncode != 2:
            failures.append(f"[{cid}] expected exit code 2, got {proc.returncode}")
        if "error" not in (proc.stdout + proc.stderr).lower():
            failures.append(f"[{cid}] no error message printed")
    assert not failures, "\n".join(failures)


def test_single_shot_dob_calendar_age() -> None:
    """Production form: completed months / years from DOB and observation time.

    See docs/clinical/conventions.md#age.
    """
    expected = [
        ("2019-06-15", "2019-09-14T10:00", "BP-A"),  # 2 completed months (92 days later)
        ("2019-06-15", "2019-09-15T10:00", "BP-B"),  # 3 completed months
        ("2015-03-01", "2020-02-29T23:59", "BP-C"),  # 4 completed years
        ("2015-03-01", "2020-03-01T00:01", "BP-D"),  # 5 completed years
    ]
    failures = []
    for dob, at, band in expected:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "alerting.pews",
                "score",
                "--system",
                "bedside_pews",
                "--dob",
                dob,
                "--at",
                at,
                "--obs",
                json.dumps({"hr_bpm": 100}),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=TIMEOUT_S,
            check=False,
        )
        got = json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr}
        if got.get("band") != band:
            failures.append(f"dob {dob} at {at}: want {band}, got {got}")
    assert not failures, "\n".join(failures)

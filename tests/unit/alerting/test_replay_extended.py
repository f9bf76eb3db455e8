"""``wardwatch replay``, extended (issue 17): label lines and lead times, ``--state`` resume,
``--compare``, the stored-history extensions of the line format, and determinism."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from alerting.core import default_rules
from alerting.replay import MalformedLine, Replay, StateAfterInput, StateError, replay
from wardwatch.cli import app

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
HIGH = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": 86}
CALM = {"hr_bpm": 100, "rr_bpm": 24, "spo2_pct": 98}
runner = CliRunner()


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def line(seconds: float, bed: str = "b1", **kw: Any) -> str:
    return json.dumps({"t": ts(seconds), "bed": bed, **kw})


def ward(minutes: int = 180, worse_from: int = 60) -> list[str]:
    """Two beds a line a minute: b1 calm then high from ``worse_from``; b2 calm throughout;
    an ack on b1 every 30 minutes; labels at the end on both."""
    out = []
    for m in range(minutes):
        s = m * 60
        first = {"age_days": 1100} if m == 0 else {}
        out.append(line(s, "b1", **first, inputs=HIGH if m >= worse_from else CALM))
        out.append(line(s, "b2", **({"age_days": 2000} if m == 0 else {}), inputs=CALM))
        if m % 30 == 29:
            out.append(line(s, "b1", command="ack", by="nurse-a"))
    end = minutes * 60
    out.append(line(end, "b1", label="deterioration"))
    out.append(line(end, "b2", label="deterioration"))
    return out


def write(tmp_path: Path, lines: list[str], name: str = "in.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def run(*args: str) -> Any:
    return runner.invoke(app, ["replay", *args])


def parsed(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [json.loads(x) for x in stdout.splitlines()]
    return rows[:-1], rows[-1]


def all_of(lines: list[str]) -> list[dict[str, Any]]:
    return list(replay(lines, default_rules()))


# -- label lines and lead times -----------------------------------------------------------------
def test_labels_give_lead_times_and_no_output_lines() -> None:
    lines = ward()
    out = all_of(lines)
    unlabelled = all_of([x for x in lines if "label" not in x])
    summary = out[-1]
    assert out[:-1] == unlabelled[:-1]  # a label line yields nothing of its own
    assert summary["labelled_events"] == 2 and summary["detected"] == 1
    b1_lead = summary["lead_times_h"][0]
    # the first clinical medium/high activation of b1, to the label at 3 h
    first = min(
        datetime.fromisoformat(e["t"]) for e in out[:-1]
        if e["bed"] == "b1" and e["kind"] == "clinical" and e["priority"] in ("medium", "high")
    )
    assert b1_lead == pytest.approx((T0 + timedelta(hours=3) - first).total_seconds() / 3600)
    assert summary["lead_times_h"][1] is None  # b2 never alerted: missed
    assert summary["median_lead_time_h"] == b1_lead
    assert summary["lines"] == len(lines)  # label lines are lines read


def test_without_labels_the_summary_has_no_label_keys() -> None:
    summary = all_of([x for x in ward() if "label" not in x])[-1]
    assert not {"labelled_events", "detected", "median_lead_time_h"} & set(summary)


def test_an_alert_more_than_24_h_before_the_label_does_not_count() -> None:
    lines = [x for x in ward(minutes=120) if "label" not in x]
    late = line(120 * 60 + 25 * 3600, "b1", label="deterioration")
    summary = all_of([*lines, late])[-1]
    assert summary["detected"] == 0 and summary["median_lead_time_h"] is None


def test_a_label_for_a_bed_without_data_is_missed_not_an_error() -> None:
    summary = all_of([line(0, "b1", age_days=1100, inputs=CALM), line(60, "zz", label="x")])[-1]
    assert summary["labelled_events"] == 1 and summary["detected"] == 0
    assert summary["beds"] == 1 and summary["bed_days"] == 0  # the label made no bed-day


@pytest.mark.parametrize(
    ("rec", "why"),
    [
        ({"label": "deterioration", "inputs": CALM}, "t, bed and label only"),
        ({"label": "deterioration", "command": "ack"}, "t, bed and label only"),
        ({"label": "deterioration", "age_days": 3}, "t, bed and label only"),
        ({"label": ""}, "not a label id"),
        ({"label": "x" * 65}, "not a label id"),
        ({"label": 7}, "not a label id"),
        ({"label": "a b"}, "not a label id"),
    ],
)
def test_malformed_label_lines(rec: dict[str, Any], why: str) -> None:
    with pytest.raises(MalformedLine, match=why):
        all_of([json.dumps({"t": ts(0), "bed": "b1", **rec})])


# -- the extensions for stored history -----------------------------------------------------------
def test_engine_keys_and_a_questionable_line_are_read() -> None:
    lines = [
        line(0, "b1", age_days=1100, inputs={"pr_bpm": 100, "oxygen.device": "nasal_cannula",
                                             "oxygen.flow_lpm": 2}),
        line(10, "b1", quality="questionable", source="measured", inputs={"spo2_pct": 80}),
    ]
    assert all_of(lines)[-1]["lines"] == 2


@pytest.mark.parametrize(
    ("rec", "why"),
    [
        ({"inputs": CALM, "quality": "invalid"}, "quality: expected valid or questionable"),
        ({"inputs": CALM, "quality": 1}, "quality: expected valid or questionable"),
        ({"command": "ack", "quality": "valid"}, "quality: only on an input line"),
        ({"inputs": {"pr_bpm": "fast"}}, "inputs.pr_bpm: expected a number"),
        ({"inputs": {"oxygen.nope": 1}}, "unknown input key"),
    ],
)
def test_malformed_extension_lines(rec: dict[str, Any], why: str) -> None:
    with pytest.raises(MalformedLine, match=why):
        all_of([json.dumps({"t": ts(0), "bed": "b1", "age_days": 1100, **rec})])


def test_a_questionable_value_needs_confirmation_as_live() -> None:
    """One questionable high SpO2 drop is held; a valid line with the same values scores."""
    def lines(q: str) -> list[str]:
        return [line(0, "b1", age_days=1100, inputs=CALM)] + [
            line(s, "b1", quality=q, inputs={**CALM, "spo2_pct": 80})
            for s in range(100, 500, 150)
        ]

    held, taken = all_of(lines("questionable"))[-1], all_of(lines("valid"))[-1]
    assert held["engine"].get("unconfirmed", 0) >= 1
    assert "unconfirmed" not in taken["engine"]


# -- --state: resume -------------------------------------------------------------------------------
def in_two(lines: list[str], k: int) -> list[dict[str, Any]]:
    """Lines 1..k, the state through JSON (as the file), then lines k+1..N."""
    saved: list[dict[str, Any]] = []
    first = list(replay(lines[:k], default_rules(), done=lambda r: saved.append(r.snapshot())))
    state = json.loads(json.dumps(saved[0], sort_keys=True))
    second = list(replay(lines[k:], default_rules(), state=state))
    return first[:-1] + second


RESUME_LINES = ward(minutes=90, worse_from=20)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(min_value=0, max_value=len(RESUME_LINES)))
def test_resuming_at_any_line_gives_the_same_events_and_summary(k: int) -> None:
    assert in_two(RESUME_LINES, k) == all_of(RESUME_LINES)


def test_a_state_ending_after_the_first_line_is_refused() -> None:
    saved: list[dict[str, Any]] = []
    list(replay(RESUME_LINES[:100], default_rules(), done=lambda r: saved.append(r.snapshot())))
    with pytest.raises(StateAfterInput, match="before the end of the saved state"):
        list(replay(RESUME_LINES[:10], default_rules(), state=saved[0]))
    same_t = [x for x in RESUME_LINES if json.loads(x)["t"] == json.loads(RESUME_LINES[99])["t"]]
    list(replay(same_t[-1:], default_rules(), state=saved[0]))  # the same time: allowed


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"replay_state": 99}, "not a replay state"),
        ({"unit": "other"}, "saved for unit 'other'"),
        ({"rules_version": "zz"}, "rules version"),
        ({"spans": {"b1": ["nope", "nope"]}}, "does not parse"),
        ({"engine": {"version": 1}}, "does not parse"),
        ({"specs": {"b1": ["no_such_system", None, 3]}}, "does not parse"),
        ({"specs": {"b1": ["bedside_pews", None, "old"]}}, "does not parse"),
        ({"leads": {"recent": {"b1": [["x"]]}}}, "does not parse"),
    ],
)
def test_a_state_that_cannot_be_resumed_is_refused(change: dict[str, Any], why: str) -> None:
    r = Replay(default_rules())
    r.feed(RESUME_LINES[0], 1)
    with pytest.raises(StateError, match=why):
        Replay(default_rules()).restore({**r.snapshot(), **change})


def test_cli_state_resume_file_mode_and_refusals(tmp_path: Path) -> None:
    whole = run("--input", str(write(tmp_path, RESUME_LINES, "all.jsonl")), "--json")
    state = tmp_path / "sub" / "state.json"
    k = 77
    a = run("--input", str(write(tmp_path, RESUME_LINES[:k], "a.jsonl")), "--json",
            "--state", str(state))
    assert a.exit_code == 0, a.output
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    b = run("--input", str(write(tmp_path, RESUME_LINES[k:], "b.jsonl")), "--json",
            "--state", str(state))
    assert b.exit_code == 0, b.output
    events_a, _ = parsed(a.stdout)
    events_b, summary_b = parsed(b.stdout)
    events_w, summary_w = parsed(whole.stdout)
    assert events_a + events_b == events_w and summary_b == summary_w
    # replaying part a again on the state that ends after it: exit 2, state untouched
    before = state.read_bytes()
    again = run("--input", str(tmp_path / "a.jsonl"), "--json", "--state", str(state))
    assert again.exit_code == 2 and "before the end of the saved state" in again.output
    assert state.read_bytes() == before
    other = run("--input", str(tmp_path / "b.jsonl"), "--json", "--state", str(state),
                "--unit", "u9")
    assert other.exit_code == 2 and "saved for unit" in other.output
    state.write_text("{not json")
    bad = run("--input", str(tmp_path / "b.jsonl"), "--json", "--state", str(state))
    assert bad.exit_code == 2 and "not a replay state" in bad.output


def test_cli_a_state_or_saved_input_that_cannot_be_written(tmp_path: Path) -> None:
    data = str(write(tmp_path, RESUME_LINES[:5]))
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = run("--input", data, "--json", "--state", str(blocker / "state.json"))
    assert res.exit_code == 2 and "cannot read" in res.output  # refused before replaying
    assert res.stdout == ""
    res = run("--from-influx", "--unit", "u1", "--start", ts(0), "--end", ts(60),
              "--ward", data, "--save-input", str(blocker / "x.jsonl"))
    assert res.exit_code == 2


def test_cli_state_is_not_written_when_a_line_is_malformed(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    res = run("--input", str(write(tmp_path, [*RESUME_LINES[:5], "{oops"])), "--json",
              "--state", str(state))
    assert res.exit_code == 2 and not state.exists()


# -- --compare -----------------------------------------------------------------------------------
def test_compare_prints_both_summaries_side_by_side(tmp_path: Path) -> None:
    data = write(tmp_path, ward())
    fast = tmp_path / "fast.toml"
    fast.write_text('version = "fast"\n[onset]\nhigh_s = 0\nmedium_s = 0\n')
    default = REPO / "alerting" / "unit_rules.toml"
    res = run("--input", str(data), "--json", "--compare", str(default), str(fast))
    assert res.exit_code == 0, res.output
    (out,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert out["rules"] == {"a": str(default), "b": str(fast)}
    a, b = out["a"], out["b"]
    single = parsed(run("--input", str(data), "--json").stdout)[1]
    assert {k: v for k, v in a.items() if k != "beds_alerted"} == single
    assert a["beds_alerted"] == {"clinical": 1, "technical": 0} == b["beds_alerted"]
    assert a["labelled_events"] == b["labelled_events"] == 2
    assert b["median_lead_time_h"] > a["median_lead_time_h"]  # no onset delay: earlier
    table = run("--input", str(data), "--compare", str(default), str(fast))
    assert table.exit_code == 0 and "median lead time h" in table.stdout
    assert "beds alerted, clinical" in table.stdout


def test_compare_refuses_config_and_state_and_bad_rules(tmp_path: Path) -> None:
    data = write(tmp_path, ward(minutes=5))
    r = str(REPO / "alerting" / "unit_rules.toml")
    res = run("--input", str(data), "--compare", r, r, "--config", r)
    assert res.exit_code == 2 and "--compare" in res.output
    res = run("--input", str(data), "--compare", r, r, "--state", str(tmp_path / "s"))
    assert res.exit_code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[onset]\nhigh_s = -1\n")
    res = run("--input", str(data), "--compare", r, str(bad))
    assert res.exit_code == 2


def test_option_mistakes_exit_2(tmp_path: Path) -> None:
    assert run("--json").exit_code == 2  # neither --input nor --from-influx
    data = str(write(tmp_path, ward(minutes=2)))
    assert run("--input", data, "--from-influx", "--unit", "u").exit_code == 2
    assert run("--input", data, "--start", ts(0)).exit_code == 2
    assert run("--from-influx", "--start", ts(0), "--end", ts(60)).exit_code == 2  # no --unit


# -- determinism ---------------------------------------------------------------------------------
def test_stdout_is_byte_identical_across_processes_with_labels_state_and_compare(
    tmp_path: Path,
) -> None:
    data = write(tmp_path, ward())
    r = str(REPO / "alerting" / "unit_rules.toml")
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        state = tmp_path / f"state{seed}.json"
        cmd = [sys.executable, "-m", "wardwatch.cli", "replay", "--input", str(data), "--json"]
        one = subprocess.run([*cmd, "--state", str(state)], cwd=REPO, env=env,
                             capture_output=True, check=True)
        two = subprocess.run([*cmd, "--compare", r, r], cwd=REPO, env=env,
                             capture_output=True, check=True)
        assert b"lines/s" in one.stderr and b"lines/s" not in one.stdout
        outs.append((one.stdout, two.stdout, state.read_bytes()))
    assert outs[0] == outs[1]


def test_a_replay_killed_mid_run_leaves_the_saved_state_as_it_was(tmp_path: Path) -> None:
    """kill -9 while resuming: the state file is the one of the last finished run (written
    only at the end, atomically), so the same input resumes from it again."""
    state = tmp_path / "state.json"
    k = 40
    a = run("--input", str(write(tmp_path, RESUME_LINES[:k], "a.jsonl")), "--json",
            "--state", str(state))
    assert a.exit_code == 0, a.output
    before = state.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wardwatch.cli", "replay", "--input", "-", "--json",
         "--state", str(state)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(("\n".join(RESUME_LINES[k:]) + "\n").encode())
        proc.stdin.flush()  # stdin stays open: the replay is still running
        first = json.loads(proc.stdout.readline())  # it has replayed into part b
        assert first["bed"] == "b1"
    finally:
        proc.kill()
        proc.wait()
    assert state.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "state.json"]
    b = run("--input", str(write(tmp_path, RESUME_LINES[k:], "b.jsonl")), "--json",
            "--state", str(state))
    whole = run("--input", str(write(tmp_path, RESUME_LINES, "all.jsonl")), "--json")
    assert parsed(a.stdout)[0] + parsed(b.stdout)[0] == parsed(whole.stdout)[0]

"""``wardwatch replay``: the alert engine core over a recorded stream (alerting/replay.py).

The interface is pinned (clinical reviewers' scripts read it): one JSON line per alert event
with exactly ``EVENT_KEYS`` in that order, then one summary line without ``bed``; exit 2 only
for a malformed line or a bad rules file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alerting.core import default_rules
from alerting.replay import EVENT_KEYS, MalformedLine, replay
from wardwatch.cli import app
from wardwire.models import AlertEventType

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
HIGH = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": 86}  # Bedside PEWS 8 for a 3-year-old
CALM = {"hr_bpm": 100, "rr_bpm": 24, "spo2_pct": 98}

runner = CliRunner()


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def line(seconds: float, bed: str = "b1", **kw: Any) -> str:
    return json.dumps({"t": ts(seconds), "bed": bed, **kw})


def sustained(
    bed: str = "b1", inputs: dict[str, Any] | None = None, until_s: int = 300, **first: Any
) -> list[str]:
    """One line every 10 s from T0 to ``until_s``; the first carries the bed keys."""
    first = first or {"age_days": 1100}
    return [
        line(s, bed, **(first if s == 0 else {}), inputs=inputs or HIGH)
        for s in range(0, until_s + 1, 10)
    ]


def write(tmp_path: Path, lines: list[str], name: str = "in.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def run(path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["replay", "--input", str(path), "--json", *extra])


def parsed(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [json.loads(x) for x in stdout.splitlines()]
    assert rows, "no output"
    return rows[:-1], rows[-1]


def events_of(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


# -- the pinned format --------------------------------------------------------------------------
def test_every_event_line_has_exactly_the_pinned_keys_in_order_and_the_summary_is_last(
    tmp_path: Path,
) -> None:
    lines = [*sustained(), line(310, command="ack", by="nurse-a")]
    res = run(write(tmp_path, lines))
    assert res.exit_code == 0, res.output
    text_rows = res.stdout.splitlines()
    events, summary = parsed(res.stdout)
    assert events
    for text, ev in zip(text_rows, events, strict=False):
        assert tuple(ev) == EVENT_KEYS
        assert text == json.dumps(ev)  # plain json.dumps, key order kept
        assert ev["kind"] in ("clinical", "technical")
        assert ev["priority"] in ("high", "medium", "low")
        assert ev["t"].endswith("Z")
    assert "bed" not in summary
    assert summary["lines"] == len(lines)
    assert summary["beds"] == 1
    assert summary["bed_days"] == pytest.approx(310 / 86400, abs=1e-6)
    assert set(summary["alerts"]) == {e.value for e in AlertEventType}  # every event type
    assert summary["alerts"]["raised"] == len(events_of(events, event="raised"))
    per = summary["alerts_per_bed_day"]
    assert set(per) == {"clinical", "technical"}
    assert set(per["clinical"]) == set(per["technical"]) == {"high", "medium", "low"}
    assert per["clinical"]["high"] == pytest.approx(1 / (310 / 86400), rel=1e-3)
    assert res.stderr.count("\n") >= 1 and "lines/s" in res.stderr  # timings: stderr only


def test_sustained_high_bedside_pews_raises_a_high_clinical_alert_on_event_time(
    tmp_path: Path,
) -> None:
    res = run(write(tmp_path, sustained()))
    assert res.exit_code == 0, res.output
    events, _ = parsed(res.stdout)
    raised = events_of(events, event="raised", kind="clinical")
    assert len(raised) == 1
    r = raised[0]
    assert (r["bed"], r["rule"], r["priority"], r["level"], r["state"]) == (
        "b1", "bedside_pews", "high", "high", "active",
    )
    # onset by outcome: the HIGH window filled to its sustained fraction, at the deadline's own
    # time (between two lines 10 s apart), not at the next line
    onset = default_rules().onset
    assert r["t"] == ts(onset.high_s * onset.sustained_fraction)
    # unacknowledged: escalations follow, each at its own time
    esc = events_of(events, event="escalated")
    assert esc and esc[0]["t"] == ts(
        onset.high_s * onset.sustained_fraction + default_rules().escalation.high_s
    )


def test_no_deadline_runs_after_the_last_line(tmp_path: Path) -> None:
    onset = default_rules().onset
    end = int(onset.high_s * onset.sustained_fraction) - 2  # the stream ends before the raise
    res = run(write(tmp_path, sustained(until_s=end)))
    assert res.exit_code == 0, res.output
    events, summary = parsed(res.stdout)
    assert events_of(events, event="raised", kind="clinical") == []
    assert summary["alerts"]["raised"] == 0


def test_an_ack_line_acknowledges_the_open_alert(tmp_path: Path) -> None:
    res = run(write(tmp_path, [*sustained(), line(305, command="ack", by="nurse-a", age_days=5)]))
    assert res.exit_code == 0, res.output
    events, _ = parsed(res.stdout)
    acked = events_of(events, event="acknowledged")
    assert len(acked) == 1
    assert acked[0]["t"] == ts(305) and acked[0]["state"] == "acknowledged"
    assert acked[0]["alert_id"] == events_of(events, event="raised")[0]["alert_id"]


def test_a_snooze_of_a_high_alert_is_refused_on_stderr_and_replay_goes_on(
    tmp_path: Path,
) -> None:
    res = run(write(tmp_path, [*sustained(), line(305, command="snooze", minutes=5)]))
    assert res.exit_code == 0, res.output
    events, summary = parsed(res.stdout)
    assert events_of(events, event="snoozed") == []
    assert "line 32" in res.stderr and "refused" in res.stderr
    assert summary["commands_refused"] == 1


def test_a_command_for_a_bed_without_input_is_skipped(tmp_path: Path) -> None:
    res = run(write(tmp_path, [line(0, "ghost", command="ack"), *sustained(until_s=10)]))
    assert res.exit_code == 0, res.output
    assert "line 1" in res.stderr and "ghost" in res.stderr


# -- malformed lines and bad rules --------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ('{"t": "2024-05-01T10:00:20Z", "bed": "b1", "inputs": {', "not JSON"),
        ('["t", "bed"]', "object"),
        (line(20, inputs={"heart_rate": 120}), "heart_rate"),
        (line(5, inputs=HIGH), "before"),  # t decreasing
        (json.dumps({"t": ts(20), "inputs": HIGH}), "bed"),
        (json.dumps({"t": "2024-05-01T10:00:20", "bed": "b1", "inputs": HIGH}), "time zone"),
        (json.dumps({"bed": "b1", "inputs": HIGH}), "t: missing"),
        (json.dumps({"t": 1714557620, "bed": "b1", "inputs": HIGH}), "t:"),
        (json.dumps({"t": "1999-12-31T23:00:00Z", "bed": "b1", "inputs": HIGH}), "t:"),
        (line(20, "bed 1", inputs=HIGH), "bed"),
        (line(20), "neither inputs nor command"),
        (line(20, command="silence"), "command"),
        (line(20, command="snooze"), "minutes"),
        (line(20, command="snooze", minutes=float("nan")), "NaN"),
        (line(20, inputs=HIGH, command="ack"), "not both"),
        (line(20, inputs=HIGH, age_days=True), "age_days"),
        (line(20, inputs=HIGH, age_days=-1), "age_days"),
        (line(20, inputs=HIGH, age_days="1100"), "age_days"),
        (line(20, inputs=HIGH, dob="01/02/2021"), "dob"),
        (line(20, inputs=HIGH, dob="2021-02-01", age_days=1100), "not both"),
        (line(20, inputs=HIGH, system="pews2000"), "system"),
        (line(20, inputs={"hr_bpm": "185"}), "hr_bpm"),
        (line(20, inputs=HIGH, source="device"), "source"),
        (line(20, inputs=HIGH, note="x"), "note"),
        (line(20, inputs=[1, 2]), "inputs"),
    ],
)
def test_a_malformed_line_stops_the_replay_with_exit_2_naming_its_line(
    tmp_path: Path, bad: str, why: str
) -> None:
    good = [line(0, inputs=CALM, age_days=1100), line(10, inputs=CALM)]
    res = run(write(tmp_path, [*good, bad, line(30, inputs=CALM)]))
    assert res.exit_code == 2, res.output
    assert "line 3:" in res.stderr and why in res.stderr
    assert all("bed" in json.loads(x) for x in res.stdout.splitlines())  # no summary line


def test_blank_lines_are_skipped_but_keep_their_numbers(tmp_path: Path) -> None:
    res = run(write(tmp_path, [line(0, inputs=CALM, age_days=1100), "", "   ", "{"]))
    assert res.exit_code == 2 and "line 4:" in res.stderr


def test_the_pure_driver_raises_malformed_line_after_yielding_what_came_before() -> None:
    lines = [*sustained(), line(5, inputs=HIGH)]
    out: list[dict[str, Any]] = []
    with pytest.raises(MalformedLine) as exc:
        for d in replay(lines, default_rules()):
            out.append(d)
    assert exc.value.lineno == len(lines) and str(exc.value).startswith(f"line {len(lines)}: ")
    assert events_of(out, event="raised", kind="clinical")
    assert all("bed" in d for d in out)


def test_a_bad_rules_file_exits_2_with_the_rules_error(tmp_path: Path) -> None:
    data = write(tmp_path, sustained(until_s=20))
    rules = tmp_path / "rules.toml"
    rules.write_text("[onset]\nhigh_s = -5\n")
    res = run(data, "--config", str(rules))
    assert res.exit_code == 2 and "onset.high_s" in res.stderr
    assert res.stdout == ""
    rules.write_text("[onsett]\nhigh_s = 5\n")
    res = run(data, "--config", str(rules))
    assert res.exit_code == 2 and "onsett" in res.stderr
    res = run(data, "--config", str(tmp_path / "missing.toml"))
    assert res.exit_code == 2 and "no such file" in res.stderr


def test_a_missing_input_file_exits_2(tmp_path: Path) -> None:
    res = run(tmp_path / "nothing.jsonl")
    assert res.exit_code == 2 and "cannot read" in res.stderr


# -- what the scorer refuses is not malformed ---------------------------------------------------
@pytest.mark.parametrize(
    "bed_keys",
    [{"age_days": 7000}, {"age_days": 730, "system": "news2"}],
    ids=["bedside_pews_age_7000_days", "news2_2_year_old"],
)
def test_an_unscorable_bed_raises_cannot_score_and_the_other_beds_go_on(
    tmp_path: Path, bed_keys: dict[str, Any]
) -> None:
    odd = line(0, "odd", inputs=CALM, **bed_keys)
    lines = [odd, *sustained("b1")]
    res = run(write(tmp_path, lines))
    assert res.exit_code == 0, res.output
    events, summary = parsed(res.stdout)
    cannot = events_of(events, bed="odd", event="raised", rule="cannot_score")
    assert [(e["kind"], e["priority"], e["t"]) for e in cannot] == [("technical", "medium", ts(0))]
    assert events_of(events, bed="odd", kind="clinical") == []
    assert events_of(events, bed="b1", event="raised", kind="clinical", priority="high")
    assert summary["lines"] == len(lines) and summary["beds"] == 2
    assert summary["alerts_per_bed_day"]["technical"]["medium"] > 0


def test_a_later_line_with_a_new_age_updates_the_bed(tmp_path: Path) -> None:
    lines = [line(0, inputs=CALM, age_days=7000), line(10, inputs=CALM, age_days=1100)]
    res = run(write(tmp_path, lines))
    assert res.exit_code == 0, res.output
    events, _ = parsed(res.stdout)
    assert [(e["event"], e["rule"], e["t"]) for e in events] == [
        ("raised", "cannot_score", ts(0)),
        ("resolved", "cannot_score", ts(10)),
    ]


def test_an_implausible_value_is_an_artefact_not_an_error(tmp_path: Path) -> None:
    lines = [line(0, inputs=CALM, age_days=1100), line(10, inputs={**CALM, "hr_bpm": 999})]
    res = run(write(tmp_path, lines))
    assert res.exit_code == 0, res.output
    _, summary = parsed(res.stdout)
    assert summary["engine"].get("artefact") == 1


# -- determinism --------------------------------------------------------------------------------
def _mixed(tmp_path: Path) -> Path:
    lines = [
        line(0, "odd", inputs=CALM, age_days=730, system="news2"),
        *sustained("b1"),
        line(0, "b2", inputs={"hr_bpm": 160, "rr_bpm": 50}, dob="2022-03-04", system="uk_npews"),
        line(30, "b2", inputs={"resp_distress": "moderate", "avpu": "A"}),
        line(40, "b2", inputs={"spo2_pct": None}),
        line(305, "b1", command="ack"),
    ]
    lines.sort(key=lambda x: json.loads(x)["t"])  # stable: equal times keep file order
    return write(tmp_path, lines)


def test_the_same_file_gives_byte_identical_stdout_twice_and_via_stdin(tmp_path: Path) -> None:
    path = _mixed(tmp_path)
    first, second = run(path), run(path)
    assert first.exit_code == second.exit_code == 0, first.output
    assert first.stdout_bytes == second.stdout_bytes
    piped = runner.invoke(app, ["replay", "--input", "-", "--json"], input=path.read_bytes())
    assert piped.exit_code == 0, piped.output
    assert piped.stdout_bytes == first.stdout_bytes


def test_separate_processes_with_other_hash_seeds_print_the_same_bytes(tmp_path: Path) -> None:
    path = _mixed(tmp_path)
    outs = []
    for seed, module in (("1", ["wardwatch.cli", "replay"]), ("2", ["alerting.replay_cli"])):
        res = subprocess.run(
            [sys.executable, "-m", *module, "--input", str(path), "--json"],
            cwd=REPO, capture_output=True, check=False, timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout)
    assert outs[0] == outs[1]
    assert outs[0].decode().count("\n") >= 3


def test_without_json_a_table_is_printed(tmp_path: Path) -> None:
    res = runner.invoke(app, ["replay", "--input", str(_mixed(tmp_path))])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].split()[:3] == ["t", "bed", "event"]
    assert "raised per bed-day, clinical" in res.stdout


# -- the rules file -----------------------------------------------------------------------------
def test_a_config_file_changes_the_onset(tmp_path: Path) -> None:
    data = write(tmp_path, sustained())
    rules = tmp_path / "unit.toml"
    rules.write_text("[onset]\nhigh_s = 0\n")

    def raised_at(*extra: str) -> str:
        res = run(data, *extra)
        assert res.exit_code == 0, res.output
        events, _ = parsed(res.stdout)
        return str(events_of(events, event="raised", kind="clinical")[0]["t"])

    default, immediate = raised_at(), raised_at("--config", str(rules))
    assert immediate == ts(0) and immediate < default


def test_times_with_an_offset_are_normalised_to_utc(tmp_path: Path) -> None:
    lines = sustained()
    shifted = []
    for x in lines:
        d = json.loads(x)
        t = datetime.fromisoformat(d["t"]).astimezone(timezone(timedelta(hours=2)))
        shifted.append(json.dumps({**d, "t": t.isoformat()}))
    a, b = run(write(tmp_path, lines, "a.jsonl")), run(write(tmp_path, shifted, "b.jsonl"))
    assert a.exit_code == b.exit_code == 0, b.output
    assert "+02:00" in shifted[0] and a.stdout_bytes == b.stdout_bytes
